"""Measured quality in Postgres: evidence for measuring, `model_performance` rows, candidates.

A source is measured as a whole (every completed run against the reference in force for it)
under a transaction-scoped advisory lock per source, so concurrent run ends, verifications and
catch-ups never interleave their writes; the result depends only on committed rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.segments import SegmentRepository
from db.settings_store import (
    MIN_VERIFIED,
    QUALITY_THRESHOLDS,
    QUALITY_WEIGHTS,
    REFERENCE_MODEL,
    SettingsStore,
)
from db.tables import ModelPerformanceRow
from domain.chunking import sentence_spans
from domain.evaluation import (
    PolicyDefaults,
    QualityPolicy,
    RunEvidence,
    RunMeasurement,
    SourceEvidence,
    measure_source,
    price_key,
)
from domain.locations import SegmentIndex
from domain.model import FINISHED_RUN, Span
from domain.optimizer import Candidate, failed_sample, pool_candidates
from domain.performance import PerformanceRecord, latest_of_each_model  # noqa: F401  (re-exported)
from domain.quality import PairedDelta, QualityWeights, ScoredFragment
from domain.subjects import subject_sentences

log = logging.getLogger("mmos.quality")

_ABSENT = object()
_MP = ModelPerformanceRow.__table__.c  # type: ignore[attr-defined]


_RECORD_SQL = """
SELECT mp.run_id, mp.batch_id, mp.source_id, s.source_type, s.char_count AS source_chars,
       mp.model_name AS model, mp.reference_kind, mp.reference_model, mp.quality_score,
       mp.quality_low, mp.quality_high, mp.provisional, mp.grounded_rate, mp.miu_rate,
       mp.precision, mp.recall, mp.f1, mp.coverage, mp.mean_relevance, mp.fragment_count,
       mp.grounded_fragment_count, mp.cost_usd, mp.cost_per_fragment, mp.cost_per_1k_chars,
       mp.latency_ms, r.metrics, r.completed_at AS finished_at, r.repair_calls,
       r.repair_cost_usd, r.answers_read, r.answers_strict, r.chunks_failed,
       mp.is_reference, mp.reference_run_id, mp.vs_reference, mp.span_metrics,
       mp.unverified_score, mp.unverified_kind, r.list_cost_usd, r.cache_saved_usd,
       r.batch_saved_usd
FROM model_performance mp
JOIN source_processing r ON r.id = mp.run_id
     AND r.status IN ('completed', 'completed_with_errors')
JOIN sources s ON s.id = mp.source_id
"""


def _record(row: Any) -> PerformanceRecord:
    values = dict(row._mapping)
    values["metrics"] = dict(values.get("metrics") or {})
    versus = values.get("vs_reference")
    values["vs_reference"] = PairedDelta.from_json(versus) if versus else None
    values["span_metrics"] = dict(values.get("span_metrics") or {})
    return PerformanceRecord(**values)


class PerformanceRepository:
    """Reads and writes of measured quality, inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- configuration ------------------------------------------------------------------------

    async def policy(self, defaults: PolicyDefaults) -> QualityPolicy:
        """Weights, verified minimum and designated reference; a broken stored value is logged
        and the default kept, so measuring never stops on configuration."""
        store = SettingsStore(self.session)
        weights = QualityWeights()
        raw = await store.get(QUALITY_WEIGHTS)
        if isinstance(raw, dict):
            try:
                weights = QualityWeights(**{k: float(v) for k, v in raw.items()})
            except (TypeError, ValueError):
                log.warning("ignoring invalid quality weights in settings: %r", raw)
        minimum = await store.get(MIN_VERIFIED, _ABSENT)
        reference = await store.get(REFERENCE_MODEL, _ABSENT)
        return QualityPolicy(
            weights=weights,
            min_verified=(defaults.min_verified if not isinstance(minimum, int) or minimum < 1
                          else minimum),
            reference_model=(defaults.reference_model if reference is _ABSENT
                             else (str(reference) if reference else None)),
        )

    async def thresholds(self) -> dict[str, float]:
        """Operator-set quality thresholds per source type (defaults are the domain's)."""
        raw = await SettingsStore(self.session).get(QUALITY_THRESHOLDS)
        if not isinstance(raw, dict):
            return {}
        return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}

    async def merge_thresholds(self, changes: Mapping[str, float | None],
                               updated_by: str | None) -> None:
        """Set (or, for None, remove) per-type thresholds atomically."""
        await merge_thresholds(self.session, changes, updated_by)

    # -- measuring ------------------------------------------------------------------------------

    async def lock_source(self, source_id: int) -> None:
        """Serialise measuring of one source until this transaction ends."""
        await self.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                   {"k": f"mmos.quality.source:{source_id}"})

    async def evidence(self, source_id: int) -> tuple[SourceEvidence, str] | None:
        """The source's sentences, verdicts and completed runs with fragments and chunks."""
        source = (await self.session.execute(sa.text(
            "SELECT id, source_type, content, subject_speakers FROM sources WHERE id = :s"),
            {"s": source_id})).first()
        if source is None:
            return None
        runs = (await self.session.execute(sa.text("""
            SELECT r.id, r.model_name, r.cost_usd, r.latency_ms,
                   m.input_cost_per_million AS pin, m.output_cost_per_million AS pout
            FROM source_processing r LEFT JOIN models m ON m.name = r.model_name
            WHERE r.source_id = :s AND r.status IN ('completed', 'completed_with_errors')
            ORDER BY r.completed_at NULLS FIRST, r.id"""), {"s": source_id})).all()
        run_ids = [r.id for r in runs]
        chunks = await self._chunks(run_ids)
        fragments = await self._fragments(run_ids, chunks)
        # The human reference: verdicts on run fragments, and imported reference fragments
        # that were grounded (only those carry a span and are verified).
        verdicts = (await self.session.execute(sa.text("""
            SELECT verification_status, char_start, char_end FROM fragments
            WHERE source_id = :s AND char_start IS NOT NULL AND char_end > char_start
              AND grounding <> 'ungrounded'
              AND verification_status IN ('verified', 'rejected')
            UNION
            SELECT verification_status, char_start, char_end FROM reference_fragments
            WHERE source_id = :s AND char_start IS NOT NULL AND char_end > char_start
              AND grounding <> 'ungrounded' AND verification_status = 'verified'
            ORDER BY 2, 3, 1"""), {"s": source_id})).all()
        sentences = tuple(sentence_spans(source.content))
        if source.subject_speakers:
            # With a known subject, coverage counts the subject's own sentences only.
            segments = await SegmentRepository(self.session).of_source(source_id)
            turns = SegmentIndex(source.content, segments).turn_spans_of(
                set(source.subject_speakers))
            sentences = subject_sentences(sentences, turns)
        evidence = SourceEvidence(
            source_id=source_id,
            text_length=len(source.content),
            sentences=sentences,
            text=source.content,
            verified=tuple(Span(v.char_start, v.char_end) for v in verdicts
                           if v.verification_status == "verified"),
            rejected=tuple(Span(v.char_start, v.char_end) for v in verdicts
                           if v.verification_status == "rejected"),
            runs=tuple(RunEvidence(
                run_id=r.id, model=r.model_name, price=price_key(r.pin, r.pout),
                fragments=tuple(fragments.get(r.id, ())),
                chunks=tuple(span for _, span in chunks.get(r.id, [])),
                cost_usd=Decimal(r.cost_usd), latency_ms=int(r.latency_ms)) for r in runs),
        )
        return evidence, str(source.source_type)

    async def _chunks(self, run_ids: list[int]) -> dict[int, list[tuple[int, Span]]]:
        if not run_ids:
            return {}
        rows = await self.session.execute(sa.text(
            "SELECT run_id, chunk_index, char_start, char_end FROM run_chunks"
            " WHERE run_id = ANY(:ids) ORDER BY run_id, chunk_index"), {"ids": run_ids})
        chunks: dict[int, list[tuple[int, Span]]] = defaultdict(list)
        for row in rows:
            chunks[row.run_id].append((row.chunk_index, Span(row.char_start, row.char_end)))
        return chunks

    async def _fragments(self, run_ids: list[int], chunks: Mapping[int, list[tuple[int, Span]]]
                         ) -> dict[int, list[ScoredFragment]]:
        if not run_ids:
            return {}
        rows = await self.session.execute(sa.text("""
            SELECT run_id, chunk_index, char_start, char_end, grounding, is_complete,
                   has_clean_boundaries, relevance FROM fragments
            WHERE run_id = ANY(:ids) ORDER BY run_id, chunk_index, ordinal"""), {"ids": run_ids})
        scored: dict[int, list[ScoredFragment]] = defaultdict(list)
        for row in rows:
            scored[row.run_id].append(_scored(row, chunks.get(row.run_id, [])))
        return scored

    async def store(self, source_id: int, source_type: str,
                    measurements: Sequence[RunMeasurement]) -> None:
        """Replace the source's rows with these measurements (runs no longer completed drop)."""
        keep = [m.run_id for m in measurements]
        await self.session.execute(sa.delete(ModelPerformanceRow).where(
            _MP.source_id == source_id, _MP.run_id.notin_(keep) if keep else sa.true()))
        if not measurements:
            return
        found = await self.session.execute(sa.text(
            "SELECT id, batch_id FROM source_processing WHERE id = ANY(:ids)"), {"ids": keep})
        batches = {int(r.id): int(r.batch_id) for r in found}
        rows = [_row_values(m, source_id, source_type, batches[m.run_id]) for m in measurements]
        stmt = insert(ModelPerformanceRow).values(rows)
        updated: dict[str, Any] = {c: stmt.excluded[c] for c in rows[0] if c != "run_id"}
        updated["computed_at"] = sa.func.now()
        # The last score measured before a human reference existed stays once one does: it is
        # what calibration compares the human-referenced score with.
        human = stmt.excluded.reference_kind == "verified"
        updated["unverified_score"] = sa.case(
            (human, _MP.unverified_score), else_=stmt.excluded.unverified_score)
        updated["unverified_kind"] = sa.case(
            (human, _MP.unverified_kind), else_=stmt.excluded.unverified_kind)
        await self.session.execute(stmt.on_conflict_do_update(index_elements=["run_id"],
                                                              set_=updated))
        for m in measurements:
            await self.session.execute(sa.text(
                "UPDATE source_processing SET metrics = metrics || CAST(:m AS jsonb)"
                " WHERE id = :r"), {"m": json.dumps({"quality": _details(m)}), "r": m.run_id})

    async def measure(self, source_id: int, defaults: PolicyDefaults) -> int:
        """Measure every completed run of the source and store the rows; returns the count."""
        await self.lock_source(source_id)
        found = await self.evidence(source_id)
        if found is None:
            return 0
        evidence, source_type = found
        policy = await self.policy(defaults)
        # CPU-bound (matching and a bootstrap per run): off the event loop that runs the jobs.
        measurements = await asyncio.to_thread(measure_source, evidence, policy)
        await self.store(source_id, source_type, measurements)
        return len(measurements)

    async def unmeasured_sources(self, limit: int = 100) -> list[int]:
        """Sources with a completed run that has no performance row (a crash in between)."""
        rows = await self.session.execute(sa.text("""
            SELECT DISTINCT r.source_id FROM source_processing r
            LEFT JOIN model_performance mp ON mp.run_id = r.id
            WHERE r.status IN ('completed', 'completed_with_errors') AND mp.id IS NULL
            LIMIT :n"""), {"n": limit})
        return [int(r[0]) for r in rows]

    async def measured_sources(self) -> list[int]:
        """Every source with at least one completed run."""
        rows = await self.session.execute(sa.text(
            "SELECT DISTINCT source_id FROM source_processing"
            " WHERE status IN ('completed', 'completed_with_errors') ORDER BY source_id"))
        return [int(r[0]) for r in rows]

    # -- reading ------------------------------------------------------------------------------

    async def records(self, source_ids: Iterable[int]) -> dict[int, list[PerformanceRecord]]:
        """Rows of completed runs per source, best score first, then cheaper, then run id."""
        ids = list(dict.fromkeys(source_ids))
        grouped: dict[int, list[PerformanceRecord]] = {i: [] for i in ids}
        if not ids:
            return grouped
        rows = await self.session.execute(sa.text(
            _RECORD_SQL + " WHERE mp.source_id = ANY(:ids) ORDER BY mp.source_id,"
            " mp.quality_score DESC, mp.cost_per_fragment NULLS LAST, mp.run_id"), {"ids": ids})
        for row in rows:
            grouped[row.source_id].append(_record(row))
        return grouped

    async def latest_per_model(self, *, source_id: int | None = None,
                               source_type: str | None = None,
                               models: Sequence[str] | None = None) -> list[PerformanceRecord]:
        """Each model's latest completed run per source, in one source or one source type."""
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {}
        if source_id is not None:
            where.append("mp.source_id = :sid")
            params["sid"] = source_id
        if source_type is not None:
            where.append("s.source_type = :stype")
            params["stype"] = source_type
        if models is not None:
            where.append("mp.model_name = ANY(:models)")
            params["models"] = list(models)
        rows = await self.session.execute(sa.text(
            "SELECT DISTINCT ON (latest.model, latest.source_id) * FROM (" + _RECORD_SQL
            + " WHERE " + " AND ".join(where) + ") AS latest ORDER BY latest.model,"
            " latest.source_id, latest.finished_at DESC NULLS LAST, latest.run_id DESC"), params)
        return [_record(row) for row in rows]

    async def pooled(self, *, source_id: int | None = None, source_type: str | None = None,
                     models: Sequence[str] | None = None) -> list[Candidate]:
        """One candidate per model: its latest run on each source, pooled."""
        records = await self.latest_per_model(source_id=source_id, source_type=source_type,
                                              models=models)
        return pool_by_model([r.candidate() for r in records])

    async def source_types_measured(self) -> list[str]:
        rows = await self.session.execute(sa.text(
            "SELECT DISTINCT s.source_type FROM model_performance mp"
            " JOIN sources s ON s.id = mp.source_id ORDER BY 1"))
        return [str(r[0]) for r in rows]

    async def model_prices(self, names: Iterable[str] | None = None) -> dict[str, Decimal | None]:
        """Price key per catalog model (input + output per million; None when unpriced)."""
        query = "SELECT name, input_cost_per_million, output_cost_per_million FROM models"
        params: dict[str, Any] = {}
        if names is not None:
            query += " WHERE name = ANY(:names)"
            params["names"] = list(names)
        rows = await self.session.execute(sa.text(query), params)
        return {r.name: price_key(r.input_cost_per_million, r.output_cost_per_million)
                for r in rows}


def pool_by_model(samples: Sequence[Candidate]) -> list[Candidate]:
    """Pool samples per model, in model-name order."""
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for sample in samples:
        grouped[sample.model].append(sample)
    return [pool_candidates(model, grouped[model]) for model in sorted(grouped)]


async def plan_samples(
    session: AsyncSession, group_id: str, source_type: str, sample_ids: Sequence[int]
) -> tuple[list[Candidate], dict[str, frozenset[int]]]:
    """What the models of one strategy plan measured on its sample, and what each completed.

    A sample run that ended without a measurement (failed, stopped at the cost limit, skipped)
    counts as a zero sample of its model; runs still active are left out (the caller waits).
    """
    rows = (await session.execute(sa.text("""
        SELECT DISTINCT ON (r.model_name, r.source_id) r.model_name, r.source_id, r.status,
               r.cost_usd, s.char_count, mp.quality_score, mp.quality_low, mp.quality_high,
               mp.provisional, mp.grounded_fragment_count, mp.vs_reference
        FROM source_processing r
        JOIN processing_batches b ON b.id = r.batch_id
        JOIN sources s ON s.id = r.source_id
        LEFT JOIN model_performance mp ON mp.run_id = r.id
        WHERE b.group_id = :g AND b.config -> 'plan' ->> 'sourceType' = :t
        ORDER BY r.model_name, r.source_id, r.id DESC"""), {"g": group_id, "t": source_type}
    )).all()
    samples: list[Candidate] = []
    done: dict[str, set[int]] = defaultdict(set)
    sample = set(sample_ids)
    for row in rows:
        if row.status in FINISHED_RUN:
            done[row.model_name].add(row.source_id)
        if row.source_id not in sample or row.status in ("pending", "processing",
                                                          "waiting_budget"):
            continue
        if row.status in FINISHED_RUN and row.quality_score is not None:
            samples.append(Candidate(
                row.model_name, row.quality_score, row.quality_low, row.quality_high,
                row.provisional, Decimal(row.cost_usd), row.grounded_fragment_count,
                row.char_count, 1,
                paired=PairedDelta.from_json(row.vs_reference) if row.vs_reference else None))
        else:
            samples.append(failed_sample(row.model_name, Decimal(row.cost_usd), row.char_count))
    return pool_by_model(samples), {m: frozenset(ids) for m, ids in done.items()}


def _scored(row: Any, chunks: Sequence[tuple[int, Span]]) -> ScoredFragment:
    has_span = row.char_start is not None and row.char_end is not None
    grounded = row.grounding != "ungrounded" and has_span
    return ScoredFragment(
        start=row.char_start if has_span else None,
        end=row.char_end if has_span else None,
        grounded=grounded,
        is_complete=row.is_complete,
        has_clean_boundaries=row.has_clean_boundaries,
        relevance=max(0, min(10, int(row.relevance))),
        chunk_index=_chunk_position(row.chunk_index, row.char_start, chunks),
    )


def _chunk_position(index: int, start: int | None, chunks: Sequence[tuple[int, Span]]) -> int:
    """Position of the fragment's chunk in the run's chunk list (chunk indices may have gaps)."""
    for position, (chunk_index, _) in enumerate(chunks):
        if chunk_index == index:
            return position
    if start is not None:
        for position, (_, span) in enumerate(chunks):
            if span.start <= start < span.end:
                return position
    return 0


def _row_values(m: RunMeasurement, source_id: int, source_type: str,
                batch_id: int) -> dict[str, Any]:
    q = m.quality
    return {
        "run_id": m.run_id, "source_id": source_id, "batch_id": batch_id,
        "model_name": m.model, "source_type": source_type,
        "reference_kind": q.reference_kind, "reference_model": q.reference_model,
        "quality_score": q.score, "quality_low": q.low, "quality_high": q.high,
        "provisional": q.provisional,
        "grounded_rate": q.components.grounded_rate, "miu_rate": q.components.miu_rate,
        "precision": q.match.precision if q.match else None,
        "recall": q.match.recall if q.match else None,
        "f1": q.match.f1 if q.match else None,
        "coverage": q.coverage, "mean_relevance": q.mean_relevance,
        "fragment_count": q.fragments, "grounded_fragment_count": q.grounded_fragments,
        "cost_usd": m.cost_usd, "cost_per_fragment": m.cost_per_fragment,
        "cost_per_1k_chars": m.cost_per_1k_chars, "latency_ms": m.latency_ms,
        "is_reference": m.is_reference, "reference_run_id": m.reference_run_id,
        "chunk_tallies": [list(row) for row in q.tallies],
        "vs_reference": m.vs_reference.to_json() if m.vs_reference else None,
        "span_metrics": m.span_metrics,
        "unverified_score": None if q.reference_kind == "verified" else q.score,
        "unverified_kind": None if q.reference_kind == "verified" else q.reference_kind,
    }


def _details(m: RunMeasurement) -> dict[str, Any]:
    """What the row has no column for: the score's components and the matching counts."""
    q = m.quality
    return {
        "coverageRatio": q.components.coverage_ratio,
        "referenceCoverage": q.reference_coverage,
        "relevanceComponent": q.components.relevance,
        "f1Component": q.components.f1,
        "tp": q.match.tp if q.match else None, "fp": q.match.fp if q.match else None,
        "fn": q.match.fn if q.match else None,
        "rejectedHits": q.match.rejected_hits if q.match else None,
        "miuFragments": q.miu_fragments, "chunks": q.chunks, "sentences": q.sentences,
    }


async def merge_thresholds(session: AsyncSession, changes: Mapping[str, float | None],
                           updated_by: str | None) -> None:
    """Set (or, for None, remove) per-type thresholds atomically, keeping the other types."""
    await session.execute(sa.text(
        "INSERT INTO settings (key, value, updated_by) VALUES (:k, '{}'::jsonb, :by)"
        " ON CONFLICT (key) DO NOTHING"), {"k": QUALITY_THRESHOLDS, "by": updated_by})
    added = {k: v for k, v in changes.items() if v is not None}
    removed = [k for k, v in changes.items() if v is None]
    await session.execute(sa.text(
        "UPDATE settings SET value = (value || CAST(:add AS jsonb)) - CAST(:drop AS text[]),"
        " updated_by = :by, updated_at = now() WHERE key = :k"),
        {"add": json.dumps(added), "drop": removed, "by": updated_by, "k": QUALITY_THRESHOLDS})
