"""Batches, runs, chunks and fragments: the rows the extraction pipeline reads and writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.jobs import JobQueue
from db.tables import (
    BatchRow,
    FragmentRow,
    FragmentTagRow,
    ModelRow,
    RunChunkRow,
    RunRow,
    SourceRow,
    TagRow,
)
from domain.extraction import PreparedFragment
from domain.model import Category, ExtractionPriority, JobKind
from domain.sources import search_config_for

_R = RunRow.__table__.c  # type: ignore[attr-defined]
_F = FragmentRow.__table__.c  # type: ignore[attr-defined]
_B = BatchRow.__table__.c  # type: ignore[attr-defined]

ACTIVE_RUN = ("pending", "processing", "waiting_budget")

_FRAGMENT_INSERT = (
    sa.insert(FragmentRow.__table__)  # type: ignore[arg-type]
    .returning(FragmentRow.__table__.c.id, FragmentRow.__table__.c.ordinal,  # type: ignore[attr-defined]
               sort_by_parameter_order=True)
)


async def allocate_codes(executor: Any, categories: Sequence[Category]) -> list[str]:
    """FRAG_<CAT>_<NNN>: each category's counter row advanced by one UPDATE … RETURNING
    (never MAX()+1), in a fixed order so concurrent writers cannot deadlock. `executor` is a
    session or a connection (autocommit: the counter is released right after its statement)."""
    needed: dict[str, int] = {}
    for category in categories:
        needed[category.code] = needed.get(category.code, 0) + 1
    next_value: dict[str, int] = {}
    for code in sorted(needed):
        last = (await executor.execute(sa.text(
            "UPDATE fragment_code_counters SET last_value = last_value + :n"
            " WHERE category_code = :c RETURNING last_value"),
            {"n": needed[code], "c": code})).scalar_one()
        next_value[code] = int(last) - needed[code] + 1
    codes = []
    for category in categories:
        value = next_value[category.code]
        next_value[category.code] = value + 1
        codes.append(f"FRAG_{category.code}_{value:03d}")
    return codes


async def batch_progress(session: Any, batch_ids: list[int]) -> list[Any]:
    """(id, model_name, status, chunks, done) of each batch: chunks over all its runs."""
    rows = await session.execute(sa.text(
        "SELECT b.id, b.model_name, b.status, sum(r.chunk_count) AS chunks,"
        " sum(r.chunks_done) AS done FROM processing_batches b"
        " JOIN source_processing r ON r.batch_id = b.id WHERE b.id = ANY(:ids)"
        " GROUP BY b.id ORDER BY b.id"), {"ids": batch_ids})
    return list(rows)


async def run_summaries(session: Any, batch_ids: list[int]) -> list[Any]:
    """One row per run of the batches: counts (MIU-clean included), cost, latency, error."""
    rows = await session.execute(sa.text(
        "SELECT s.source_code, r.model_name, r.status, r.fragment_count, r.grounded_count,"
        " (SELECT count(*) FROM fragments f WHERE f.run_id = r.id AND f.is_complete"
        "   AND f.has_clean_boundaries) AS miu, r.cost_usd, r.latency_ms, r.error_message"
        " FROM source_processing r JOIN sources s ON s.id = r.source_id"
        " WHERE r.batch_id = ANY(:ids) ORDER BY s.source_code, r.model_name"),
        {"ids": batch_ids})
    return list(rows)


class RunNotActive(Exception):
    """The run stopped (cancelled, finished elsewhere) while a chunk was being written."""


@dataclass(frozen=True, slots=True)
class NewBatch:
    batch_id: int
    model_name: str
    run_ids: list[int]
    job_ids: list[int]


@dataclass(frozen=True, slots=True)
class RunContext:
    run: RunRow
    batch: BatchRow
    source: SourceRow
    model: ModelRow


@dataclass(frozen=True, slots=True)
class ChunkUsage:
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int
    llm_calls: int


class ProcessingRepository:
    """Writes of the pipeline, each inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- creation -------------------------------------------------------------------------

    async def create_batch(
        self,
        *,
        group_id: str,
        model: ModelRow,
        sources: Sequence[SourceRow],
        strategy: str | None,
        config: dict[str, Any],
        budget_usd: Decimal | None,
        max_attempts: int,
        decisions: list[Any] | None = None,
    ) -> NewBatch:
        """One batch for one model: a run and a job per source, QUEUED events included."""
        batch = BatchRow(
            group_id=group_id,
            model_name=model.name,
            status="queued",
            strategy=strategy,
            config=config,
            budget_usd=budget_usd,
            decisions=decisions or [],
        )
        self.session.add(batch)
        await self.session.flush()
        assert batch.id is not None
        runs, jobs = [], []
        queue = JobQueue(self.session)
        for source in sources:
            run = RunRow(
                batch_id=batch.id, source_id=source.id or 0, model_name=model.name, status="pending"
            )
            self.session.add(run)
            await self.session.flush()
            assert run.id is not None
            runs.append(run.id)
            priority = ExtractionPriority(source.extraction_priority).rank
            jobs.append(
                await queue.enqueue(
                    kind=JobKind.EXTRACT_RUN.value,
                    priority=priority,
                    run_id=run.id,
                    batch_id=batch.id,
                    max_attempts=max_attempts,
                )
            )
        await self.session.execute(
            sa.update(SourceRow)
            .where(
                SourceRow.__table__.c.id.in_([s.id for s in sources])  # type: ignore[attr-defined]
            )
            .values(status="processing", updated_at=sa.func.now())
        )
        await self.append_event(batch.id, "QUEUED", None, {"model": model.name, "runs": len(runs)})
        return NewBatch(batch.id, model.name, runs, jobs)

    # -- reads ------------------------------------------------------------------------------

    async def run_context(self, run_id: int) -> RunContext | None:
        run = await self.session.get(RunRow, run_id)
        if run is None:
            return None
        batch = await self.session.get(BatchRow, run.batch_id)
        source = await self.session.get(SourceRow, run.source_id)
        model = await self.session.get(ModelRow, run.model_name)
        if batch is None or source is None or model is None:
            return None
        return RunContext(run, batch, source, model)

    async def done_chunks(self, run_id: int) -> set[int]:
        rows = await self.session.execute(
            sa.select(RunChunkRow.__table__.c.chunk_index).where(  # type: ignore[attr-defined]
                RunChunkRow.__table__.c.run_id == run_id
            )
        )  # type: ignore[attr-defined]
        return {row[0] for row in rows}

    # -- state changes -------------------------------------------------------------------------

    async def run_status(self, run_id: int, *, lock: bool = False) -> str | None:
        """The run's status; with `lock`, holding the run row (lock order: run → batch)."""
        query = sa.select(_R.status).where(_R.id == run_id)
        if lock:
            query = query.with_for_update()
        value = (await self.session.execute(query)).scalar_one_or_none()
        return None if value is None else str(value)

    async def start_run(self, run_id: int, batch_id: int, chunk_count: int) -> None:
        await self.session.execute(
            sa.update(RunRow)
            .where(_R.id == run_id)
            .values(
                status="processing",
                attempts=_R.attempts + 1,
                chunk_count=chunk_count,
                started_at=sa.func.coalesce(_R.started_at, sa.func.now()),
                error_message=None,
            )
        )
        started = await self.session.execute(
            sa.update(BatchRow)
            .where(_B.id == batch_id, _B.status == "queued")
            .values(status="running", started_at=sa.func.now())
            .returning(_B.id)
        )
        await self.append_event(
            batch_id,
            "STARTED",
            run_id,
            {"chunks": chunk_count, "batchStarted": started.first() is not None},
        )

    async def add_usage(self, run_id: int, usage: ChunkUsage) -> None:
        # Called after the ledger settled (budget day → batch locked), so batch → run holds.
        """Add one provider call's usage to the run (every call counts, failed ones too)."""
        await self.session.execute(
            sa.update(RunRow)
            .where(_R.id == run_id)
            .values(
                input_tokens=_R.input_tokens + usage.input_tokens,
                output_tokens=_R.output_tokens + usage.output_tokens,
                cost_usd=_R.cost_usd + usage.cost_usd,
                latency_ms=_R.latency_ms + usage.latency_ms,
                llm_calls=_R.llm_calls + usage.llm_calls,
            )
        )

    async def save_chunk(
        self,
        ctx: RunContext,
        *,
        chunk_index: int,
        char_start: int,
        char_end: int,
        fragments: Sequence[PreparedFragment],
        usage: ChunkUsage,
        codes: Sequence[str] | None = None,
    ) -> int:
        """Replace the chunk's fragments (idempotent per run+chunk) and mark it done.

        Lock order of every writer: run → batch (the event seq is taken last), and
        budget day → batch for the ledger; nobody takes batch before run, so none deadlock.
        """
        run_id = ctx.run.id or 0
        await self.session.execute(
            sa.delete(FragmentRow).where(_F.run_id == run_id, _F.chunk_index == chunk_index)
        )
        if codes is None:
            codes = await self.allocate_codes([f.category for f in fragments])
        config = search_config_for(ctx.source.language)
        rows = []
        for fragment, code in zip(fragments, codes, strict=True):
            rows.append(
                {
                    "fragment_code": code,
                    "run_id": run_id,
                    "batch_id": ctx.batch.id,
                    "source_id": ctx.source.id,
                    "model_name": ctx.model.name,
                    "chunk_index": chunk_index,
                    "ordinal": fragment.ordinal,
                    "content": fragment.content,
                    "quote": fragment.quote,
                    "char_start": fragment.char_start,
                    "char_end": fragment.char_end,
                    "grounding": fragment.grounding.value,
                    "grounding_score": fragment.grounding_score,
                    "category": fragment.category.value,
                    "subcategory": fragment.subcategory,
                    "fragment_type": fragment.fragment_type.value,
                    "context": fragment.context,
                    "insight": fragment.insight,
                    "relevance": fragment.relevance,
                    "confidence": fragment.confidence,
                    "is_complete": fragment.is_complete,
                    "has_clean_boundaries": fragment.has_clean_boundaries,
                    "search_config": config,
                }
            )
        if rows:
            # Core executemany with RETURNING: one cached statement whatever the row count
            # (a multi-VALUES ORM insert would be compiled anew for every chunk).
            inserted = await self.session.execute(
                _FRAGMENT_INSERT, rows, execution_options={"sort_by_parameter_order": True}
            )
            ids = {row.ordinal: row.id for row in inserted}
            await self._tag([(ids[f.ordinal], f.tags) for f in fragments if f.tags])
        chunk = insert(RunChunkRow).values(
            run_id=run_id,
            chunk_index=chunk_index,
            char_start=char_start,
            char_end=char_end,
            status="done",
            fragment_count=len(rows),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
            latency_ms=usage.latency_ms,
            llm_calls=usage.llm_calls,
        )
        inserted = (await self.session.execute(
            chunk.on_conflict_do_update(
                index_elements=["run_id", "chunk_index"],
                set_={
                    "fragment_count": chunk.excluded.fragment_count,
                    "completed_at": sa.func.now(),
                },
            ).returning(sa.literal_column("(xmax = 0)").label("inserted"))
        )).scalar_one()
        # Late in the transaction, so the run row is held only until the commit: an increment
        # under its lock (concurrent chunks count right) that also proves the run still runs —
        # a cancelled (skipped) run makes the whole chunk roll back.
        done = (
            await self.session.execute(
                sa.update(RunRow)
                .where(_R.id == run_id, _R.status != "skipped")
                .values(chunks_done=_R.chunks_done + (1 if inserted else 0))
                .returning(_R.chunks_done, _R.chunk_count)
            )
        ).first()
        if done is None:
            raise RunNotActive(run_id)
        grounded = sum(1 for f in fragments if f.is_grounded)
        await self.append_event(
            ctx.batch.id or 0,
            "CHUNK_DONE",
            run_id,
            {
                "chunk": chunk_index,
                "fragments": len(rows),
                "grounded": grounded,
                "costUsd": str(usage.cost_usd),
                "chunksDone": done.chunks_done if done else None,
                "chunkCount": done.chunk_count if done else None,
            },
        )
        return len(rows)

    async def allocate_codes(self, categories: Sequence[Category]) -> list[str]:
        """FRAG_<CAT>_<NNN> from counters advanced atomically (never MAX()+1)."""
        return await allocate_codes(self.session, categories)

    async def _tag(self, tagged: list[tuple[int, tuple[str, ...]]]) -> None:
        names = sorted({tag for _, tags in tagged for tag in tags})
        if not names:
            return
        tags = TagRow.__table__.c  # type: ignore[attr-defined]
        found = await self.session.execute(sa.select(tags.id, tags.name).where(
            tags.name.in_(names)))
        ids = {row.name: row.id for row in found}
        missing = [name for name in names if name not in ids]
        if missing:
            # Tags are created on first use; a concurrent creator may win, so re-read.
            await self.session.execute(insert(TagRow).values([{"name": n} for n in missing])
                                       .on_conflict_do_nothing())
            again = await self.session.execute(sa.select(tags.id, tags.name).where(
                tags.name.in_(missing)))
            ids.update({row.name: row.id for row in again})
        links = [{"fragment_id": fid, "tag_id": ids[t]} for fid, tags_ in tagged for t in tags_]
        await self.session.execute(insert(FragmentTagRow).values(links).on_conflict_do_nothing())

    async def finish_run(self, ctx: RunContext, status: str, error: str | None = None) -> str:
        """Close a run: dedupe chunk overlaps, recount, roll the batch up; returns batch status."""
        run_id = ctx.run.id or 0
        if status == "completed":
            await self._drop_overlap_duplicates(run_id)
        counts = (
            await self.session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count().filter(_F.grounding != "ungrounded"),
                ).where(_F.run_id == run_id)
            )
        ).one()
        await self.session.execute(
            sa.update(RunRow)
            .where(_R.id == run_id)
            .values(
                status=status,
                error_message=error,
                fragment_count=counts[0],
                grounded_count=counts[1],
                completed_at=sa.func.now(),
            )
        )
        run = (await self.session.execute(sa.select(_R.cost_usd).where(_R.id == run_id))).one()
        kind = "RUN_DONE" if status in ("completed", "stopped_cost_limit") else "RUN_FAILED"
        await self.append_event(
            ctx.batch.id or 0,
            kind,
            run_id,
            {
                "status": status,
                "fragments": counts[0],
                "grounded": counts[1],
                "costUsd": str(run.cost_usd),
                "message": error,
            },
        )
        await self._source_status(ctx.source.id or 0)
        return await self.roll_up_batch(ctx.batch.id or 0)

    async def _drop_overlap_duplicates(self, run_id: int) -> None:
        # A fragment found again in the overlap of the next chunk: keep the earlier one.
        await self.session.execute(
            sa.text("""
            DELETE FROM fragments f USING fragments g
            WHERE f.run_id = :r AND g.run_id = :r AND f.id <> g.id
              AND f.char_start IS NOT NULL AND g.char_start IS NOT NULL
              AND (g.chunk_index, g.ordinal) < (f.chunk_index, f.ordinal)
              AND g.chunk_index <> f.chunk_index
              AND least(f.char_end, g.char_end) - greatest(f.char_start, g.char_start)
                  >= 0.8 * (greatest(f.char_end, g.char_end) - least(f.char_start, g.char_start))
        """),
            {"r": run_id},
        )

    async def _source_status(self, source_id: int) -> None:
        # Lock the source first, in its own statement: the UPDATE below then reads the runs
        # with a snapshot taken after any concurrent ending of another run of this source has
        # committed. Without it, two models finishing together each see the other still
        # processing and the source stays 'processing' for good.
        await self.session.execute(
            sa.text("SELECT id FROM sources WHERE id = :s FOR UPDATE"), {"s": source_id})
        await self.session.execute(
            sa.text("""
            UPDATE sources SET status = CASE
                WHEN EXISTS (SELECT 1 FROM source_processing r WHERE r.source_id = :s
                             AND r.status IN ('pending', 'processing', 'waiting_budget'))
                    THEN 'processing'
                WHEN EXISTS (SELECT 1 FROM source_processing r WHERE r.source_id = :s
                             AND r.status IN ('completed', 'stopped_cost_limit'))
                    THEN 'processed'
                WHEN EXISTS (SELECT 1 FROM source_processing r WHERE r.source_id = :s)
                    THEN 'failed'
                ELSE 'pending' END, updated_at = now()
            WHERE id = :s"""),
            {"s": source_id},
        )

    async def roll_up_batch(self, batch_id: int) -> str:
        """Batch status from its runs; emits BATCH_DONE / BATCH_FAILED once when it ends."""
        counts = (
            await self.session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count().filter(_R.status.in_(ACTIVE_RUN)),
                    sa.func.count().filter(_R.status.in_(["completed", "stopped_cost_limit"])),
                    sa.func.coalesce(sa.func.sum(_R.cost_usd), 0),
                ).where(_R.batch_id == batch_id)
            )
        ).one()
        total, active, succeeded, cost = counts
        if active:
            return "running"
        status = "completed" if succeeded else "failed"
        ended = (
            await self.session.execute(
                sa.update(BatchRow)
                .where(_B.id == batch_id, _B.status.in_(["queued", "running"]))
                .values(
                    status=status,
                    completed_at=sa.func.now(),
                    error_message=None if succeeded else "every run of the batch failed",
                )
                .returning(_B.id)
            )
        ).first()
        if ended is not None:
            await self.append_event(
                batch_id,
                "BATCH_DONE" if succeeded else "BATCH_FAILED",
                None,
                {"runs": total, "succeeded": succeeded, "costUsd": str(cost)},
            )
        return status

    async def set_run_waiting_budget(self, ctx: RunContext, message: str) -> None:
        await self.session.execute(
            sa.update(RunRow)
            .where(_R.id == ctx.run.id)
            .values(status="waiting_budget", error_message=message)
        )
        await self.append_event(
            ctx.batch.id or 0, "BUDGET_PAUSED", ctx.run.id, {"message": message}
        )

    async def set_run_pending(self, run_id: int, message: str | None) -> None:
        await self.session.execute(
            sa.update(RunRow).where(_R.id == run_id).values(status="pending", error_message=message)
        )

    # -- events ---------------------------------------------------------------------------------

    async def append_event(
        self, batch_id: int, kind: str, run_id: int | None, payload: dict[str, Any]
    ) -> int:
        """Store a progress event with the batch's next seq (gap-free, in this transaction)."""
        # One statement: the batch row (its seq counter) is held for the least time.
        seq = (await self.session.execute(sa.text(
            "WITH next AS (UPDATE processing_batches SET event_seq = event_seq + 1"
            " WHERE id = :b RETURNING event_seq)"
            " INSERT INTO batch_events (batch_id, seq, kind, run_id, payload)"
            " SELECT :b, next.event_seq, :k, :r, CAST(:p AS jsonb) FROM next RETURNING seq"),
            {"b": batch_id, "k": kind, "r": run_id,
             "p": json.dumps(payload, default=str)})).scalar_one()
        self.session.info.setdefault("mmos_events", []).append((batch_id, int(seq)))
        return int(seq)
