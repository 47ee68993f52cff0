"""Paired differences (DESIGN §9): the same chunks resampled for both runs, verdicts a person
can repeat, the chunks still needed, pooling over sources, and where the reports use them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from domain.optimizer import (
    Candidate,
    conservative_bound,
    conservative_choice,
    pool_candidates,
    savings_row,
    sweet_spot,
)
from domain.quality import (
    NON_INFERIORITY_MARGIN,
    ChunkTally,
    PairedDelta,
    format_score,
    paired_delta,
    pooled_delta,
    round_score,
    score_of_tallies,
)


def tally(*, fragments: int = 10, grounded: int = 10, tp: int = 10, fp: int = 0, fn: int = 0,
          sentences: int = 10, touched: int = 10, ref_touched: int = 10) -> tuple[int, ...]:
    return ChunkTally(fragments=fragments, grounded=grounded, miu=grounded,
                      relevance_sum=7 * fragments, tp=tp, fp=fp, fn=fn, sentences=sentences,
                      run_touched=touched, ref_touched=ref_touched).as_tuple()


FULL = tally()
HALF = tally(fragments=5, grounded=5, tp=5, fn=5, touched=5)


def delta(d: float, low: float, high: float, *, se: float = 0.1, chunks: int = 20,
          base: float = 8.0) -> PairedDelta:
    return PairedDelta("ref", 1, base, d, low, high, chunks=chunks, sources=1, se=se)


def test_identical_runs_differ_by_exactly_nothing() -> None:
    rows = [FULL, HALF, FULL, HALF]
    d = paired_delta(rows, rows, True, baseline_model="ref", baseline_run_id=7)
    assert (d.delta, d.low, d.high, d.se) == (0.0, 0.0, 0.0, 0.0)
    assert not d.significant and d.verdict == "not_worse" and d.chunks_needed == 0
    assert d.baseline_run_id == 7 and d.chunks == 4


def test_a_run_that_misses_half_everywhere_is_significantly_worse() -> None:
    ref = [FULL] * 20
    run = [HALF] * 20
    d = paired_delta(run, ref, True, baseline_model="ref")
    expected = round_score(round_score(score_of_tallies(run, True))
                           - round_score(score_of_tallies(ref, True)))
    assert d.delta == expected < 0
    # Every chunk differs by the same amount: the paired interval is the point itself.
    assert d.low == d.high == d.delta
    assert d.significant and d.verdict == "worse"
    assert d.pct == round(d.delta / d.baseline_score * 100, 1)
    assert d.claim().startswith("worse than ref: \u2212")


def test_pairing_cancels_what_the_chunks_share() -> None:
    # Chunks alternate hard and easy for both models; the run loses one fragment everywhere.
    easy, hard = tally(), tally(fragments=4, grounded=4, tp=4, fn=6, touched=4)
    ref = [easy, hard] * 10
    run = [tally(fragments=9, grounded=9, tp=9, fn=1, touched=9),
           tally(fragments=3, grounded=3, tp=3, fn=7, touched=3)] * 10
    d = paired_delta(run, ref, True, baseline_model="ref")
    assert d.high < 0  # a small loss, yet certain
    from domain.quality import bootstrap_interval

    def score(rows: list[tuple[int, ...]]) -> float:
        return score_of_tallies(rows, True)

    own_low, own_high = bootstrap_interval(run, score)
    ref_low, ref_high = bootstrap_interval(ref, score)
    assert d.high - d.low < (own_high - own_low) + (ref_high - ref_low)


def test_the_same_chunks_are_needed_on_both_sides() -> None:
    with pytest.raises(ValueError, match="same chunks"):
        paired_delta([FULL], [FULL, FULL], True, baseline_model="ref")


@pytest.mark.parametrize(("d", "low", "high", "verdict"), [
    (0.5, 0.1, 0.9, "better"),
    (-0.5, -0.9, -0.1, "worse"),
    (0.0, -NON_INFERIORITY_MARGIN, 0.3, "not_worse"),
    (-0.05, -0.4, 0.3, "inconclusive"),
])
def test_verdicts_follow_the_interval(d: float, low: float, high: float, verdict: str) -> None:
    assert delta(d, low, high).verdict == verdict


def test_an_inconclusive_difference_says_how_many_more_chunks_would_settle_it() -> None:
    # delta -0.05, se 0.2 over 20 chunks: the lower bound needs 1.645 se' <= 0.15 with
    # se' = 0.2 sqrt(20 / n'), so n' = 20 (1.645 * 0.2 / 0.15)^2 = 96.2 -> 97, 77 more.
    d = delta(-0.05, -0.4, 0.3, se=0.2)
    assert d.chunks_needed == 77
    assert "about 77 more chunks would be needed at the observed variance" in d.claim()
    assert d.claim().startswith("not enough evidence that it is not worse than ref")
    # Below the margin already: more of the same evidence would not show it is not worse.
    worse = delta(-0.3, -0.6, 0.05, se=0.2)
    assert worse.verdict == "inconclusive" and worse.chunks_needed is None
    assert "would not show it" in worse.claim()


def test_the_quality_change_is_stated_with_its_interval() -> None:
    d = delta(-0.26, -0.41, -0.08, base=8.0)
    assert d.describe() == "\u22123.2% (90% CI \u22125.1%..\u22121.0%)"
    assert delta(0.0, 0.0, 0.0).describe() == "+0.0% (90% CI +0.0%..+0.0%)"
    assert delta(0.1, -0.1, 0.2, base=0.0).describe() == \
        "+0.10 points (90% CI \u22120.10..+0.20)"


def test_a_paired_difference_survives_storage() -> None:
    d = delta(-0.26, -0.41, -0.08, se=0.11, chunks=31)
    assert PairedDelta.from_json(d.to_json()) == d


def test_pooling_averages_sources_and_combines_their_errors() -> None:
    a = delta(-0.4, -0.6, -0.2, se=0.12, chunks=10, base=8.0)
    b = delta(-0.2, -0.5, 0.1, se=0.16, chunks=30, base=9.0)
    pooled = pooled_delta([a, b])
    assert pooled is not None
    assert pooled.delta == -0.3 and pooled.baseline_score == 8.5
    assert pooled.se == pytest.approx((0.12 ** 2 + 0.16 ** 2) ** 0.5 / 2)
    assert (pooled.chunks, pooled.sources) == (40, 2)
    assert pooled.low == round_score(-0.3 - 1.6448536269514722 * pooled.se)
    assert pooled_delta([]) is None and pooled_delta([a]) == a
    with pytest.raises(ValueError, match="baseline"):
        pooled_delta([a, replace(b, baseline_model="other")])


def cand(model: str, quality: float, low: float, high: float, cost: str,
         paired: PairedDelta | None = None) -> Candidate:
    return Candidate(model, quality, low, high, False, Decimal(cost), 100, 50_000, 1,
                     paired=paired)


def test_conservative_judges_by_the_reference_plus_the_paired_lower_bound() -> None:
    # Its own interval is wide (the source is uneven), but chunk by chunk it loses at most 0.3
    # against a reference at 8.6: 8.3 clears a bar its own lower bound (7.2) does not.
    cheap = cand("cheap", 8.4, 7.2, 9.4, "0.001", delta(-0.2, -0.3, -0.1, base=8.6))
    ref = cand("ref", 8.6, 7.5, 9.6, "0.010")
    assert conservative_bound(cheap, ref) == (8.3, "paired lower bound")
    assert conservative_bound(ref, ref) == (7.5, "lower bound")
    decision = conservative_choice({"cheap": cheap, "ref": ref}, ["cheap"], "ref", 8.0)
    assert (decision.action, decision.model) == ("use", "cheap")
    assert "cheap paired lower bound 8.30 >= 8" in decision.notes
    # Without the pairing, the same evidence falls back to the reference.
    unpaired = replace(cheap, paired=None)
    decision = conservative_choice({"cheap": unpaired, "ref": ref}, ["cheap"], "ref", 8.0)
    assert decision.action == "fallback_reference"


def test_a_pairing_against_another_model_is_not_used() -> None:
    cheap = cand("cheap", 8.4, 7.2, 9.4, "0.001", replace(delta(-0.2, -0.3, -0.1),
                                                          baseline_model="mid"))
    ref = cand("ref", 8.6, 7.5, 9.6, "0.010")
    assert conservative_bound(cheap, ref) == (7.2, "lower bound")


def test_the_sweet_spot_and_savings_state_the_paired_change() -> None:
    paired = delta(-0.26, -0.41, -0.08, base=8.6)
    cheap = cand("cheap", 8.34, 8.0, 8.6, "0.001", paired)
    ref = cand("ref", 8.6, 8.3, 8.9, "0.010")
    spot = sweet_spot([cheap, ref], 8.0, reference_model="ref")
    assert spot.model == "cheap"
    assert spot.reason.endswith(
        "; worse than ref: \u22123.0% (90% CI \u22124.8%..\u22120.9%) over 20 chunks")
    row = savings_row("interview", ref, cheap)
    assert row.paired == paired and row.quality_change_pct == -3.0
    assert row.quality_change_text == "\u22123.0% (90% CI \u22124.8%..\u22120.9%)"
    unpaired = savings_row("interview", ref, replace(cheap, paired=None))
    assert unpaired.quality_change_text == "\u22123.0% (not paired)"


def test_pooled_candidates_pool_their_pairings() -> None:
    a = cand("cheap", 8.0, 7.5, 8.5, "0.001", delta(-0.4, -0.6, -0.2, se=0.12, base=8.5))
    b = cand("cheap", 9.0, 8.5, 9.5, "0.001", delta(-0.2, -0.5, 0.1, se=0.16, base=9.5))
    pooled = pool_candidates("cheap", [a, b])
    assert pooled.paired == pooled_delta([a.paired, b.paired])  # type: ignore[list-item]
    assert pooled.quality == 8.5
    assert format_score(pooled.quality) == "8.50"
