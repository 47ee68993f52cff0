"""Measuring a whole source: which reference each run gets, and money per grounded yield."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from domain.evaluation import (
    QualityPolicy,
    RunEvidence,
    SourceEvidence,
    by_price,
    evaluation_chunks,
    measure_source,
    price_key,
    reference_model_of,
    source_reference,
)
from domain.model import Span
from domain.quality import ScoredFragment

# A source of 4 sentences of 10 characters each (one chunk).
SENTENCES = (Span(0, 10), Span(10, 20), Span(20, 30), Span(30, 40))
CHUNK = (Span(0, 40),)


def frag(start: int, end: int, *, grounded: bool = True, relevance: int = 7) -> ScoredFragment:
    return ScoredFragment(start if grounded else None, end if grounded else None, grounded,
                          True, True, relevance, 0)


def run(run_id: int, model: str, price: str | None, spans: list[tuple[int, int]],
        *, invented: int = 0, cost: str = "0.04") -> RunEvidence:
    fragments = [frag(a, b) for a, b in spans] + [frag(0, 0, grounded=False)] * invented
    return RunEvidence(run_id, model, None if price is None else Decimal(price),
                       tuple(fragments), CHUNK, Decimal(cost), 100)


ALL = [(0, 10), (10, 20), (20, 30), (30, 40)]


def source(*runs: RunEvidence, verified: tuple[Span, ...] = (),
           rejected: tuple[Span, ...] = ()) -> SourceEvidence:
    return SourceEvidence(1, 40, SENTENCES, verified, rejected, runs)


POLICY = QualityPolicy(resamples=50)


def test_the_reference_model_is_the_single_most_expensive_one() -> None:
    runs = [run(1, "cheap", "1", ALL), run(2, "dear", "40", ALL)]
    assert reference_model_of(runs, None) == "dear"


def test_a_designated_reference_wins_when_it_ran_on_the_source() -> None:
    runs = [run(1, "cheap", "1", ALL), run(2, "dear", "40", ALL)]
    assert reference_model_of(runs, "cheap") == "cheap"
    assert reference_model_of(runs, "absent") == "dear"


def test_a_shared_top_price_designates_no_reference_model() -> None:
    runs = [run(1, "a", "0", ALL), run(2, "b", "0", ALL)]
    assert reference_model_of(runs, None) is None
    # The two free models are measured against their consensus instead.
    chosen = source_reference(source(*runs), POLICY)
    assert chosen.reference.kind == "consensus" and chosen.baseline is None


def test_unpriced_models_are_never_the_most_expensive() -> None:
    runs = [run(1, "known", "2", ALL), run(2, "unknown", None, ALL)]
    assert reference_model_of(runs, None) == "known"


def test_every_run_of_a_source_is_judged_against_the_one_reference_model_run() -> None:
    evidence = source(run(1, "dear", "40", ALL), run(2, "cheap", "1", ALL[:2]),
                      run(3, "mid", "5", ALL))
    chosen = source_reference(evidence, POLICY)
    assert chosen.reference.kind == "reference_model"
    assert chosen.reference.model == "dear"
    assert chosen.run_id == 1
    measured = measure_source(evidence, POLICY)
    assert {m.quality.reference_kind for m in measured} == {"reference_model"}
    assert {m.reference_run_id for m in measured} == {1}
    assert [m.is_reference for m in measured] == [True, False, False]
    # The reference run scored by the same rule: against itself it agrees fully.
    dear = measured[0].quality
    assert dear.match is not None and dear.match.f1 == 1.0
    assert dear.score == measured[2].quality.score  # mid found the same spans


def test_without_a_priced_model_the_consensus_of_every_run_is_the_reference() -> None:
    evidence = source(run(1, "a", None, ALL), run(2, "b", None, ALL[:2]),
                      run(3, "c", None, ALL[2:]))
    chosen = source_reference(evidence, POLICY)
    assert chosen.reference.kind == "consensus"
    assert chosen.reference.consensus_of == ("a", "b", "c")
    assert chosen.reference.spans == tuple(Span(a, b) for a, b in ALL)
    assert chosen.run_id is None
    assert not any(m.is_reference for m in measure_source(evidence, POLICY))


def test_enough_verified_fragments_outrank_the_reference_model() -> None:
    verified = (Span(0, 10), Span(20, 30))
    evidence = source(run(1, "dear", "40", ALL), run(2, "cheap", "1", ALL), verified=verified)
    assert source_reference(evidence, QualityPolicy(min_verified=2)).reference.kind == \
        "verified"
    assert source_reference(evidence, QualityPolicy(min_verified=2)).run_id is None
    assert source_reference(evidence, QualityPolicy(min_verified=3)).reference.kind == \
        "reference_model"


def test_a_lone_run_is_never_its_own_reference() -> None:
    [measured] = measure_source(source(run(1, "only", "1", ALL)), POLICY)
    assert measured.quality.reference_kind == "none"
    assert not measured.is_reference and measured.vs_reference is None
    assert measured.quality.provisional is True


def test_the_reference_run_is_provisional_because_it_agrees_with_itself() -> None:
    dear, cheap = measure_source(source(run(1, "dear", "9", ALL), run(2, "cheap", "1", ALL)),
                                 POLICY)
    assert dear.is_reference and dear.quality.provisional
    assert not cheap.is_reference and not cheap.quality.provisional
    assert (dear.quality.score, dear.quality.low, dear.quality.high) == \
        (cheap.quality.score, cheap.quality.low, cheap.quality.high)


def test_a_lone_unpriced_run_has_no_reference() -> None:
    [measured] = measure_source(source(run(1, "only", None, ALL)), POLICY)
    assert measured.quality.reference_kind == "none"
    assert not measured.is_reference and measured.quality.provisional


def test_a_cheap_model_that_finds_everything_scores_like_the_reference() -> None:
    by_model = {m.model: m for m in measure_source(
        source(run(1, "dear", "40", ALL), run(2, "cheap", "1", ALL),
               run(3, "half", "0.5", ALL[::2]), run(4, "mid", "5", ALL)), POLICY)}
    assert by_model["cheap"].quality.score == pytest.approx(by_model["dear"].quality.score)
    assert by_model["cheap"].quality.score > by_model["half"].quality.score
    assert by_model["half"].quality.match is not None
    assert by_model["half"].quality.match.recall == 0.5


def test_cost_per_fragment_counts_grounded_fragments_only() -> None:
    [measured] = measure_source(source(run(1, "inventor", "1", ALL, invented=4,
                                           cost="0.08")), POLICY)
    assert measured.quality.fragments == 8
    assert measured.cost_per_fragment == Decimal("0.02")  # 0.08 / 4 grounded, not / 8
    assert measured.cost_per_1k_chars == Decimal("2")  # 0.08 * 1000 / 40 characters


def test_a_run_with_nothing_grounded_has_no_cost_per_fragment() -> None:
    [measured] = measure_source(source(run(1, "liar", "1", [], invented=3)), POLICY)
    assert measured.cost_per_fragment is None
    assert measured.quality.components.grounded_rate == 0.0


def test_a_short_source_is_one_evaluation_chunk_whatever_the_run_recorded() -> None:
    bare = RunEvidence(1, "m", Decimal(1), (frag(0, 10),), (), Decimal("0.01"), 5)
    [measured] = measure_source(source(bare), POLICY)
    assert measured.quality.chunks == 1


def test_evaluation_chunks_cut_at_sentence_starts_and_cover_the_text() -> None:
    sentences = [Span(i * 100, i * 100 + 90) for i in range(50)]  # 5,000 characters
    chunks = evaluation_chunks(5000, sentences, size=1000)
    assert chunks[0].start == 0 and chunks[-1].end == 5000
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert all(c.start % 100 == 0 for c in chunks)
    assert [c.length for c in chunks] == [1000] * 5
    # A short tail joins the chunk before it.
    assert [c.length for c in evaluation_chunks(5000, sentences, size=1200)] == \
        [1200, 1200, 1200, 1400]
    assert evaluation_chunks(0, [], size=10) == (Span(0, 0),)


def test_price_key_adds_input_and_output_prices_and_is_unknown_without_both() -> None:
    assert price_key(Decimal("0.15"), Decimal("0.60")) == Decimal("0.75")
    assert price_key(Decimal("1"), None) is None


def test_models_sort_cheapest_first_with_unpriced_last() -> None:
    prices = {"b": Decimal("2"), "a": Decimal("2"), "free": Decimal("0"), "mystery": None}
    assert by_price(prices) == ["free", "a", "b", "mystery"]
