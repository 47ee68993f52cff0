"""The production bus: one Redis Stream per batch, `mmos:batch:<id>:events`.

Entry ids are the events' own `<seq>-0`, so an entry id is the follower's cursor on both buses.
Retention is bounded (`MAXLEN ~` and a TTL refreshed on each write); Postgres keeps everything.
Each API process runs one reader per followed batch (a blocking XREAD) and fans its entries out
to the local followers, so a hundred followers of a batch cost one Redis connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from db.events import PostgresEventStore, TaggedEvent
from domain.events import EventKind, ProgressEvent, cursor_of
from workers.events.feed import LiveQueue

log = logging.getLogger("mmos.events")

READ_BLOCK_MS = 2000  # under redis-py's 5 s socket timeout
READ_COUNT = 500

# The tag of a stream's newest entry (nil when it has none).
_NEWEST_TAG = """
local function newest_tag(key)
  local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if not newest[1] then return nil, nil end
  local fields = newest[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then return newest[1][1], fields[i + 1] end
  end
  return newest[1][1], ''
end
"""

# Appends in seq order; an id not above the stream's last one was published already (a
# concurrent publisher) and is skipped. A stream whose newest entry has another tag belongs
# to an earlier batch with this id (the database was recreated): it is dropped first.
_PUBLISH = _NEWEST_TAG + """
local key, maxlen, ttl, tag = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local _, current = newest_tag(key)
if current and current ~= tag then redis.call('DEL', key) end
local added = 0
for i = 4, #ARGV, 2 do
  local id = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, ARGV[i], 't', tag, 'e', ARGV[i + 1])
  if type(id) == 'string' then added = added + 1 end
end
redis.call('EXPIRE', key, ttl)
return added
"""

# Where a new reader starts: after the newest entry of this batch; at the beginning when there
# is none, dropping a stream an earlier batch with this id left (its entries are never read).
_TAIL = _NEWEST_TAG + """
local id, current = newest_tag(KEYS[1])
if current == ARGV[1] then return id end
if current then redis.call('DEL', KEYS[1]) end
return '0-0'
"""


def stream_key(batch_id: int) -> str:
    """The Redis key of a batch's stream."""
    return f"mmos:batch:{batch_id}:events"


def encode(event: ProgressEvent) -> str:
    """An event as the JSON text of its stream entry."""
    return json.dumps({"b": event.batch_id, "s": event.seq, "k": str(event.kind),
                       "r": event.run_id, "p": dict(event.payload), "a": event.at.isoformat()},
                      separators=(",", ":"), default=str)


def decode(text: str) -> ProgressEvent:
    """The event of a stream entry."""
    data = json.loads(text)
    return ProgressEvent(batch_id=int(data["b"]), seq=int(data["s"]), kind=EventKind(data["k"]),
                         run_id=data["r"], payload=data["p"],
                         at=dt.datetime.fromisoformat(data["a"]))


class _StreamReader:
    """One blocking XREAD loop over a batch's stream, feeding this process's followers."""

    def __init__(self, client: Any, batch_id: int, tag: str, start_id: str) -> None:
        self.client = client
        self.key = stream_key(batch_id)
        self.tag = tag
        self.last_id = start_id
        self.followers: set[LiveQueue] = set()
        self.stopping = False
        self.task = asyncio.create_task(self._run(), name=f"progress-reader-{batch_id}")

    async def _run(self) -> None:
        while not self.stopping:
            try:
                reply = await self.client.xread({self.key: self.last_id}, count=READ_COUNT,
                                                block=READ_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception:  # followers poll Postgres meanwhile; try again shortly
                if self.stopping:  # redis-py may turn our cancellation into its own error
                    return
                log.warning("reading %s failed", self.key, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    if fields.get("t") == self.tag:
                        self._fan_out(decode(fields["e"]))

    def _fan_out(self, event: ProgressEvent) -> None:
        for queue in list(self.followers):
            queue.offer(event)

    def stop(self) -> asyncio.Task[None]:
        """Ask the loop to end; returns its task (redis-py may finish the blocking read first,
        so nobody should wait for it on a follower's path)."""
        self.stopping = True
        self.task.cancel()
        return self.task


class RedisStreamEventBus:
    """`domain.events.EventBus` on Redis Streams.

    Parameters:
      store: reads the committed rows to publish.
      redis_url: the Redis server (the broker's one is fine: keys are `mmos:batch:*`).
      maxlen: approximate entries kept per stream.
      ttl_seconds: a stream expires this long after its last write.
    """

    def __init__(self, store: PostgresEventStore, redis_url: str, *, maxlen: int = 10_000,
                 ttl_seconds: int = 7 * 86_400) -> None:
        self.store = store
        self.redis_url = redis_url
        self.maxlen = maxlen
        self.ttl_seconds = ttl_seconds
        self._client: Any = None
        self._publish_script: Any = None
        self._tail_script: Any = None
        self._readers: dict[tuple[int, str], _StreamReader] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None

    def _redis(self) -> Any:
        # Created on first use, on the loop of the runtime that owns this bus.
        if self._client is None:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            self._publish_script = self._client.register_script(_PUBLISH)
            self._tail_script = self._client.register_script(_TAIL)
        return self._client

    async def publish_committed(self, events: Sequence[tuple[int, int]]) -> None:
        """XADD the committed events to their batches' streams, in seq order."""
        tagged = await self.store.committed(events)
        by_batch: dict[int, list[TaggedEvent]] = defaultdict(list)
        for item in tagged:
            by_batch[item.event.batch_id].append(item)
        self._redis()
        for batch_id, items in by_batch.items():
            args: list[Any] = [self.maxlen, self.ttl_seconds, items[0].tag]
            for item in items:
                args += [cursor_of(item.event.seq), encode(item.event)]
            await self._publish_script(keys=[stream_key(batch_id)], args=args)

    @asynccontextmanager
    async def subscribe(self, batch_id: int, tag: str) -> AsyncIterator[LiveQueue]:
        queue = LiveQueue()
        try:
            reader = await self._reader(batch_id, tag)
        except Exception:  # Redis is unreachable: the follower still polls Postgres
            log.warning("no live events for batch %s: Redis is unavailable", batch_id,
                        exc_info=True)
            yield queue
            return
        reader.followers.add(queue)
        try:
            yield queue
        finally:
            reader.followers.discard(queue)
            if not reader.followers and self._readers.get((batch_id, tag)) is reader:
                del self._readers[(batch_id, tag)]
                task = reader.stop()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    async def _reader(self, batch_id: int, tag: str) -> _StreamReader:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            reader = self._readers.get((batch_id, tag))
            if reader is None:
                # Start after the current newest entry: anything added later is read.
                client = self._redis()
                start = await self._tail_script(keys=[stream_key(batch_id)], args=[tag])
                reader = _StreamReader(client, batch_id, tag, str(start))
                self._readers[(batch_id, tag)] = reader
            return reader

    async def aclose(self) -> None:
        """Stop the readers and close the connections."""
        tasks = [reader.stop() for reader in self._readers.values()] + list(self._stopping)
        self._readers.clear()
        if tasks:
            await asyncio.wait(tasks, timeout=READ_BLOCK_MS / 1000 + 1)
        for task in tasks:  # a finished loop's outcome (cancelled or not) is of no interest
            if task.done() and not task.cancelled():
                task.exception()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
