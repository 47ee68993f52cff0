"""Both event buses against the real PostgreSQL (and Redis): followers miss, repeat and reorder
nothing, whatever reaches the bus."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from db.processing import ProcessingRepository
from db.tables import ModelRow, SourceRow
from domain.errors import InvalidInput, NotFound
from domain.events import EventKind, ProgressUpdate, follow_batch
from workers.events import Broadcaster, InProcessEventBus, PostgresEventStore

REDIS_URL = os.environ.get("MMOS_TEST_PROGRESS_REDIS_URL", "redis://127.0.0.1:6379/7")
QUIET = 30.0  # a poll interval longer than any test: only the bus can deliver in time
PROMPT = 5.0  # seconds a live event may take to arrive


def redis_reachable() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
async def redis_bus(runtime: Any) -> AsyncIterator[Any]:
    """One Redis bus for the module (closing one waits for its readers' blocking reads)."""
    if not redis_reachable():
        yield None
        return
    from workers.events.redis_streams import RedisStreamEventBus

    streams = RedisStreamEventBus(PostgresEventStore(runtime), REDIS_URL, maxlen=100)
    yield streams
    await streams.aclose()


@pytest.fixture(params=["in-process", "redis"])
async def bus(request: pytest.FixtureRequest, db: Any, redis_bus: Any) -> AsyncIterator[Any]:
    if request.param == "in-process":
        yield InProcessEventBus(PostgresEventStore(db), hub=Broadcaster())
        return
    if redis_bus is None:
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    await redis_bus._redis().flushdb()
    yield redis_bus


class Log:
    """Writes a batch's events the way the engine does: rows first, then (maybe) a publish."""

    def __init__(self, runtime: Any, bus: Any, batch_id: int, run_ids: list[int]) -> None:
        self.runtime = runtime
        self.bus = bus
        self.batch_id = batch_id
        self.run_ids = run_ids

    async def append(self, kind: str, run: int | None = None, *, publish: bool = True,
                     **payload: Any) -> int:
        run_id = self.run_ids[run] if run is not None else None
        async with self.runtime.transaction() as session:
            seq = await ProcessingRepository(session).append_event(self.batch_id, kind, run_id,
                                                                   payload)
        if publish:
            await self.bus.publish_committed([(self.batch_id, seq)])
        return seq


async def new_batch(runtime: Any, bus: Any, runs: int = 1) -> Log:
    """A batch of the offline model over `runs` new sources, with its QUEUED event published."""
    async with runtime.transaction() as session:
        sources = []
        for _ in range(runs):
            content = f"I moved to Lisbon in 2019 ({uuid.uuid4()})."
            source = SourceRow(
                source_code=f"EVT_{uuid.uuid4().hex[:10]}", title="events", content=content,
                source_type="interview", quality="primary", extraction_priority="medium",
                status="pending", content_sha256=hashlib.sha256(content.encode()).hexdigest(),
                word_count=8, char_count=len(content), language="en")
            session.add(source)
            sources.append(source)
        await session.flush()
        model = await session.get(ModelRow, "rules-fast")
        assert model is not None
        created = await ProcessingRepository(session).create_batch(
            group_id=str(uuid.uuid4()), model=model, sources=sources, strategy=None,
            config={}, budget_usd=None, max_attempts=3)
        # The events are this test's to write: no worker may claim the batch's jobs (a
        # wake-up left over from an earlier test claims the most urgent job, whichever it is,
        # and its run would add STARTED … BATCH_DONE events of its own).
        await session.execute(sa.text(
            "UPDATE processing_queue SET status = 'cancelled' WHERE id = ANY(:ids)"),
            {"ids": created.job_ids})
        events = list(session.info["mmos_events"])
    await bus.publish_committed(events)
    return Log(runtime, bus, created.batch_id, created.run_ids)


class Follower:
    """Runs `follow_batch` in a task and keeps what it delivered."""

    def __init__(self, runtime: Any, bus: Any, batch_id: int, after: int = 0,
                 poll_seconds: float = QUIET) -> None:
        self.updates: list[ProgressUpdate] = []
        self._arrived = asyncio.Event()
        self.task = asyncio.create_task(self._run(runtime, bus, batch_id, after, poll_seconds))

    async def _run(self, runtime: Any, bus: Any, batch_id: int, after: int,
                   poll_seconds: float) -> None:
        store = PostgresEventStore(runtime)
        async for update in follow_batch(store, bus, batch_id, after,
                                         poll_seconds=poll_seconds):
            self.updates.append(update)
            self._arrived.set()

    @property
    def seqs(self) -> list[int]:
        return [update.event.seq for update in self.updates]

    @property
    def kinds(self) -> list[str]:
        return [str(update.event.kind) for update in self.updates]

    async def until(self, count: int, within: float = PROMPT) -> list[int]:
        """Wait until `count` updates arrived; returns their seqs."""
        async with asyncio.timeout(within):
            while len(self.updates) < count:
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"completed after {self.seqs}, expected {count}")
                self._arrived.clear()
                await self._arrived.wait()
        return self.seqs

    async def completed(self, within: float = PROMPT) -> list[int]:
        await asyncio.wait_for(asyncio.shield(self.task), within)
        return self.seqs

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_follower_gets_past_events_then_live_ones_in_seq_order(db: Any, bus: Any) -> None:
    # Given: a batch that has already started
    log = await new_batch(db, bus)
    await log.append("STARTED", 0, chunks=2)
    follower = Follower(db, bus, log.batch_id)
    try:
        assert await follower.until(2) == [1, 2]
        # When: the run goes on (the poll interval is too long to matter)
        await log.append("CHUNK_DONE", 0, chunk=0, fragments=3, costUsd="0.01")
        await log.append("CHUNK_DONE", 0, chunk=1, fragments=2, costUsd="0.02")
        await log.append("RUN_DONE", 0, fragments=4, costUsd="0.03", status="completed")
        await log.append("BATCH_DONE", runs=1, succeeded=1, costUsd="0.03")
        # Then
        assert await follower.completed() == [1, 2, 3, 4, 5, 6]
    finally:
        await follower.close()
    assert follower.kinds == ["QUEUED", "STARTED", "CHUNK_DONE", "CHUNK_DONE", "RUN_DONE",
                              "BATCH_DONE"]
    assert [u.progress for u in follower.updates] == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    assert [u.fragments for u in follower.updates] == [0, 0, 3, 5, 4, 4]
    assert str(follower.updates[-1].cost_usd) == "0.03"
    assert {u.model for u in follower.updates} == {"rules-fast"}


async def test_resuming_after_a_cursor_yields_exactly_the_later_events(db: Any, bus: Any) -> None:
    # Given: five events, of which the client saw three
    log = await new_batch(db, bus)
    await log.append("STARTED", 0, chunks=3)
    for chunk in range(3):
        await log.append("CHUNK_DONE", 0, chunk=chunk, fragments=1)
    # When
    follower = Follower(db, bus, log.batch_id, after=3)
    try:
        assert await follower.until(2) == [4, 5]
        await log.append("RUN_DONE", 0, fragments=3)
        await log.append("BATCH_DONE", costUsd="0")
        # Then: the totals still count the events before the cursor
        assert await follower.completed() == [4, 5, 6, 7]
    finally:
        await follower.close()
    assert [u.progress for u in follower.updates] == [round(2 / 3, 4), 1.0, 1.0, 1.0]
    assert follower.updates[1].fragments == 3


async def test_an_unpublished_event_is_read_from_postgres_when_the_next_one_arrives(
        db: Any, bus: Any) -> None:
    # Given: a follower waiting on the bus
    log = await new_batch(db, bus)
    follower = Follower(db, bus, log.batch_id)
    try:
        await follower.until(1)
        # When: one event is committed without a publish (the sweeper does that), then another
        await log.append("STARTED", 0, publish=False, chunks=1)
        await log.append("CHUNK_DONE", 0, chunk=0, fragments=2)
        # Then: the jump in seq sends the follower to Postgres at once
        assert await follower.until(3) == [1, 2, 3]
    finally:
        await follower.close()


async def test_a_silent_bus_is_covered_by_polling_postgres(db: Any, bus: Any) -> None:
    # Given
    log = await new_batch(db, bus)
    follower = Follower(db, bus, log.batch_id, poll_seconds=0.2)
    try:
        await follower.until(1)
        # When: the run fails and the batch ends with nothing published (a swept dead worker)
        await log.append("RUN_FAILED", 0, publish=False, fragments=0, message="worker died")
        await log.append("BATCH_FAILED", publish=False, costUsd="0")
        # Then
        assert await follower.completed() == [1, 2, 3]
    finally:
        await follower.close()
    assert follower.updates[1].event.payload["message"] == "worker died"


async def test_events_published_twice_are_delivered_once(db: Any, bus: Any) -> None:
    # Given
    log = await new_batch(db, bus)
    follower = Follower(db, bus, log.batch_id)
    try:
        await follower.until(1)
        # When: at-least-once publishing repeats events
        seq = await log.append("STARTED", 0, chunks=1)
        await bus.publish_committed([(log.batch_id, 1), (log.batch_id, seq)])
        await log.append("RUN_DONE", 0, fragments=1)
        await bus.publish_committed([(log.batch_id, seq), (log.batch_id, seq + 1)])
        await log.append("BATCH_DONE")
        # Then
        assert await follower.completed() == [1, 2, 3, 4]
    finally:
        await follower.close()


async def test_a_cancelled_batch_ends_at_cancelled_even_when_a_run_closes_after_it(
        db: Any, bus: Any) -> None:
    # Given: a cancelled batch whose worker closed its run afterwards
    log = await new_batch(db, bus)
    await log.append("STARTED", 0, chunks=4)
    await log.append("CANCELLED", message="cancelled")
    await log.append("RUN_FAILED", 0, status="skipped", message="cancelled")
    # When: followed late, and followed live
    late = Follower(db, bus, log.batch_id)
    resumed = Follower(db, bus, log.batch_id, after=3)
    try:
        # Then
        assert await late.completed() == [1, 2, 3]
        assert await resumed.completed() == []
    finally:
        await late.close()
        await resumed.close()
    assert late.kinds[-1] == "CANCELLED"
    assert late.updates[-1].progress == 1.0


async def test_a_retried_batch_is_followed_past_its_first_end(db: Any, bus: Any) -> None:
    # Given: a batch that failed, then had its run retried
    log = await new_batch(db, bus)
    await log.append("STARTED", 0, chunks=1)
    await log.append("RUN_FAILED", 0, fragments=0, message="bad request")
    await log.append("BATCH_FAILED", costUsd="0")
    await log.append("QUEUED", 0, retry=True)
    follower = Follower(db, bus, log.batch_id)
    try:
        # When
        assert await follower.until(5) == [1, 2, 3, 4, 5]
        assert follower.updates[-1].progress < 1.0
        await log.append("STARTED", 0, chunks=1)
        await log.append("RUN_DONE", 0, fragments=2)
        await log.append("BATCH_DONE", costUsd="0")
        # Then
        assert await follower.completed() == list(range(1, 9))
    finally:
        await follower.close()


async def test_a_follower_of_an_ended_batch_at_its_last_cursor_completes_at_once(
        db: Any, bus: Any) -> None:
    log = await new_batch(db, bus)
    last = await log.append("BATCH_DONE")
    follower = Follower(db, bus, log.batch_id, after=last)
    try:
        assert await follower.completed() == []
    finally:
        await follower.close()


async def test_unknown_batches_and_cursors_ahead_of_the_log_are_refused(db: Any, bus: Any) -> None:
    log = await new_batch(db, bus)
    store = PostgresEventStore(db)
    with pytest.raises(NotFound):
        await anext(follow_batch(store, bus, log.batch_id + 1000))
    with pytest.raises(InvalidInput, match="ahead"):
        await anext(follow_batch(store, bus, log.batch_id, after_seq=2))


async def test_many_followers_of_one_batch_each_get_every_event(db: Any, bus: Any) -> None:
    # Given
    log = await new_batch(db, bus)
    followers = [Follower(db, bus, log.batch_id) for _ in range(25)]
    try:
        for follower in followers:
            await follower.until(1)
        # When
        await log.append("STARTED", 0, chunks=10)
        for chunk in range(10):
            await log.append("CHUNK_DONE", 0, chunk=chunk, fragments=1)
        await log.append("RUN_DONE", 0, fragments=10)
        await log.append("BATCH_DONE")
        # Then
        for follower in followers:
            assert await follower.completed() == list(range(1, 15))
    finally:
        for follower in followers:
            await follower.close()


def test_the_broadcaster_delivers_from_another_thread_to_the_followers_loop() -> None:
    import datetime as dt
    import threading

    from db.events import TaggedEvent
    from domain.events import ProgressEvent
    from workers.events.feed import LiveQueue

    async def scenario() -> list[int]:
        # Given: a follower on this loop
        hub = Broadcaster()
        queue = LiveQueue()
        hub.add(7, "group-a", queue)
        event = ProgressEvent(7, 1, EventKind.QUEUED, None, {}, dt.datetime.now(dt.UTC))
        # When: a worker thread (another loop) publishes, once with a foreign tag
        def publish() -> None:
            hub.deliver(TaggedEvent("group-b", event))
            hub.deliver(TaggedEvent("group-a", event))

        publisher = threading.Thread(target=publish)
        publisher.start()
        publisher.join()
        got = [await queue.next(PROMPT), await queue.next(0.1)]
        hub.remove(7, queue)
        return [e.seq if e else 0 for e in got] + [hub.followers(7)]

    # Then: the event of this batch arrived once, the other tag's never
    assert asyncio.run(scenario()) == [1, 0, 0]


@pytest.fixture
async def streams(db: Any, redis_bus: Any) -> Any:
    if redis_bus is None:
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    await redis_bus._redis().flushdb()
    return redis_bus


async def test_stream_entry_ids_are_the_cursors_and_retention_is_bounded(
        db: Any, streams: Any) -> None:
    from workers.events.redis_streams import stream_key

    # Given: a batch with 300 events (the bus keeps about 100 per stream)
    log = await new_batch(db, streams)
    async with db.transaction() as session:
        repository = ProcessingRepository(session)
        for chunk in range(299):
            await repository.append_event(log.batch_id, "CHUNK_DONE", log.run_ids[0],
                                          {"chunk": chunk, "fragments": 1})
        events = list(session.info["mmos_events"])
    # When
    await streams.publish_committed(events)
    # Then
    client = streams._redis()
    key = stream_key(log.batch_id)
    entries = await client.xrange(key)
    ids = [entry_id for entry_id, _ in entries]
    assert 100 <= len(ids) < 300
    first = int(ids[0].split("-")[0])
    assert ids == [f"{seq}-0" for seq in range(first, 301)]
    assert 0 < await client.ttl(key) <= streams.ttl_seconds
    # And a follower resuming before what the stream still holds reads it from Postgres
    follower = Follower(db, streams, log.batch_id, after=2)
    try:
        assert await follower.until(298) == list(range(3, 301))
    finally:
        await follower.close()


async def test_a_stream_left_by_an_earlier_database_is_never_read(db: Any, streams: Any) -> None:
    from workers.events.redis_streams import stream_key

    # Given: the batch's stream key holds entries of another batch that had the same id
    log = await new_batch(db, InProcessEventBus(PostgresEventStore(db), hub=Broadcaster()))
    client = streams._redis()
    key = stream_key(log.batch_id)
    for seq in range(1, 41):
        await client.xadd(key, {"t": "earlier-database", "e": "{}"}, id=f"{seq}-0")
    log.bus = streams
    # When: followed, then published
    follower = Follower(db, streams, log.batch_id)
    try:
        assert await follower.until(1) == [1]
        await log.append("STARTED", 0, chunks=1)
        await log.append("RUN_DONE", 0, fragments=1)
        await log.append("BATCH_DONE")
        # Then: the stale entries were dropped, the batch's own were delivered live
        assert await follower.completed() == [1, 2, 3, 4]
    finally:
        await follower.close()
    assert [entry_id for entry_id, _ in await client.xrange(key)] == ["2-0", "3-0", "4-0"]


async def test_publishing_replaces_a_stream_left_by_an_earlier_database(
        db: Any, streams: Any) -> None:
    from workers.events.redis_streams import stream_key

    # Given
    log = await new_batch(db, InProcessEventBus(PostgresEventStore(db), hub=Broadcaster()))
    client = streams._redis()
    key = stream_key(log.batch_id)
    await client.xadd(key, {"t": "earlier-database", "e": "{}"}, id="90-0")
    # When
    await streams.publish_committed([(log.batch_id, 1)])
    # Then
    entries = await client.xrange(key)
    assert [entry_id for entry_id, _ in entries] == ["1-0"]
    assert entries[0][1]["t"] != "earlier-database"


async def test_followers_fall_back_to_postgres_when_redis_is_unreachable(db: Any) -> None:
    import redis

    from workers.events.redis_streams import RedisStreamEventBus

    # Given: a bus pointed at a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = RedisStreamEventBus(PostgresEventStore(db), f"redis://127.0.0.1:{port}/0")
    log = await new_batch(db, InProcessEventBus(PostgresEventStore(db), hub=Broadcaster()))
    log.bus = down
    follower = Follower(db, down, log.batch_id, poll_seconds=0.2)
    try:
        # When: events are committed and their publication fails
        await log.append("STARTED", 0, publish=False, chunks=1)
        with pytest.raises(redis.ConnectionError):
            await down.publish_committed([(log.batch_id, 2)])
        await log.append("BATCH_FAILED", publish=False)
        # Then
        assert await follower.completed() == [1, 2, 3]
    finally:
        await follower.close()
        await down.aclose()
