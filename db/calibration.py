"""The pairs calibration reads: runs scored without a human reference, then with one."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from domain.calibration import CalibrationPair

_PAIRS = sa.text("""
    SELECT mp.source_id, mp.run_id, mp.model_name, mp.unverified_kind,
           mp.unverified_score, mp.quality_score
    FROM model_performance mp
    JOIN source_processing r ON r.id = mp.run_id
    WHERE mp.reference_kind = 'verified'
      AND mp.unverified_score IS NOT NULL
      AND r.status IN ('completed', 'completed_with_errors')
      AND (CAST(:source_type AS text) IS NULL OR mp.source_type = CAST(:source_type AS text))
    ORDER BY mp.source_id, mp.run_id""")


class CalibrationRepository:
    """Reads inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pairs(self, source_type: str | None = None) -> list[CalibrationPair]:
        """(provisional, verified) score pairs of completed runs now measured against a human
        reference, of one source type or all."""
        rows = await self.session.execute(_PAIRS, {"source_type": source_type})
        return [CalibrationPair(source_id=int(r.source_id), run_id=int(r.run_id),
                                model=str(r.model_name), kind=r.unverified_kind,
                                provisional=float(r.unverified_score),
                                verified=float(r.quality_score))
                for r in rows]
