"""Batch progress events: the event log, its cursors, the EventBus port and how subscribers follow.

Postgres (`batch_events`) is the source of truth: every state change appends a row with the
batch's next `seq` (1, 2, 3 … with no gaps) in the transaction that makes the change. The bus
is only the low-latency path: a follower reads Postgres first, then takes live events while they
continue the sequence, and reads Postgres again whenever one is missing (a jump in `seq`, a
dropped message, a writer that never published, such as the sweeper) or when it has heard
nothing for `poll_seconds`. So a follower never skips, repeats or reorders an event.

A cursor is the Redis Stream entry id of an event, `"<seq>-0"` (both buses use that form):
resuming with `after=cursor` yields exactly the events with a greater `seq`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from domain.errors import InvalidInput, NotFound


class EventKind(enum.StrEnum):
    """What happened to a batch (or one of its runs)."""

    QUEUED = "QUEUED"
    STARTED = "STARTED"
    CHUNK_DONE = "CHUNK_DONE"
    RUN_DONE = "RUN_DONE"
    RUN_FAILED = "RUN_FAILED"
    BUDGET_PAUSED = "BUDGET_PAUSED"
    BATCH_DONE = "BATCH_DONE"
    BATCH_FAILED = "BATCH_FAILED"
    CANCELLED = "CANCELLED"

    @property
    def ends_batch(self) -> bool:
        return self in (EventKind.BATCH_DONE, EventKind.BATCH_FAILED, EventKind.CANCELLED)


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One row of a batch's event log."""

    batch_id: int
    seq: int
    kind: EventKind
    run_id: int | None
    payload: Mapping[str, Any]
    at: dt.datetime

    @property
    def cursor(self) -> str:
        return cursor_of(self.seq)


def cursor_of(seq: int) -> str:
    """The cursor of the event with this seq: its Redis Stream entry id."""
    return f"{seq}-0"


def parse_cursor(raw: str | None, path: tuple[str, ...] = ("after",)) -> int:
    """The seq a cursor points at (0 for none); accepts `"<seq>-0"` and a bare `"<seq>"`."""
    if raw is None or raw == "":
        return 0
    text = raw.strip()
    seq, dash, rest = text.partition("-")
    if not seq.isdigit() or len(seq) > 18 or (dash and rest != "0"):
        raise InvalidInput.single(path, "is not a progress cursor (expected `<seq>-0`)")
    return int(seq)


@dataclass(frozen=True, slots=True)
class BatchHead:
    """What a follower needs to know about a batch before it starts.

    Parameters:
      tag: identifies this batch among batches that had the same id in an earlier database
        (its group id): a bus drops messages with another tag.
      seq: the seq of the newest committed event.
    """

    batch_id: int
    model: str
    tag: str
    seq: int


class EventStore(Protocol):
    """The durable event log (Postgres)."""

    async def head(self, batch_id: int) -> BatchHead | None: ...

    async def events_after(self, batch_id: int, after_seq: int,
                           limit: int) -> list[ProgressEvent]: ...


class LiveFeed(Protocol):
    """Live events of one batch for one follower, as the bus delivered them."""

    async def next(self, wait_seconds: float) -> ProgressEvent | None:
        """The next event, or None after `wait_seconds` or when events were dropped."""
        ...


class EventBus(Protocol):
    """Carries committed events to followers quickly; Postgres stays the source of truth."""

    async def publish_committed(self, events: Sequence[tuple[int, int]]) -> None:
        """Publish the committed events identified by (batch id, seq)."""
        ...

    def subscribe(self, batch_id: int, tag: str) -> AbstractAsyncContextManager[LiveFeed]:
        """Live events of a batch from now on (none published before the call returns)."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class _RunTotals:
    chunk_count: int = 0
    chunk_fragments: dict[int, int] = field(default_factory=dict)
    chunk_cost: Decimal = Decimal(0)
    final_fragments: int | None = None
    final_cost: Decimal | None = None

    @property
    def units(self) -> int:
        return max(self.chunk_count, 1)

    @property
    def done_units(self) -> int:
        if self.final_fragments is not None:
            return self.units
        return min(len(self.chunk_fragments), self.units)

    @property
    def fragments(self) -> int:
        if self.final_fragments is not None:
            return self.final_fragments
        return sum(self.chunk_fragments.values())

    @property
    def cost(self) -> Decimal:
        return self.final_cost if self.final_cost is not None else self.chunk_cost


class BatchTotals:
    """A batch's running totals folded from its events: progress, fragments, cost, ended.

    Progress counts chunks the way `Batch.progress` does (a finished run counts whole), so the
    value an event carries is the batch's progress as of that event, also when replayed.
    """

    def __init__(self) -> None:
        self.runs_expected = 0
        self.runs: dict[int, _RunTotals] = {}
        self.ended = False
        self._batch_cost: Decimal | None = None

    def apply(self, event: ProgressEvent) -> None:
        """Fold one event in (events must come in seq order)."""
        payload, kind = event.payload, event.kind
        run = self._run(event.run_id)
        if kind is EventKind.QUEUED:
            if run is None:
                self.runs_expected = max(self.runs_expected, _int(payload.get("runs")))
            else:  # a retried run: it will be counted again when it ends
                run.final_fragments = run.final_cost = None
            self.ended, self._batch_cost = False, None
        elif kind is EventKind.STARTED and run is not None:
            run.chunk_count = _int(payload.get("chunks"))
        elif kind is EventKind.CHUNK_DONE and run is not None:
            run.chunk_fragments[_int(payload.get("chunk"))] = _int(payload.get("fragments"))
            run.chunk_cost += _money(payload.get("costUsd"))
        elif kind in (EventKind.RUN_DONE, EventKind.RUN_FAILED) and run is not None:
            run.final_fragments = _int(payload.get("fragments"))
            run.final_cost = _money(payload.get("costUsd"), run.chunk_cost)
        elif kind.ends_batch:
            self.ended = True
            if "costUsd" in payload:
                self._batch_cost = _money(payload.get("costUsd"))

    def _run(self, run_id: int | None) -> _RunTotals | None:
        if run_id is None:
            return None
        return self.runs.setdefault(run_id, _RunTotals())

    @property
    def progress(self) -> float:
        if self.ended:
            return 1.0
        unseen = max(self.runs_expected - len(self.runs), 0)
        total = sum(run.units for run in self.runs.values()) + unseen
        done = sum(run.done_units for run in self.runs.values())
        return round(done / total, 4) if total else 0.0

    @property
    def fragments(self) -> int:
        return sum(run.fragments for run in self.runs.values())

    @property
    def cost_usd(self) -> Decimal:
        if self._batch_cost is not None:
            return self._batch_cost
        return sum((run.cost for run in self.runs.values()), Decimal(0))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _money(value: Any, default: Decimal = Decimal(0)) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else default
    except InvalidOperation:
        return default


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """An event as a follower delivers it, with the batch's totals as of that event."""

    event: ProgressEvent
    model: str
    progress: float
    fragments: int
    cost_usd: Decimal


class _Follower:
    """The state of one follower: the last seq delivered and the folded totals."""

    def __init__(self, head: BatchHead, after_seq: int) -> None:
        self.head = head
        self.after = after_seq
        self.last = 0
        self.totals = BatchTotals()

    def take(self, event: ProgressEvent) -> ProgressUpdate | None:
        """Fold `event`; the update to deliver, or None when it is not delivered."""
        reopens = event.kind is EventKind.QUEUED
        hidden = self.totals.ended and not reopens  # e.g. a skipped run closing after CANCELLED
        self.totals.apply(event)
        self.last = event.seq
        if event.seq <= self.after or hidden:
            return None
        return ProgressUpdate(event, self.head.model, self.totals.progress,
                              self.totals.fragments, self.totals.cost_usd)


async def follow_batch(store: EventStore, bus: EventBus, batch_id: int, after_seq: int = 0, *,
                       poll_seconds: float = 5.0, page_size: int = 500
                       ) -> AsyncGenerator[ProgressUpdate, None]:
    """Every event of a batch after `after_seq` in seq order, then live ones, until it ends.

    Completes once the batch has ended (BATCH_DONE, BATCH_FAILED, CANCELLED and no retry since)
    and every event known up to that end was delivered.
    """
    head = await store.head(batch_id)
    if head is None:
        raise NotFound("Batch", batch_id, ("batchId",))
    if after_seq > head.seq:
        raise InvalidInput.single(("after",), "is ahead of the batch's events")
    state = _Follower(head, after_seq)
    # Subscribe before reading: an event committed meanwhile is then in the read or on the bus.
    async with bus.subscribe(batch_id, head.tag) as live:
        while True:
            page = await store.events_after(batch_id, state.last, page_size)
            for event in page:
                if (update := state.take(event)) is not None:
                    yield update
            if len(page) == page_size:
                continue
            while not state.totals.ended:
                arrived = await live.next(poll_seconds)
                if arrived is None or arrived.seq > state.last + 1:
                    break  # quiet for a while, dropped events, or a gap: read Postgres
                if arrived.seq > state.last and (update := state.take(arrived)) is not None:
                    yield update
            if state.totals.ended:
                return
