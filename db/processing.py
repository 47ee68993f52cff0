"""Batches, runs, chunks and fragments: the rows the extraction pipeline reads and writes."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from db.answers import compress_answer
from db.engine import sqlstate_of
from db.jobs import JobQueue
from db.segments import SegmentRepository
from db.tables import (
    BatchRow,
    FragmentRow,
    ModelRow,
    ProviderBatchRow,
    RunChunkRow,
    RunRow,
    SourceRow,
)
from domain.answers import DEFAULT_FAILED_CHUNK_SHARE, AnswerRecord, run_outcome
from domain.extraction import FRAGMENT_FIELDS, PreparedFragment
from domain.locations import SegmentIndex
from domain.model import FINISHED_RUN, ExtractionPriority, JobKind
from domain.sources import search_config_for, stored_subject
from domain.subjects import Subject

_R = RunRow.__table__.c  # type: ignore[attr-defined]
_F = FragmentRow.__table__.c  # type: ignore[attr-defined]
_B = BatchRow.__table__.c  # type: ignore[attr-defined]

ACTIVE_RUN = ("pending", "processing", "waiting_budget")

# The fragment columns a chunk insert writes (the fields a page reads, and the record as the
# model sent it), one array parameter `f_<field>` each, typed by the column: text arrays for
# strings, so an overlong value fails rather than being cut; JSON travels as text.
_STORED_FIELDS = (*FRAGMENT_FIELDS, "raw_record")
_ARRAY_TYPES = {str: "text[]", int: "int[]", float: "float8[]", bool: "bool[]"}
_JSON_COLUMNS = frozenset(name for name in _STORED_FIELDS if isinstance(_F[name].type, JSONB))


def _array_of(name: str) -> str:
    if name in _JSON_COLUMNS:
        return f"CAST(CAST(:f_{name} AS text[]) AS jsonb[])"
    if isinstance(_F[name].type, sa.BigInteger):
        return f"CAST(:f_{name} AS bigint[])"
    return f"CAST(:f_{name} AS {_ARRAY_TYPES[_F[name].type.python_type]})"


_FIELD_ARRAYS = ", ".join(_array_of(name) for name in _STORED_FIELDS)
_FIELD_NAMES = ", ".join(_STORED_FIELDS)
_FIELD_VALUES = ", ".join(f"v.{name}" for name in _STORED_FIELDS)

_DELETE_CHUNK_FRAGMENTS = sa.text(
    "DELETE FROM fragments WHERE run_id = :r AND chunk_index = :c")
# A chunk stored again: the answers that made its earlier version are no longer its own.
_SUPERSEDE_CHUNK_ANSWERS = sa.text(
    "UPDATE run_answers SET superseded = true"
    " WHERE run_id = :r AND chunk_index = :c AND NOT superseded")

# One statement stores a chunk: its fragments (with their codes), their tags (created on first
# use), the chunk row, the run's done-chunk count and the CHUNK_DONE event with the batch's
# next seq. Locks are taken run → batch → code counters, as by every writer. The final SELECT
# calls mmos_chunk_stored (migration 0006), which aborts the whole statement when the result
# must not stand (see store_chunk).
_SAVE_CHUNK = sa.text(
    "WITH v AS (SELECT u.*,"
    " row_number() OVER (PARTITION BY u.catcode ORDER BY u.idx) AS k"
    " FROM unnest(CAST(:codes AS text[]), CAST(:catcodes AS text[]), CAST(:ordinals AS int[]),"
    f" {_FIELD_ARRAYS})"
    f" WITH ORDINALITY AS u(code, catcode, ordinal, {_FIELD_NAMES}, idx)),"
    # Codes not given are FRAG_<CAT>_<NNN> from the category counters, advanced here with the
    # rows locked in code order (never MAX()+1; an aborted statement leaves them untouched).
    " wanted_codes AS (SELECT catcode AS code, count(*)::int AS n FROM v"
    " WHERE v.code IS NULL GROUP BY catcode),"
    " locked_counters AS (SELECT c.category_code FROM fragment_code_counters c"
    " JOIN wanted_codes w ON w.code = c.category_code ORDER BY c.category_code FOR UPDATE OF c),"
    " advanced AS (UPDATE fragment_code_counters c SET last_value = c.last_value + w.n"
    " FROM wanted_codes w JOIN locked_counters l ON l.category_code = w.code"
    " WHERE c.category_code = w.code RETURNING c.category_code, c.last_value - w.n AS base),"
    " f AS ("
    " INSERT INTO fragments (fragment_code, run_id, batch_id, source_id, model_name,"
    f" chunk_index, ordinal, {_FIELD_NAMES}, search_config)"
    " SELECT coalesce(v.code, 'FRAG_' || v.catcode || '_' || CASE WHEN a.base + v.k < 1000"
    " THEN lpad((a.base + v.k)::text, 3, '0') ELSE (a.base + v.k)::text END),"
    f" :run, :batch, :source, :model, :chunk, v.ordinal, {_FIELD_VALUES},"
    " CAST(:config AS regconfig)"
    " FROM v LEFT JOIN advanced a ON a.category_code = v.catcode"
    " RETURNING id, ordinal),"
    " wanted AS (SELECT * FROM unnest(CAST(:tag_ordinals AS int[]), CAST(:tag_names AS text[]))"
    " AS w(ordinal, name)),"
    " new_tags AS (INSERT INTO tags (name) SELECT DISTINCT name FROM wanted ORDER BY name"
    " ON CONFLICT DO NOTHING RETURNING id, name),"
    " known AS (SELECT id, name FROM tags WHERE name IN (SELECT name FROM wanted)"
    " UNION ALL SELECT id, name FROM new_tags),"
    " links AS (INSERT INTO fragment_tags (fragment_id, tag_id)"
    " SELECT f.id, k.id FROM wanted w JOIN f ON f.ordinal = w.ordinal"
    " JOIN known k ON k.name = w.name ON CONFLICT DO NOTHING),"
    " chunk AS (INSERT INTO run_chunks (run_id, chunk_index, char_start, char_end, status,"
    " error, fragment_count, input_tokens, output_tokens, cost_usd, latency_ms, llm_calls)"
    " VALUES (:run, :chunk, :char_start, :char_end, CAST(:status AS text), :error, :count,"
    " :input_tokens,"
    " :output_tokens, :cost, :latency, :calls)"
    " ON CONFLICT (run_id, chunk_index) DO UPDATE"
    " SET fragment_count = EXCLUDED.fragment_count, status = EXCLUDED.status,"
    " error = EXCLUDED.error, completed_at = now()"
    " RETURNING (xmax = 0) AS inserted),"
    # Every answer of the chunk's calls, compressed (reprocessRun reads them again).
    " answers AS (INSERT INTO run_answers (run_id, chunk_index, part, call_kind, char_start,"
    " char_end, finish_reason, readable, strict, problem, body, body_chars)"
    " SELECT :run, :chunk, a.* FROM unnest(CAST(:a_part AS int[]), CAST(:a_kind AS text[]),"
    " CAST(:a_start AS int[]), CAST(:a_end AS int[]), CAST(:a_finish AS text[]),"
    " CAST(:a_readable AS bool[]), CAST(:a_strict AS bool[]), CAST(:a_problem AS text[]),"
    " CAST(:a_body AS bytea[]), CAST(:a_chars AS int[])) AS a),"
    " run AS (UPDATE source_processing r"
    " SET chunks_done = r.chunks_done"
    " + (SELECT CASE WHEN inserted AND CAST(:status AS text) = 'done' THEN 1 ELSE 0 END"
    " FROM chunk),"
    " chunks_failed = r.chunks_failed"
    " + (SELECT CASE WHEN inserted AND CAST(:status AS text) = 'failed' THEN 1 ELSE 0 END"
    " FROM chunk)"
    " WHERE r.id = :run AND r.status <> 'skipped' RETURNING r.chunks_done, r.chunks_failed,"
    " r.chunk_count),"
    " next AS (UPDATE processing_batches b SET event_seq = b.event_seq + 1"
    " WHERE b.id = :batch AND EXISTS (SELECT 1 FROM run) RETURNING b.event_seq),"
    " event AS (INSERT INTO batch_events (batch_id, seq, kind, run_id, payload)"
    " SELECT :batch, next.event_seq, 'CHUNK_DONE', :run, CAST(:payload AS jsonb)"
    " || jsonb_build_object('chunksDone', run.chunks_done, 'chunksFailed', run.chunks_failed,"
    " 'chunkCount', run.chunk_count)"
    " FROM next, run RETURNING seq)"
    " SELECT mmos_chunk_stored((SELECT seq FROM event), (SELECT inserted FROM chunk),"
    " t.known, CAST(:tags_wanted AS bigint), CAST(:replacing AS boolean),"
    " CAST(:run AS bigint)) AS seq, t.known AS tags_known"
    " FROM (SELECT count(DISTINCT name) AS known FROM known) AS t"
)

# SQLSTATEs raised by mmos_chunk_stored (migration 0006).
CHUNK_RUN_INACTIVE = "MMRUN"
CHUNK_STORED_BEFORE = "MMRDO"
CHUNK_TAG_RACE = "MMTAG"

_LINK_CHUNK_TAGS = sa.text(
    "INSERT INTO fragment_tags (fragment_id, tag_id)"
    " SELECT f.id, t.id FROM unnest(CAST(:ordinals AS int[]), CAST(:names AS text[]))"
    " AS w(ordinal, name)"
    " JOIN fragments f ON f.run_id = :run AND f.chunk_index = :chunk AND f.ordinal = w.ordinal"
    " JOIN tags t ON t.name = w.name ON CONFLICT DO NOTHING"
)

def _column_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _field_values(fragments: Sequence[PreparedFragment], name: str) -> list[Any]:
    if name in _JSON_COLUMNS:
        return [None if (value := getattr(f, name)) is None
                else json.dumps(list(value) if isinstance(value, tuple) else value,
                                ensure_ascii=False, default=str)
                for f in fragments]
    return [_column_value(getattr(f, name)) for f in fragments]


def _answer_values(answers: Sequence[AnswerRecord]) -> dict[str, list[Any]]:
    bodies = [compress_answer(answer.content) for answer in answers]
    return {
        "a_part": [a.part for a in answers], "a_kind": [a.call_kind for a in answers],
        "a_start": [a.char_start for a in answers], "a_end": [a.char_end for a in answers],
        "a_finish": [a.finish_reason[:32] if a.finish_reason else None for a in answers],
        "a_readable": [a.readable for a in answers], "a_strict": [a.strict for a in answers],
        "a_problem": [a.problem for a in answers], "a_body": bodies,
        "a_chars": [len(a.content) for a in answers],
    }


async def store_chunk(executor: Any, ctx: RunContext, *, chunk_index: int, char_start: int,
                      char_end: int, fragments: Sequence[PreparedFragment], usage: ChunkUsage,
                      codes: Sequence[str] | None, replacing: bool,
                      answers: Sequence[AnswerRecord] = (), error: str | None = None) -> int:
    """Store a chunk's fragments, tags, raw answers, chunk row, run count and CHUNK_DONE event;
    the event's seq is returned. Fragments take `codes` when given, else codes from the
    category counters. With an `error` the chunk is stored as failed (its answers stayed
    unreadable): what could be read of it is kept, and retryRun(failedChunksOnly) runs it again.

    With `replacing` (inside a transaction) the chunk's earlier fragments are deleted first,
    so storing a chunk again replaces it. Without it the chunk must be new, and the one
    statement is atomic on an autocommit connection: when the chunk was stored before or a
    tag raced, it aborts with nothing written (SQLSTATE CHUNK_STORED_BEFORE or
    CHUNK_TAG_RACE) and the caller replaces it in a transaction. A run that is no longer
    active aborts it either way (CHUNK_RUN_INACTIVE).
    """
    if codes is not None and len(codes) != len(fragments):
        raise ValueError(f"{len(codes)} codes for {len(fragments)} fragments")
    run_id = ctx.run.id or 0
    if replacing:
        await executor.execute(_DELETE_CHUNK_FRAGMENTS, {"r": run_id, "c": chunk_index})
        await executor.execute(_SUPERSEDE_CHUNK_ANSWERS, {"r": run_id, "c": chunk_index})
    tag_ordinals = [f.ordinal for f in fragments for _ in f.tags]
    tag_names = [tag for f in fragments for tag in f.tags]
    tags_wanted = len(set(tag_names))
    grounded = sum(1 for f in fragments if f.is_grounded)
    row = (await executor.execute(_SAVE_CHUNK, {
        "run": run_id, "batch": ctx.batch.id, "source": ctx.source.id,
        "model": ctx.model.name, "chunk": chunk_index,
        "config": search_config_for(ctx.source.language),
        "codes": list(codes) if codes is not None else [None] * len(fragments),
        "catcodes": [f.category.code for f in fragments],
        "ordinals": [f.ordinal for f in fragments],
        **{f"f_{name}": _field_values(fragments, name) for name in _STORED_FIELDS},
        **_answer_values(answers),
        "status": "failed" if error is not None else "done", "error": error,
        "tag_ordinals": tag_ordinals, "tag_names": tag_names,
        "tags_wanted": tags_wanted, "replacing": replacing,
        "char_start": char_start, "char_end": char_end, "count": len(fragments),
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cost": usage.cost_usd, "latency": usage.latency_ms, "calls": usage.llm_calls,
        "payload": json.dumps({"chunk": chunk_index, "fragments": len(fragments),
                               "grounded": grounded, "costUsd": str(usage.cost_usd),
                               **({"failed": True, "error": error} if error is not None
                                  else {})}),
    })).one()
    if row.tags_known < tags_wanted:
        # Replacing: a tag created by a concurrent writer that committed after the
        # statement's snapshot; a statement of its own sees it.
        await executor.execute(_LINK_CHUNK_TAGS, {
            "run": run_id, "chunk": chunk_index, "ordinals": tag_ordinals,
            "names": tag_names})
    return int(row.seq)


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
    # The source's segment map (None for plain text) and its subject, for chunks, prompts
    # and each fragment's location.
    layout: SegmentIndex | None = None
    subject: Subject | None = None


@dataclass(frozen=True, slots=True)
class ChunkUsage:
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int
    llm_calls: int
    repair_calls: int = 0
    repair_cost_usd: Decimal = Decimal(0)
    # Prompt-cache tokens and the cost split: cost_usd = list − cache saved − batch saved
    # (list None = the cost: no lever behind it).
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    list_cost_usd: Decimal | None = None
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)

    @property
    def list_cost(self) -> Decimal:
        return self.cost_usd if self.list_cost_usd is None else self.list_cost_usd


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
        mode: str = "interactive",
    ) -> NewBatch:
        """One batch for one model: a run and a job per source, QUEUED events included."""
        batch = BatchRow(
            group_id=group_id,
            model_name=model.name,
            status="queued",
            strategy=strategy,
            mode=mode,
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
        segments = await SegmentRepository(self.session).of_source(source.id or 0)
        layout = SegmentIndex(source.content, segments) if segments else None
        return RunContext(run, batch, source, model, layout,
                          stored_subject(source.subject_name, source.subject_aliases))

    async def done_chunks(self, run_id: int) -> set[int]:
        rows = await self.session.execute(
            sa.select(RunChunkRow.__table__.c.chunk_index).where(  # type: ignore[attr-defined]
                RunChunkRow.__table__.c.run_id == run_id
            )
        )  # type: ignore[attr-defined]
        return {row[0] for row in rows}

    async def chunk_states(self, run_id: int) -> dict[int, str]:
        """The stored chunks of a run and their status (done or failed): neither is called
        again by a later job of the run (retryRun with failedChunksOnly forgets the failed)."""
        rows = await self.session.execute(sa.text(
            "SELECT chunk_index, status FROM run_chunks WHERE run_id = :r"), {"r": run_id})
        return {int(row.chunk_index): str(row.status) for row in rows}

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
                repair_calls=_R.repair_calls + usage.repair_calls,
                repair_cost_usd=_R.repair_cost_usd + usage.repair_cost_usd,
                cached_input_tokens=_R.cached_input_tokens + usage.cached_input_tokens,
                cache_write_tokens=_R.cache_write_tokens + usage.cache_write_tokens,
                list_cost_usd=_R.list_cost_usd + usage.list_cost,
                cache_saved_usd=_R.cache_saved_usd + usage.cache_saved_usd,
                batch_saved_usd=_R.batch_saved_usd + usage.batch_saved_usd,
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
        answers: Sequence[AnswerRecord] = (),
        error: str | None = None,
    ) -> int:
        """Replace the chunk's fragments (idempotent per run+chunk) and mark it done.

        Lock order of every writer: run → batch (the event seq) → code counters (the
        fragments), and budget day → batch for the ledger; nobody takes them the other way
        round, so none deadlock.
        """
        try:
            seq = await store_chunk(self.session, ctx, chunk_index=chunk_index,
                                    char_start=char_start, char_end=char_end,
                                    fragments=fragments, usage=usage, codes=codes,
                                    replacing=True, answers=answers, error=error)
        except sa.exc.DBAPIError as exc:
            if sqlstate_of(exc) == CHUNK_RUN_INACTIVE:
                raise RunNotActive(ctx.run.id or 0) from None
            raise
        self.session.info.setdefault("mmos_events", []).append((ctx.batch.id or 0, seq))
        return len(fragments)

    async def finish_run(self, ctx: RunContext, status: str, error: str | None = None, *,
                         failed_share: float = DEFAULT_FAILED_CHUNK_SHARE) -> str:
        """Close a run: dedupe chunk overlaps, recount, roll the batch up; returns the run's
        status. A run whose chunks all ran ("completed") completes with errors, or fails when
        more than `failed_share` of them failed."""
        run_id = ctx.run.id or 0
        chunks = (await self.session.execute(sa.text(
            "SELECT count(*) FILTER (WHERE status = 'done') AS done,"
            " count(*) FILTER (WHERE status = 'failed') AS failed,"
            " (SELECT error FROM run_chunks WHERE run_id = :r AND status = 'failed'"
            "  ORDER BY chunk_index LIMIT 1) AS first_error,"
            " (SELECT count(*) FROM run_answers WHERE run_id = :r AND NOT superseded) AS read,"
            " (SELECT count(*) FROM run_answers WHERE run_id = :r AND NOT superseded"
            "  AND strict) AS strict,"
            " (SELECT chunk_count FROM source_processing WHERE id = :r) AS chunk_count"
            " FROM run_chunks WHERE run_id = :r"), {"r": run_id})).one()
        if status == "completed":
            outcome = run_outcome(max(chunks.chunk_count or 0, chunks.done + chunks.failed),
                                  chunks.failed, chunks.first_error, failed_share=failed_share)
            status, error = outcome.status.value, outcome.message
        if status in FINISHED_RUN:
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
                chunks_done=chunks.done,
                chunks_failed=chunks.failed,
                answers_read=chunks.read,
                answers_strict=chunks.strict,
                completed_at=sa.func.now(),
            )
        )
        run = (await self.session.execute(sa.select(_R.cost_usd).where(_R.id == run_id))).one()
        kind = "RUN_DONE" if status in (*FINISHED_RUN, "stopped_cost_limit") else "RUN_FAILED"
        await self.append_event(
            ctx.batch.id or 0,
            kind,
            run_id,
            {
                "status": status,
                "fragments": counts[0],
                "grounded": counts[1],
                "costUsd": str(run.cost_usd),
                "chunksFailed": chunks.failed,
                "message": error,
            },
        )
        await self._source_status(ctx.source.id or 0)
        await self.roll_up_batch(ctx.batch.id or 0)
        return status

    async def _drop_overlap_duplicates(self, run_id: int) -> None:
        # A fragment found again in the overlap of the next chunk: keep the earlier one.
        # Spans with IoU >= 0.8 start within a quarter of either's length of each other: with
        # that bound each fragment probes the (run, char_start) index for its few neighbours
        # (LATERAL … LIMIT 1 keeps the probe per fragment whatever the statistics say)
        # instead of pairing every fragment of the run with every other.
        await self.session.execute(
            sa.text("""
            DELETE FROM fragments d USING (
              SELECT f.id FROM fragments f CROSS JOIN LATERAL (
                SELECT 1 FROM fragments g
                WHERE g.run_id = f.run_id AND g.char_start IS NOT NULL
                  AND g.char_start BETWEEN f.char_start - (f.char_end - f.char_start + 3) / 4
                                       AND f.char_start + (f.char_end - f.char_start + 3) / 4
                  -- an earlier chunk; "+ 0" keeps the planner off the (run, chunk, ordinal)
                  -- index, which would scan half the run for every fragment
                  AND g.chunk_index + 0 < f.chunk_index
                  AND least(f.char_end, g.char_end) - greatest(f.char_start, g.char_start)
                      >= 0.8 * (greatest(f.char_end, g.char_end)
                                - least(f.char_start, g.char_start))
                LIMIT 1) AS earlier
              WHERE f.run_id = :r AND f.char_start IS NOT NULL) AS dup
            WHERE d.id = dup.id
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
                             AND r.status IN ('completed', 'completed_with_errors',
                                              'stopped_cost_limit'))
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
                    sa.func.count().filter(_R.status.in_([*FINISHED_RUN, "stopped_cost_limit"])),
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

    # -- steering (the processing use cases) ----------------------------------------------------

    async def busy_pair(self, source_ids: Sequence[int],
                        model_names: Sequence[str]) -> tuple[int, str] | None:
        """A (source, model) among these with a run still active, if any."""
        row = (await self.session.execute(sa.select(_R.source_id, _R.model_name).where(
            _R.source_id.in_(list(source_ids)), _R.model_name.in_(list(model_names)),
            _R.status.in_(ACTIVE_RUN)).limit(1))).first()
        return None if row is None else (int(row.source_id), str(row.model_name))

    async def batch(self, batch_id: int, *, lock: bool = False) -> BatchRow | None:
        """One batch; with `lock`, its row is held (and re-read) until the transaction ends."""
        if lock:
            return await self.session.get(BatchRow, batch_id, with_for_update=True,
                                          populate_existing=True)
        return await self.session.get(BatchRow, batch_id)

    async def batches(self, batch_ids: Sequence[int]) -> list[BatchRow]:
        """Batches in the order asked (absent ones left out)."""
        rows = await self.session.execute(sa.select(BatchRow).where(_B.id.in_(list(batch_ids))))
        found = {row.id: row for row in rows.scalars()}
        return [found[i] for i in batch_ids if i in found]

    async def run(self, run_id: int, *, lock: bool = False) -> RunRow | None:
        return await self.session.get(RunRow, run_id, with_for_update=lock or None)

    async def run_origin(self, run_id: int) -> tuple[int, int] | None:
        """(source id, batch id) of a run."""
        row = (await self.session.execute(sa.select(_R.source_id, _R.batch_id).where(
            _R.id == run_id))).first()
        return None if row is None else (int(row.source_id), int(row.batch_id))

    async def lock_runs_of_batch(self, batch_id: int) -> None:
        """Hold the batch's run rows (id order): the lock order is job → run → batch."""
        await self.session.execute(sa.select(_R.id).where(_R.batch_id == batch_id)
                                   .order_by(_R.id).with_for_update())

    async def cancel_batch(self, batch: BatchRow) -> BatchRow:
        """Skip the unfinished runs, mark the batch cancelled with its event, and refresh the
        status of its sources (call with jobs, runs and the batch locked, in that order)."""
        batch_id = batch.id or 0
        await self.session.execute(sa.update(RunRow).where(
            _R.batch_id == batch_id, _R.status.in_(ACTIVE_RUN)
        ).values(status="skipped", error_message="cancelled", completed_at=sa.func.now()))
        batch.status = "cancelled"
        batch.completed_at = sa.func.now()  # type: ignore[assignment]
        batch.error_message = "cancelled by request"
        await self.append_event(batch_id, "CANCELLED", None, {"message": "cancelled"})
        source_ids = (await self.session.execute(sa.select(_R.source_id).where(
            _R.batch_id == batch_id))).scalars().all()
        for source_id in source_ids:
            await self._source_status(source_id)
        await self.session.flush()
        await self.session.refresh(batch)
        return batch

    async def abandon_provider_batches(self, batch_id: int, max_attempts: int) -> list[int]:
        """A cancelled batch's submissions in flight: their reservations released at once,
        the submissions abandoned, and a job per submission the provider holds, asking it to
        stop (after the jobs, runs and batch, the budget day is locked last). Returns the
        job ids to wake."""
        from db.budget import BudgetLedger, Reservation  # budget imports this module
        from db.provider_batches import OPEN

        rows = (await self.session.execute(sa.select(ProviderBatchRow).join(
            RunRow, _R.id == ProviderBatchRow.__table__.c.run_id).where(  # type: ignore[attr-defined]
            _R.batch_id == batch_id,
            ProviderBatchRow.__table__.c.status.in_(OPEN)))).scalars().all()  # type: ignore[attr-defined]
        ledger = BudgetLedger(self.session)
        jobs: list[int] = []
        for row in rows:
            for held in row.reservations.values():
                await ledger.release(Reservation(int(held["id"]), Decimal(held["amount"]),
                                                 date.fromisoformat(held["day"])),
                                     "batch: cancelled")
            row.status = "abandoned"
            row.error = "cancelled by request"
            if row.provider_batch_id:
                jobs.append(await JobQueue(self.session).enqueue(
                    kind=JobKind.CANCEL_PROVIDER_BATCH.value, priority=100, run_id=row.run_id,
                    batch_id=batch_id, max_attempts=max_attempts,
                    payload={"providerBatch": row.id}))
        await self.session.flush()
        return jobs

    async def reopen_run(self, run: RunRow, batch: BatchRow, *, max_attempts: int) -> int:
        """Put a finished run back to pending, its batch running, a new job queued (QUEUED
        event with `retry`); returns the job id."""
        source = await self.session.get(SourceRow, run.source_id)
        assert source is not None and batch.id is not None and run.id is not None
        run.status = "pending"
        run.error_message = None
        run.completed_at = None
        batch.status = "running"
        batch.completed_at = None
        batch.error_message = None
        job_id = await JobQueue(self.session).enqueue(
            kind=JobKind.EXTRACT_RUN.value,
            priority=ExtractionPriority(source.extraction_priority).rank, run_id=run.id,
            batch_id=batch.id, max_attempts=max_attempts)
        await self.append_event(batch.id, "QUEUED", run.id, {"retry": True})
        await self.session.flush()
        await self.session.refresh(run)
        return job_id

    async def reprocess(self, run: RunRow, *, group_id: str, max_attempts: int) -> NewBatch:
        """A batch of its own with a new version of `run`, read again from its stored answers
        by the worker (no provider call). The new run carries the usage and cost of the
        answers it reads, so comparisons price it like the original; no money moves."""
        batch = await self.session.get(BatchRow, run.batch_id)
        model = await self.session.get(ModelRow, run.model_name)
        source = await self.session.get(SourceRow, run.source_id)
        assert batch is not None and model is not None and source is not None
        config = {**(batch.config or {}), "reprocessOf": run.id}
        config.pop("plan", None)
        config.pop("step", None)
        config.pop("final", None)
        created = await self.create_batch(group_id=group_id, model=model, sources=[source],
                                          strategy=None, config=config, budget_usd=None,
                                          max_attempts=max_attempts)
        await self.session.execute(
            sa.update(RunRow).where(_R.id == created.run_ids[0]).values(
                reprocessed_from_id=run.id, version=run.version + 1,
                input_tokens=run.input_tokens, output_tokens=run.output_tokens,
                cost_usd=run.cost_usd, llm_calls=run.llm_calls, latency_ms=run.latency_ms,
                repair_calls=run.repair_calls, repair_cost_usd=run.repair_cost_usd,
                cached_input_tokens=run.cached_input_tokens,
                cache_write_tokens=run.cache_write_tokens, list_cost_usd=run.list_cost_usd,
                cache_saved_usd=run.cache_saved_usd, batch_saved_usd=run.batch_saved_usd))
        return created

    async def pending_runs(self, source_ids: Sequence[int]) -> dict[int, int]:
        """Runs still to finish per source: a report over them is partial."""
        rows = await self.session.execute(
            sa.select(_R.source_id, sa.func.count()).where(
                _R.source_id.in_(list(source_ids)), _R.status.in_(ACTIVE_RUN)
            ).group_by(_R.source_id))
        return {int(r[0]): int(r[1]) for r in rows}

    async def cost_so_far(self, run_id: int) -> tuple[Decimal, int, int]:
        """(cost, fragments, grounded fragments) of a run so far: the cost guard's input."""
        row = (await self.session.execute(sa.text(
            "SELECT r.cost_usd, count(f.id) AS n,"
            " count(f.id) FILTER (WHERE f.grounding <> 'ungrounded') AS grounded"
            " FROM source_processing r LEFT JOIN fragments f ON f.run_id = r.id"
            " WHERE r.id = :r GROUP BY r.id"), {"r": run_id})).one()
        return Decimal(row.cost_usd), int(row.n), int(row.grounded)

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
