"""Quality measured from evidence: hand-computed cases for every function of domain.quality."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.model import Span
from domain.quality import (
    NO_REFERENCE,
    MatchResult,
    QualityComponents,
    QualityWeights,
    Reference,
    ScoredFragment,
    bootstrap_interval,
    choose_reference,
    consensus_spans,
    coverage,
    coverage_ratio,
    evaluate_run,
    grounded_rate,
    match_spans,
    mean_relevance,
    miu_rate,
    quality_score,
)


def frag(
    start: int | None,
    end: int | None,
    *,
    grounded: bool = True,
    complete: bool = True,
    clean: bool = True,
    relevance: int = 5,
    chunk: int = 0,
) -> ScoredFragment:
    return ScoredFragment(start, end, grounded, complete, clean, relevance, chunk)


def S(start: int, end: int) -> Span:  # reads like the notation [start, end)
    return Span(start, end)


# --- simple rates ---------------------------------------------------------------------------


FOUR = [
    frag(0, 10, relevance=8),
    frag(10, 20, clean=False, relevance=6),
    frag(None, None, grounded=False, relevance=10),
    frag(20, 30, complete=False, clean=False, relevance=4),
]


def test_grounded_rate_is_grounded_over_all_fragments() -> None:
    assert grounded_rate(FOUR) == 0.75  # 3 grounded of 4


def test_miu_rate_counts_only_fragments_passing_both_checks() -> None:
    # passing both: the first and the ungrounded third (MIU lint is independent of grounding)
    assert miu_rate(FOUR) == 0.5


def test_mean_relevance_is_on_the_ten_point_scale() -> None:
    assert mean_relevance(FOUR) == 7.0  # (8 + 6 + 10 + 4) / 4


def test_an_empty_run_earns_zero_rates() -> None:
    assert (grounded_rate([]), miu_rate([]), mean_relevance([])) == (0.0, 0.0, 0.0)


def test_a_grounded_fragment_must_carry_its_span() -> None:
    with pytest.raises(ValueError, match="grounded"):
        frag(None, None, grounded=True)


def test_relevance_outside_zero_to_ten_is_refused() -> None:
    with pytest.raises(ValueError, match="relevance"):
        frag(0, 1, relevance=11)


def test_an_ungrounded_fragment_has_no_span_even_if_offsets_were_kept() -> None:
    assert frag(0, 5, grounded=False).span is None
    assert frag(0, 5).span == S(0, 5)


# --- matching -----------------------------------------------------------------------------------


def test_identical_spans_agree_perfectly() -> None:
    result = match_spans([S(0, 10)], [S(0, 10)])
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_one_reference_span_matches_only_one_prediction() -> None:
    # [0,10) vs ref [0,10): IoU 1.0 wins; [0,9) vs ref: IoU 0.9 but the ref is taken -> FP
    result = match_spans([S(0, 9), S(0, 10)], [S(0, 10)])
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    # P = 1/2, R = 1, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert result.precision == 0.5
    assert result.recall == 1.0
    assert result.f1 == pytest.approx(2 / 3)


def test_greedy_matching_pairs_best_iou_first() -> None:
    # P1=[0,12): IoU 10/12=.833 with R1=[0,10), 12/16=.75 with R2=[0,16)
    # P2=[0,9):  IoU 9/10=.9 with R1,            9/16=.5625 with R2
    # Best first: P2-R1 (.9), then P1-R2 (.75): two matches.
    result = match_spans([S(0, 12), S(0, 9)], [S(0, 10), S(0, 16)])
    assert (result.tp, result.fp, result.fn) == (2, 0, 0)


def test_iou_of_exactly_the_threshold_matches() -> None:
    assert match_spans([S(0, 10)], [S(0, 5)]).tp == 1  # IoU 5/10 = 0.5
    assert match_spans([S(0, 10)], [S(0, 4)]).tp == 0  # IoU 4/10 = 0.4


def test_no_predictions_and_no_reference_is_perfect_agreement() -> None:
    result = match_spans([], [])
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_no_predictions_against_a_reference_scores_zero() -> None:
    result = match_spans([], [S(0, 10)])
    assert (result.tp, result.fp, result.fn) == (0, 0, 1)
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)


def test_predictions_against_an_empty_reference_score_zero() -> None:
    result = match_spans([S(0, 10)], [])
    assert (result.tp, result.fp, result.fn) == (0, 1, 0)
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)


def test_matching_a_rejected_span_is_a_false_positive() -> None:
    result = match_spans([S(50, 60)], [S(0, 10)], rejected=[S(50, 60)])
    assert (result.tp, result.fp, result.fn, result.rejected_hits) == (0, 1, 1, 1)


def test_a_prediction_closer_to_a_rejected_span_than_a_verified_one_is_false() -> None:
    # P=[0,12): IoU with verified [0,20) = 12/20 = .6, with rejected [0,12) = 1.0
    result = match_spans([S(0, 12)], [S(0, 20)], rejected=[S(0, 12)])
    assert (result.tp, result.fp, result.fn, result.rejected_hits) == (0, 1, 1, 1)


def test_a_prediction_closer_to_the_verified_span_is_true_despite_a_rejected_overlap() -> None:
    # P=[0,12): IoU with verified [0,12) = 1.0, with rejected [0,20) = .6
    result = match_spans([S(0, 12)], [S(0, 12)], rejected=[S(0, 20)])
    assert (result.tp, result.fp, result.fn, result.rejected_hits) == (1, 0, 0, 0)


def test_on_an_exact_tie_the_rejected_span_wins() -> None:
    result = match_spans([S(0, 10)], [S(0, 10)], rejected=[S(0, 10)])
    assert (result.tp, result.fp, result.fn) == (0, 1, 1)


def test_an_iou_threshold_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        match_spans([S(0, 1)], [S(5, 6)], iou_threshold=0.0)


def test_f1_is_the_harmonic_mean() -> None:
    # tp 2, fp 2, fn 1: P = .5, R = 2/3, F1 = 2 * (1/3) / (7/6) = 4/7
    assert MatchResult(2, 2, 1).f1 == pytest.approx(4 / 7)


SPANS = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 20)).map(lambda t: S(t[0], t[0] + t[1])),
    max_size=8,
)


@given(predicted=SPANS, reference=SPANS)
def test_matching_is_one_to_one_whatever_the_spans(
    predicted: list[Span], reference: list[Span]
) -> None:
    result = match_spans(predicted, reference)
    assert result.tp + result.fp == len(predicted)
    assert result.tp + result.fn == len(reference)
    assert 0.0 <= result.f1 <= 1.0


# --- reference ----------------------------------------------------------------------------------


def test_consensus_needs_two_different_models() -> None:
    # a [0,10) and b [1,10) agree (IoU .9); c alone at [50,60)
    runs = {"a": [S(0, 10)], "b": [S(1, 10)], "c": [S(50, 60)]}
    # two members tie on total IoU, so the earliest span represents them
    assert consensus_spans(runs) == (S(0, 10),)


def test_consensus_span_is_the_medoid_of_its_cluster() -> None:
    # IoU a-b 10/12=.833, a-c 10/14=.714, b-c 12/14=.857
    # totals: a 1.548, b 1.690, c 1.571 -> b represents the cluster
    runs = {"a": [S(0, 10)], "b": [S(0, 12)], "c": [S(0, 14)]}
    assert consensus_spans(runs) == (S(0, 12),)


def test_one_model_twice_is_not_a_consensus() -> None:
    assert consensus_spans({"a": [S(0, 10), S(0, 11)], "b": [S(40, 50)]}) == ()


def test_overlap_below_the_threshold_is_not_agreement() -> None:
    assert consensus_spans({"a": [S(0, 10)], "b": [S(5, 15)]}) == ()  # IoU 5/15


def test_enough_verified_fragments_are_the_reference_with_their_rejections() -> None:
    ref = choose_reference(
        verified=[S(20, 30), S(0, 10)],
        rejected=[S(40, 50)],
        min_verified=2,
        reference_model_run=("big", [S(0, 5)]),
        other_runs={},
    )
    assert ref.kind == "verified"
    assert ref.spans == (S(0, 10), S(20, 30))
    assert ref.rejected == (S(40, 50),)


def test_too_few_verified_fragments_defer_to_the_reference_model_run() -> None:
    ref = choose_reference([S(0, 10)], [], 2, ("big", [S(0, 5)]), {"x": [S(0, 5)]})
    assert (ref.kind, ref.model, ref.spans, ref.rejected) == (
        "reference_model",
        "big",
        (S(0, 5),),
        (),
    )


def test_a_reference_model_that_found_nothing_is_still_the_reference() -> None:
    ref = choose_reference([], [], 1, ("big", []), {})
    assert (ref.kind, ref.spans) == ("reference_model", ())


def test_without_a_reference_model_the_consensus_of_other_runs_is_used() -> None:
    ref = choose_reference([], [], 3, None, {"b": [S(0, 10)], "a": [S(0, 10)]})
    assert (ref.kind, ref.spans, ref.consensus_of) == ("consensus", (S(0, 10),), ("a", "b"))


def test_a_single_other_run_gives_no_reference() -> None:
    ref = choose_reference([], [], 3, None, {"a": [S(0, 10)]})
    assert ref == NO_REFERENCE
    assert not ref.exists


def test_min_verified_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="min_verified"):
        choose_reference([], [], 0, None, {})


def test_a_reference_model_reference_must_name_its_model() -> None:
    with pytest.raises(ValueError, match="model"):
        Reference("reference_model", ())


# --- coverage -----------------------------------------------------------------------------------


SENTENCES = [S(0, 10), S(10, 20), S(20, 30), S(30, 40)]


def test_coverage_is_the_share_of_sentences_touched() -> None:
    assert coverage([S(5, 12)], SENTENCES) == 0.5  # touches [0,10) and [10,20)


def test_a_span_ending_where_a_sentence_starts_does_not_touch_it() -> None:
    assert coverage([S(0, 10)], SENTENCES) == 0.25  # half-open spans


def test_empty_spans_and_empty_sentences_do_not_count() -> None:
    assert coverage([S(10, 10)], SENTENCES) == 0.0
    assert coverage([S(0, 10)], [S(0, 10), S(10, 10)]) == 1.0  # the empty sentence is ignored


def test_coverage_of_a_source_without_sentences_is_zero() -> None:
    assert coverage([S(0, 10)], []) == 0.0


@given(spans=SPANS, sentences=SPANS)
def test_coverage_agrees_with_checking_every_pair(spans: list[Span], sentences: list[Span]) -> None:
    real = [s for s in sentences if s.length]
    touched = sum(any(s.overlap(f) > 0 for f in spans) for s in real)
    assert coverage(spans, sentences) == (touched / len(real) if real else 0.0)


def test_coverage_ratio_is_relative_to_the_reference_and_capped() -> None:
    assert coverage_ratio(0.3, 0.6) == pytest.approx(0.5)
    assert coverage_ratio(0.8, 0.4) == 1.0
    assert coverage_ratio(0.2, 0.0) == 1.0
    assert coverage_ratio(0.0, 0.0) == 0.0


def comps(
    f1: float | None, grounded: float, miu: float, cov: float, rel: float
) -> QualityComponents:
    return QualityComponents(
        f1=f1, grounded_rate=grounded, miu_rate=miu, coverage_ratio=cov, relevance=rel
    )


# --- score --------------------------------------------------------------------------------------


def test_score_is_ten_times_the_weighted_mean() -> None:
    c = comps(0.5, 0.8, 0.6, 1.0, 0.7)
    # .4*.5 + .25*.8 + .15*.6 + .1*1 + .1*.7 = .2 + .2 + .09 + .1 + .07 = .66
    assert quality_score(c) == pytest.approx(6.6)
    assert not c.provisional


def test_without_a_reference_f1_drops_out_and_the_weights_renormalise() -> None:
    c = comps(None, 1.0, 0.0, 0.0, 0.0)
    # only grounded counts: .25 / (.25 + .15 + .10 + .10) = .25 / .6
    assert quality_score(c) == pytest.approx(10 * 0.25 / 0.6)
    assert c.provisional


def test_provisional_score_of_mixed_components() -> None:
    c = comps(None, 0.8, 0.6, 1.0, 0.7)
    # (.2 + .09 + .1 + .07) / .6 = .46 / .6 = .7667
    assert quality_score(c) == pytest.approx(10 * 0.46 / 0.6)


def test_custom_weights_change_the_score() -> None:
    c = comps(1.0, 0.0, 0.0, 0.0, 0.0)
    weights = QualityWeights(f1=1.0, grounded=1.0, miu=0.0, coverage=0.0, relevance=0.0)
    assert quality_score(c, weights) == pytest.approx(5.0)  # 10 * 1 / 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"f1": -0.1},
        {"grounded": math.nan},
        {"grounded": 0, "miu": 0, "coverage": 0, "relevance": 0},
    ],
)
def test_invalid_weights_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        QualityWeights(**kwargs)


def test_components_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="miu_rate"):
        comps(0.5, 0.5, 1.5, 0.5, 0.5)


# --- bootstrap ----------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def test_one_chunk_gives_the_point_estimate_on_both_ends() -> None:
    assert bootstrap_interval([4.2], _mean) == (4.2, 4.2)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    units = [1.0, 2.0, 3.5, 7.0, 9.0]
    first = bootstrap_interval(units, _mean, n=200, seed=7)
    second = bootstrap_interval(units, _mean, n=200, seed=7)
    assert first == second
    low, high = first
    assert 1.0 <= low < high <= 9.0


def test_bootstrap_interval_spans_the_resampled_extremes() -> None:
    # Resampling [0, 10]: the mean is 0, 5 or 10 with chances 1/4, 1/2, 1/4, so the 5th
    # percentile is 0 and the 95th is 10.
    assert bootstrap_interval([0.0, 10.0], _mean, n=1000, confidence=0.90) == (0.0, 10.0)


def test_identical_chunks_give_a_zero_width_interval() -> None:
    assert bootstrap_interval([3.0, 3.0, 3.0], _mean, n=50) == (3.0, 3.0)


def test_bootstrap_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="resample"):
        bootstrap_interval([1.0, 2.0], _mean, n=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], _mean, confidence=1.0)


# --- one run, end to end --------------------------------------------------------------------------

# A 40-character source: four sentences, two chunks.
CHUNKS = [S(0, 20), S(20, 40)]
RUN = [
    frag(0, 10, relevance=8, chunk=0),  # matches ref [0,10): TP
    frag(12, 18, clean=False, relevance=6, chunk=0),  # matches nothing: FP
    frag(None, None, grounded=False, relevance=10, chunk=1),  # ungrounded: FP
    frag(21, 30, relevance=4, chunk=1),  # IoU 9/10 with ref [20,30): TP
]
REFERENCE = Reference("reference_model", (S(0, 10), S(20, 30), S(30, 40)), model="big")


def test_evaluate_run_computes_every_component_by_hand() -> None:
    q = evaluate_run(RUN, REFERENCE, SENTENCES, chunks=CHUNKS)
    # tp 2, fp 2, fn 1 ([30,40) missed): F1 = 4/7
    assert q.match == MatchResult(tp=2, fp=2, fn=1)
    assert q.components.f1 == pytest.approx(4 / 7)
    assert q.components.grounded_rate == 0.75  # 3 of 4
    assert q.components.miu_rate == 0.75  # all but the unclean one
    assert q.components.relevance == pytest.approx(0.7)  # (8+6+10+4)/4 / 10
    # run touches sentences 0,1,2; reference touches 0,2,3: both .75 -> ratio 1
    assert (q.coverage, q.reference_coverage, q.components.coverage_ratio) == (0.75, 0.75, 1.0)
    # 10 * (.4*4/7 + .25*.75 + .15*.75 + .1*1 + .1*.7) = 10 * .698571, shown as 6.99
    assert q.score == 6.99
    assert (q.reference_kind, q.reference_model, q.provisional) == ("reference_model", "big", False)
    assert (q.fragments, q.grounded_fragments, q.miu_fragments) == (4, 3, 3)
    assert (q.chunks, q.sentences, q.mean_relevance) == (2, 4, 7.0)


def test_evaluate_run_interval_comes_from_resampling_chunks() -> None:
    # Chunk 0 alone twice: 4 frags, 4 grounded, miu 2/4, tp 2 fp 2 fn 0 (F1 2/3),
    #   run cov 4/4, ref cov 2/4 -> ratio 1: 10*(.4*2/3 + .25 + .075 + .1 + .07) = 7.6167
    # Chunk 1 alone twice: grounded 2/4, miu 4/4, tp 2 fp 2 fn 2 (F1 .5),
    #   run cov 2/4, ref cov 4/4 -> ratio .5: 10*(.2 + .125 + .15 + .05 + .07) = 5.95
    # Each appears with chance 1/4, so they are the 5th and 95th percentiles.
    q = evaluate_run(RUN, REFERENCE, SENTENCES, chunks=CHUNKS, resamples=1000)
    assert q.low == 5.95
    assert q.high == 7.62  # 7.6167 rounded once
    assert q.low <= q.score <= q.high


def test_evaluate_run_is_deterministic_for_a_seed() -> None:
    first = evaluate_run(RUN, REFERENCE, SENTENCES, chunks=CHUNKS, resamples=100, seed=3)
    second = evaluate_run(RUN, REFERENCE, SENTENCES, chunks=CHUNKS, resamples=100, seed=3)
    assert first == second


def test_a_run_without_a_reference_is_provisional() -> None:
    q = evaluate_run(RUN, NO_REFERENCE, SENTENCES, chunks=CHUNKS)
    # f1 drops; coverage is the raw .75: (.25*.75 + .15*.75 + .1*.75 + .1*.7) / .6 = .445/.6
    assert q.provisional
    assert q.components.f1 is None
    assert (q.match, q.reference_coverage, q.reference_kind) == (None, None, "none")
    assert q.score == round(10 * 0.445 / 0.6, 2)


def test_verified_reference_counts_hits_on_rejected_fragments() -> None:
    ref = Reference("verified", (S(0, 10),), rejected=(S(12, 18),))
    q = evaluate_run(RUN, ref, SENTENCES, chunks=CHUNKS)
    # [0,10) TP; [12,18) on a rejected span; [21,30) and the ungrounded one are FP too
    assert q.match == MatchResult(tp=1, fp=3, fn=0, rejected_hits=1)


def test_a_single_chunk_run_has_a_zero_width_interval() -> None:
    frags = [frag(0, 10, chunk=0)]
    q = evaluate_run(frags, REFERENCE, SENTENCES, chunks=[S(0, 40)])
    assert q.low == q.score == q.high


def test_an_empty_run_against_a_reference_scores_zero() -> None:
    q = evaluate_run([], REFERENCE, SENTENCES, chunks=CHUNKS)
    assert q.score == 0.0
    assert q.match == MatchResult(tp=0, fp=0, fn=3)


def test_a_fragment_of_an_unknown_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match="chunk"):
        evaluate_run([frag(0, 10, chunk=2)], REFERENCE, SENTENCES, chunks=CHUNKS)


def test_a_run_needs_its_chunks() -> None:
    with pytest.raises(ValueError, match="chunk"):
        evaluate_run(RUN, REFERENCE, SENTENCES, chunks=[])
