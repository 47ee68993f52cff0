"""The pure side of progress events: cursors, the totals fold, following with fake ports.

(No I/O: these would sit in tests/unit/; they live next to the bus tests they complement.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import InvalidInput
from domain.events import (
    BatchHead,
    BatchTotals,
    EventKind,
    ProgressEvent,
    cursor_of,
    follow_batch,
    parse_cursor,
)

AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def event(seq: int, kind: str, run: int | None = None, **payload: Any) -> ProgressEvent:
    return ProgressEvent(batch_id=1, seq=seq, kind=EventKind(kind), run_id=run, payload=payload,
                         at=AT)


@pytest.mark.parametrize(("raw", "seq"), [(None, 0), ("", 0), ("0-0", 0), ("12-0", 12),
                                          ("12", 12), (" 7-0 ", 7)])
def test_a_cursor_is_the_stream_entry_id_of_its_seq(raw: str | None, seq: int) -> None:
    assert parse_cursor(raw) == seq
    assert parse_cursor(cursor_of(seq)) == seq


@pytest.mark.parametrize("raw", ["abc", "12-1", "-1", "1-0-0", "9" * 19, "MTI=", "1.5"])
def test_a_malformed_cursor_is_a_field_error_on_after(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_cursor(raw)
    assert caught.value.issues[0].path == ("after",)


def fold(*events: ProgressEvent) -> BatchTotals:
    totals = BatchTotals()
    for item in events:
        totals.apply(item)
    return totals


def test_progress_counts_chunks_of_every_run_including_runs_not_started() -> None:
    # Given: two runs, one started with four chunks, one still queued
    totals = fold(event(1, "QUEUED", runs=2), event(2, "STARTED", 10, chunks=4),
                  event(3, "CHUNK_DONE", 10, chunk=0, fragments=2, costUsd="0.010"),
                  event(4, "CHUNK_DONE", 10, chunk=1, fragments=3, costUsd="0.020"))
    # Then: 2 of 4 + 1 unit for the run not started
    assert totals.progress == 0.4
    assert totals.fragments == 5
    assert totals.cost_usd == Decimal("0.030")
    assert not totals.ended


def test_a_chunk_redone_is_counted_once_for_progress_but_paid_twice() -> None:
    totals = fold(event(1, "QUEUED", runs=1), event(2, "STARTED", 10, chunks=2),
                  event(3, "CHUNK_DONE", 10, chunk=0, fragments=2, costUsd="0.01"),
                  event(4, "CHUNK_DONE", 10, chunk=0, fragments=3, costUsd="0.01"))
    assert totals.progress == 0.5
    assert totals.fragments == 3
    assert totals.cost_usd == Decimal("0.02")


def test_a_finished_run_counts_whole_with_its_final_figures() -> None:
    totals = fold(event(1, "QUEUED", runs=2), event(2, "STARTED", 10, chunks=4),
                  event(3, "CHUNK_DONE", 10, chunk=0, fragments=6, costUsd="0.01"),
                  event(4, "RUN_FAILED", 10, fragments=5, costUsd="0.05", message="x"))
    assert totals.progress == 0.8  # 4 of 4 + 0 of 1
    assert totals.fragments == 5  # overlaps removed at the end of the run
    assert totals.cost_usd == Decimal("0.05")


def test_an_ended_batch_is_complete_and_a_retry_reopens_it() -> None:
    # Given
    totals = fold(event(1, "QUEUED", runs=1), event(2, "STARTED", 10, chunks=2),
                  event(3, "RUN_FAILED", 10, fragments=0, costUsd="0.01"),
                  event(4, "BATCH_FAILED", costUsd="0.01"))
    assert (totals.ended, totals.progress, totals.cost_usd) == (True, 1.0, Decimal("0.01"))
    # When
    totals.apply(event(5, "QUEUED", 10, retry=True))
    # Then
    assert (totals.ended, totals.progress) == (False, 0.0)


def test_malformed_payload_figures_count_as_zero() -> None:
    totals = fold(event(1, "QUEUED", runs="many"), event(2, "STARTED", 10, chunks=None),
                  event(3, "CHUNK_DONE", 10, chunk=0, fragments="x", costUsd="NaN?"))
    assert (totals.fragments, totals.cost_usd, totals.progress) == (0, Decimal(0), 1.0)


class FakeStore:
    def __init__(self, events: list[ProgressEvent]) -> None:
        self.events = events
        self.reads = 0

    async def head(self, batch_id: int) -> BatchHead | None:
        return BatchHead(batch_id, "rules-fast", "tag", self.events[-1].seq if self.events else 0)

    async def events_after(self, batch_id: int, after_seq: int,
                           limit: int) -> list[ProgressEvent]:
        self.reads += 1
        return [e for e in self.events if e.seq > after_seq][:limit]


class FakeFeed:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()

    async def next(self, wait_seconds: float) -> ProgressEvent | None:
        try:
            async with asyncio.timeout(wait_seconds):
                return await self.queue.get()
        except TimeoutError:
            return None


class FakeBus:
    def __init__(self) -> None:
        self.feed = FakeFeed()

    async def publish_committed(self, events: Any) -> None:
        raise NotImplementedError

    @asynccontextmanager
    async def subscribe(self, batch_id: int, tag: str) -> AsyncIterator[FakeFeed]:
        yield self.feed

    async def aclose(self) -> None:
        pass


async def test_a_bus_delivering_out_of_order_and_twice_yields_each_event_once_in_order() -> None:
    # Given: two events in the log, a follower on a misbehaving bus
    store = FakeStore([event(1, "QUEUED", runs=1), event(2, "STARTED", 10, chunks=2)])
    bus = FakeBus()
    seen: list[int] = []

    async def follow() -> None:
        async for update in follow_batch(store, bus, 1, poll_seconds=30):
            seen.append(update.event.seq)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    # When: 3, 4, 5 are committed; the bus delivers 4 first, then 3, 3 again, 5 and 2
    later = [event(3, "CHUNK_DONE", 10, chunk=0), event(4, "CHUNK_DONE", 10, chunk=1),
             event(5, "BATCH_DONE")]
    store.events += later
    for item in (later[1], later[0], later[0], later[2], store.events[1]):
        bus.feed.queue.put_nowait(item)
    await asyncio.wait_for(task, 5)
    # Then
    assert seen == [1, 2, 3, 4, 5]


async def test_a_dropped_feed_sends_the_follower_to_the_store() -> None:
    # Given
    store = FakeStore([event(1, "QUEUED", runs=1)])
    bus = FakeBus()
    updates = follow_batch(store, bus, 1, poll_seconds=30)
    assert (await anext(updates)).event.seq == 1
    reads = store.reads
    # When: the feed reports lost events (None) while the log moved on
    store.events += [event(2, "CANCELLED")]
    bus.feed.queue.put_nowait(None)
    # Then
    assert (await asyncio.wait_for(anext(updates), 5)).event.seq == 2
    assert store.reads == reads + 1
    with pytest.raises(StopAsyncIteration):
        await anext(updates)
