"""The quality service: measures a source's runs when one ends, and again when its reference
moves (a new run, possibly of a dearer model; a verification; new settings).

Registered as `runtime.services["quality"]` in every runtime (API and worker hosts). The
pipeline calls `run_finished(run_id, status)` after a run's final commit; the verification
feature calls `recompute_source(source_id)` after changing a fragment's verdict.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from api.bootstrap import Runtime, on_startup
from api.settings import Settings
from db.performance import PerformanceRepository, PolicyDefaults

log = logging.getLogger("mmos.quality")

CATCH_UP_LIMIT = 100


def policy_defaults(settings: Settings) -> PolicyDefaults:
    """The environment's quality defaults (the settings table overrides them)."""
    return PolicyDefaults(min_verified=settings.quality_min_verified_fragments,
                          reference_model=settings.quality_reference_model)


async def recompute_source(runtime: Runtime, source_id: int) -> int:
    """Measure every completed run of a source again; returns the number of runs measured."""
    async with runtime.transaction() as session:
        return await PerformanceRepository(session).measure(source_id,
                                                            policy_defaults(runtime.settings))


async def recompute_all(runtime: Runtime) -> int:
    """Measure every source with completed runs again (after weights or reference changed)."""
    async with runtime.read() as session:
        source_ids = await PerformanceRepository(session).measured_sources()
    for source_id in source_ids:
        await recompute_source(runtime, source_id)
    return len(source_ids)


class QualityService:
    """Follows run ends: measure the source, then let a strategy plan take its next step.

    Parameters:
      runtime: the runtime of the process (API or worker host) the service lives in.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run_finished(self, run_id: int, status: str) -> None:
        """A run ended with `status`: measure its source when it completed, advance strategies."""
        async with self.runtime.read() as session:
            row = (await session.execute(sa.text(
                "SELECT source_id, batch_id FROM source_processing WHERE id = :r"),
                {"r": run_id})).first()
        if row is None:
            return
        if status == "completed":
            await self.recompute_source(row.source_id)
        from api.strategies import advance_strategy

        await advance_strategy(self.runtime, row.batch_id)

    async def recompute_source(self, source_id: int) -> int:
        """Measure the source's runs again against the reference now in force."""
        return await recompute_source(self.runtime, source_id)


async def catch_up(runtime: Runtime) -> None:
    """After a crash between a run's end and its measurement: measure, then advance plans."""
    async with runtime.read() as session:
        pending = await PerformanceRepository(session).unmeasured_sources(CATCH_UP_LIMIT)
    for source_id in pending:
        await recompute_source(runtime, source_id)
    from api.strategies import advance_stalled_strategies

    await advance_stalled_strategies(runtime, CATCH_UP_LIMIT)


@on_startup
async def install_quality(runtime: Runtime) -> None:
    """Register the service (idempotent) and finish what a crash may have left undone."""
    runtime.services["quality"] = QualityService(runtime)
    try:
        await catch_up(runtime)
    except Exception:  # never block a start; the next run end measures again
        log.warning("quality catch-up failed", exc_info=True)
