"""The invariants a score must keep for users to trust it (DESIGN §9), under hypothesis:

1. Identical fragments on the same source get identical scores and intervals, whatever model
   made them, whatever its price, and whichever model is the reference.
2. Every run of a source is measured against the one reference; the reference run is marked and
   scored by the same rule as the others.
3. Adding, re-running or deleting a run that is not part of the reference never changes the
   other runs' scores.

Each property runs at least 200 examples.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.evaluation import (
    QualityPolicy,
    RunEvidence,
    SourceEvidence,
    evaluation_chunks,
    measure_source,
    source_reference,
)
from domain.model import Span
from domain.quality import ScoredFragment, evaluate_run

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SENTENCE = 100  # characters per sentence of the generated sources
POLICY = QualityPolicy(resamples=60)


@st.composite
def sources(draw: st.DrawFn) -> tuple[int, tuple[Span, ...]]:
    count = draw(st.integers(min_value=4, max_value=40))
    return count * SENTENCE, tuple(Span(i * SENTENCE, i * SENTENCE + SENTENCE - 2)
                                   for i in range(count))


@st.composite
def run_chunks(draw: st.DrawFn, length: int) -> tuple[Span, ...]:
    """The run's own chunking: any partition of the text at sentence boundaries."""
    sentences = length // SENTENCE
    cuts = sorted(draw(st.sets(st.integers(1, sentences - 1), max_size=6))) if sentences > 1 \
        else []
    bounds = [0, *(c * SENTENCE for c in cuts), length]
    return tuple(Span(a, b) for a, b in itertools.pairwise(bounds))


@st.composite
def fragments(draw: st.DrawFn, length: int, chunks: tuple[Span, ...]
              ) -> tuple[ScoredFragment, ...]:
    sentences = length // SENTENCE
    picked = draw(st.lists(st.integers(0, sentences - 1), max_size=sentences, unique=True))
    out = []
    for index in picked:
        start = index * SENTENCE + draw(st.integers(0, 30))
        end = index * SENTENCE + SENTENCE - 2 - draw(st.integers(0, 30))
        chunk = next(i for i, c in enumerate(chunks) if c.start <= start < c.end)
        out.append(ScoredFragment(start, end, True, draw(st.booleans()), draw(st.booleans()),
                                  draw(st.integers(1, 10)), chunk))
    for _ in range(draw(st.integers(0, 3))):  # invented quotes: ungrounded, no span
        out.append(ScoredFragment(None, None, False, True, True, draw(st.integers(1, 10)),
                                  draw(st.integers(0, len(chunks) - 1))))
    return tuple(out)


PRICES = st.one_of(st.none(), st.integers(0, 50).map(Decimal))


@st.composite
def runs(draw: st.DrawFn, length: int, count: int, first_id: int = 1
         ) -> list[RunEvidence]:
    out = []
    for i in range(count):
        chunks = draw(run_chunks(length))
        out.append(RunEvidence(first_id + i, f"model-{first_id + i}", draw(PRICES),
                               draw(fragments(length, chunks)), chunks,
                               Decimal(draw(st.integers(1, 1000))) / 1000, 100))
    return out


@st.composite
def verdicts(draw: st.DrawFn, length: int) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    sentences = length // SENTENCE
    chosen = draw(st.lists(st.integers(0, sentences - 1), max_size=sentences, unique=True))
    spans = [Span(i * SENTENCE, i * SENTENCE + SENTENCE - 2) for i in chosen]
    cut = draw(st.integers(0, len(spans)))
    return tuple(spans[:cut]), tuple(spans[cut:])


def score_of(measured: object) -> tuple[float, float, float]:
    q = measured.quality  # type: ignore[attr-defined]
    return q.score, q.low, q.high


def by_run(evidence: SourceEvidence, policy: QualityPolicy = POLICY) -> dict[int, object]:
    return {m.run_id: m for m in measure_source(evidence, policy)}


@SETTINGS
@given(data=st.data())
def test_identical_fragments_score_identically_whatever_the_model_price_or_role(
        data: st.DataObject) -> None:
    length, sentences = data.draw(sources())
    others = data.draw(runs(length, data.draw(st.integers(0, 3)), first_id=10))
    chunks = data.draw(run_chunks(length))
    work = data.draw(fragments(length, chunks))
    twin_a = RunEvidence(1, "twin-a", data.draw(PRICES), work, chunks, Decimal("0.5"), 10)
    twin_b = RunEvidence(2, "twin-b", data.draw(PRICES), work, chunks, Decimal("0.001"), 99)
    verified, rejected = data.draw(verdicts(length))
    order = data.draw(st.permutations([*others, twin_a, twin_b]))
    designated = data.draw(st.sampled_from([None, "twin-a", "twin-b", "model-10", "absent"]))
    policy = QualityPolicy(resamples=60, min_verified=data.draw(st.integers(1, 6)),
                           reference_model=designated)
    evidence = SourceEvidence(1, length, sentences, verified, rejected, tuple(order))
    measured = by_run(evidence, policy)
    assert score_of(measured[1]) == score_of(measured[2])
    a, b = measured[1].vs_reference, measured[2].vs_reference  # type: ignore[attr-defined]
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert (a.delta, a.low, a.high, a.chunks) == (b.delta, b.low, b.high, b.chunks)


@SETTINGS
@given(data=st.data())
def test_every_entry_is_measured_against_the_one_reference_by_the_same_rule(
        data: st.DataObject) -> None:
    length, sentences = data.draw(sources())
    found = data.draw(runs(length, data.draw(st.integers(1, 5))))
    verified, rejected = data.draw(verdicts(length))
    policy = QualityPolicy(resamples=60, min_verified=data.draw(st.integers(1, 6)))
    evidence = SourceEvidence(1, length, sentences, verified, rejected, tuple(found))
    chosen = source_reference(evidence, policy)
    measured = measure_source(evidence, policy)
    # One reference for all, named once.
    assert {m.quality.reference_kind for m in measured} == {chosen.reference.kind}
    assert {m.quality.reference_model for m in measured} == {chosen.reference.model}
    assert {m.reference_run_id for m in measured} == {chosen.run_id}
    marked = [m.run_id for m in measured if m.is_reference]
    assert marked == ([chosen.run_id] if chosen.run_id is not None else [])
    # The same rule for every entry, the reference's own included: evaluate_run against the
    # chosen reference on the source's evaluation chunks.
    blocks = evaluation_chunks(length, sentences)
    starts = [b.start for b in blocks]
    for run, m in zip(found, measured, strict=True):
        placed = []
        last: dict[int, int] = {}
        for f in run.fragments:
            if f.start is not None:
                last[f.chunk_index] = f.start
            position = last.get(f.chunk_index, run.chunks[f.chunk_index].start)
            owner = max(i for i, s in enumerate(starts) if s <= position)
            placed.append(replace(f, chunk_index=owner))
        expected = evaluate_run(placed, chosen.reference, sentences, policy.weights,
                                chunks=blocks, resamples=policy.resamples)
        assert (m.quality.score, m.quality.low, m.quality.high) == \
            (expected.score, expected.low, expected.high)


def _reference_members(evidence: SourceEvidence, policy: QualityPolicy) -> set[int]:
    """Runs that are part of the reference: the reference run, or every latest run of a
    consensus."""
    chosen = source_reference(evidence, policy)
    if chosen.reference.kind == "consensus":
        return {r.run_id for r in evidence.runs}
    return {chosen.run_id} if chosen.run_id is not None else set()


@SETTINGS
@given(data=st.data())
def test_a_run_outside_the_reference_never_moves_the_other_runs_scores(
        data: st.DataObject) -> None:
    length, sentences = data.draw(sources())
    found = data.draw(runs(length, data.draw(st.integers(2, 5))))
    verified, rejected = data.draw(verdicts(length))
    policy = QualityPolicy(resamples=60, min_verified=data.draw(st.integers(1, 6)))
    before_evidence = SourceEvidence(1, length, sentences, verified, rejected, tuple(found))
    chosen = source_reference(before_evidence, policy)
    members = _reference_members(before_evidence, policy)
    change = data.draw(st.sampled_from(["add", "rerun", "delete"]))
    outsiders = [r for r in found if r.run_id not in members]
    # A consensus is made of every run, and a source that keeps a single model has no
    # reference at all: neither leaves a run outside the reference to change.
    if chosen.reference.kind in ("consensus", "none") or not outsiders:
        return
    if change == "add":
        # A newcomer cheaper than the reference model (or unpriced): one at the reference's
        # price would make "the most expensive" ambiguous, and dearer it would become the
        # reference, both changes of the reference itself.
        top = max((r.price for r in found if r.price is not None), default=None)
        model_ref = chosen.reference.kind == "reference_model"
        if model_ref and top == 0:
            return
        cap = int(top) - 1 if model_ref and top is not None else 50
        newcomer = data.draw(runs(length, 1, first_id=100))[0]
        price = data.draw(st.one_of(st.none(), st.integers(0, max(0, cap)).map(Decimal)))
        after = [*found, replace(newcomer, price=price)]
    elif change == "rerun":
        old = data.draw(st.sampled_from(outsiders))
        again = data.draw(runs(length, 1, first_id=200))[0]
        after = [*found, replace(again, model=old.model, price=old.price)]
    else:
        if len({r.model for r in found}) < 3 and chosen.reference.kind != "verified":
            return  # the source would keep one model: no reference left to keep
        gone = data.draw(st.sampled_from(outsiders))
        after = [r for r in found if r.run_id != gone.run_id]
    before = by_run(before_evidence, policy)
    after_measured = by_run(replace(before_evidence, runs=tuple(after)), policy)
    for run_id, measured in after_measured.items():
        if run_id in before:
            assert score_of(measured) == score_of(before[run_id]), (change, run_id)
