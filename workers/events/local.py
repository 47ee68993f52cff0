"""The in-process bus of the embedded default: one broadcaster shared by every loop of a process.

The API and its in-process worker host run on different event loops (threads) of one process,
each with its own container and bus; the composition root hands both buses the same
`Broadcaster`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from db.events import PostgresEventStore, TaggedEvent
from workers.events.feed import LiveQueue


class Broadcaster:
    """Process-wide fan-out of events to followers, keyed by batch id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._followers: dict[int, dict[LiveQueue, str]] = {}

    def add(self, batch_id: int, tag: str, queue: LiveQueue) -> None:
        with self._lock:
            self._followers.setdefault(batch_id, {})[queue] = tag

    def remove(self, batch_id: int, queue: LiveQueue) -> None:
        with self._lock:
            followers = self._followers.get(batch_id, {})
            followers.pop(queue, None)
            if not followers:
                self._followers.pop(batch_id, None)

    def followed(self, batch_ids: set[int]) -> set[int]:
        """Which of these batches have a follower in this process."""
        with self._lock:
            return {batch_id for batch_id in batch_ids if batch_id in self._followers}

    def followers(self, batch_id: int) -> int:
        with self._lock:
            return len(self._followers.get(batch_id, {}))

    def deliver(self, tagged: TaggedEvent) -> None:
        """Offer the event to each follower of its batch with the same tag."""
        with self._lock:
            targets = [queue for queue, tag in
                       self._followers.get(tagged.event.batch_id, {}).items()
                       if tag == tagged.tag]
        for queue in targets:
            queue.offer(tagged.event)


class InProcessEventBus:
    """`domain.events.EventBus` for one container, over a broadcaster shared in the process.

    Parameters:
      store: reads the committed rows to publish.
      hub: the broadcaster every bus of this process shares.
    """

    def __init__(self, store: PostgresEventStore, hub: Broadcaster) -> None:
        self.store = store
        self.hub = hub

    async def publish_committed(self, events: Sequence[tuple[int, int]]) -> None:
        """Deliver committed events to this process's followers (none: nothing is read)."""
        followed = self.hub.followed({batch_id for batch_id, _ in events})
        if not followed:
            return
        for tagged in await self.store.committed([e for e in events if e[0] in followed]):
            self.hub.deliver(tagged)

    @asynccontextmanager
    async def subscribe(self, batch_id: int, tag: str) -> AsyncIterator[LiveQueue]:
        queue = LiveQueue()
        self.hub.add(batch_id, tag, queue)
        try:
            yield queue
        finally:
            self.hub.remove(batch_id, queue)

    async def aclose(self) -> None:
        """Nothing to release: followers unsubscribe themselves."""
