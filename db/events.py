"""The event log in Postgres (`batch_events`), read by followers and by publishers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from db.tables import BatchEventRow, BatchRow
from domain.events import BatchHead, EventKind, ProgressEvent

_E = BatchEventRow.__table__.c  # type: ignore[attr-defined]
_B = BatchRow.__table__.c  # type: ignore[attr-defined]
_COLUMNS = (_E.batch_id, _E.seq, _E.kind, _E.run_id, _E.payload, _E.created_at)


@dataclass(frozen=True, slots=True)
class TaggedEvent:
    """A committed event with its batch's tag (the group id), as a bus publishes it."""

    tag: str
    event: ProgressEvent


def _event(row: Any) -> ProgressEvent:
    return ProgressEvent(batch_id=row.batch_id, seq=row.seq, kind=EventKind(row.kind),
                         run_id=row.run_id, payload=row.payload or {}, at=row.created_at)


class PostgresEventStore:
    """Reads events through short sessions of `sessions` (safe to share between followers).

    Parameters:
      sessions: anything whose `read()` is an async context manager yielding a session, such
        as the process's database runtime (duck-typed: this module does not import it).
    """

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions

    async def head(self, batch_id: int) -> BatchHead | None:
        """The batch's model, tag and newest committed seq; None when there is no such batch."""
        async with self.sessions.read() as session:
            row = (await session.execute(
                sa.select(_B.id, _B.model_name, _B.group_id, _B.event_seq)
                .where(_B.id == batch_id))).first()
        if row is None:
            return None
        return BatchHead(batch_id=row.id, model=row.model_name, tag=row.group_id,
                         seq=row.event_seq)

    async def events_after(self, batch_id: int, after_seq: int,
                           limit: int) -> list[ProgressEvent]:
        """Up to `limit` events with seq > `after_seq`, in seq order."""
        async with self.sessions.read() as session:
            rows = await session.execute(
                sa.select(*_COLUMNS).where(_E.batch_id == batch_id, _E.seq > after_seq)
                .order_by(_E.seq).limit(limit))
        return [_event(row) for row in rows]

    async def committed(self, keys: Sequence[tuple[int, int]]) -> list[TaggedEvent]:
        """The events identified by (batch id, seq), ordered by batch then seq."""
        if not keys:
            return []
        async with self.sessions.read() as session:
            rows = await session.execute(
                sa.select(*_COLUMNS, _B.group_id)
                .join(BatchRow, _B.id == _E.batch_id)
                .where(sa.tuple_(_E.batch_id, _E.seq).in_(sorted(set(keys))))
                .order_by(_E.batch_id, _E.seq))
        return [TaggedEvent(row.group_id, _event(row)) for row in rows]
