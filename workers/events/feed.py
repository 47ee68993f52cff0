"""One follower's buffer of live events: filled from any thread, read on the follower's loop."""

from __future__ import annotations

import asyncio
import contextlib

from domain.events import ProgressEvent

DEFAULT_CAPACITY = 1000


class LiveQueue:
    """A bounded queue implementing `domain.events.LiveFeed`.

    When it overflows, it drops what it holds and the next read returns None: the follower
    then reads Postgres, so a slow follower costs a query, never unbounded memory.

    Parameters:
      capacity: events held before the queue overflows.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[ProgressEvent] = asyncio.Queue(capacity)
        self._dropped = False

    def offer(self, event: ProgressEvent) -> None:
        """Hand over an event from any thread (the publisher may run on another loop)."""
        # RuntimeError: the follower's loop has closed, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: ProgressEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped = True

    async def next(self, wait_seconds: float) -> ProgressEvent | None:
        """The next event; None after `wait_seconds`, or once after events were dropped."""
        if self._dropped:
            self._dropped = False
            while not self._queue.empty():
                self._queue.get_nowait()
            return None
        try:
            async with asyncio.timeout(wait_seconds):
                return await self._queue.get()
        except TimeoutError:
            return None
