"""Provider batch submissions of BATCH-mode runs (`provider_batches`), inside the caller's
transaction. A submission row, with the reservations of its worst case, is written before
anything is sent, so a worker that dies at any point resumes from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import ProviderBatchRow

_P = ProviderBatchRow.__table__.c  # type: ignore[attr-defined]
OPEN = ("submitting", "submitted")


class ProviderBatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_of_run(self, run_id: int) -> ProviderBatchRow | None:
        """The run's submission still in flight (at most one at a time)."""
        found = await self.session.execute(
            sa.select(ProviderBatchRow).where(_P.run_id == run_id, _P.status.in_(OPEN))
            .order_by(_P.id.desc()).limit(1))
        return found.scalars().first()

    async def of_runs(self, run_ids: Sequence[int]) -> dict[int, list[ProviderBatchRow]]:
        """Every submission of these runs, oldest first."""
        grouped: dict[int, list[ProviderBatchRow]] = {i: [] for i in run_ids}
        if not run_ids:
            return grouped
        found = await self.session.execute(
            sa.select(ProviderBatchRow).where(_P.run_id.in_(list(run_ids)))
            .order_by(_P.run_id, _P.id))
        for row in found.scalars():
            grouped[row.run_id].append(row)
        return grouped

    async def create(self, *, run_id: int, key: str, provider: str, chunks: Sequence[int],
                     reservations: Mapping[int, int]) -> ProviderBatchRow:
        row = ProviderBatchRow(run_id=run_id, idempotency_key=key, status="submitting",
                               provider=provider, chunks=list(chunks),
                               reservations={str(k): v for k, v in reservations.items()})
        self.session.add(row)
        await self.session.flush()
        return row

    async def submitted(self, row_id: int, *, input_file_id: str, batch_id: str) -> None:
        await self._update(row_id, status="submitted", input_file_id=input_file_id,
                           provider_batch_id=batch_id, provider_status="validating")

    async def polled(self, row_id: int, provider_status: str) -> None:
        await self.session.execute(
            sa.update(ProviderBatchRow).where(_P.id == row_id)
            .values(provider_status=provider_status, polls=_P.polls + 1,
                    updated_at=sa.func.now()))

    async def collected(self, row_id: int, *, provider_status: str, output_file_id: str | None,
                        error_file_id: str | None, error: str | None) -> None:
        await self._update(row_id, status="collected", provider_status=provider_status,
                           output_file_id=output_file_id, error_file_id=error_file_id,
                           error=error)

    async def abandoned(self, row_id: int, error: str) -> None:
        await self._update(row_id, status="abandoned", error=error[:2000])

    async def _update(self, row_id: int, **values: Any) -> None:
        await self.session.execute(sa.update(ProviderBatchRow).where(_P.id == row_id)
                                   .values(**values, updated_at=sa.func.now()))
