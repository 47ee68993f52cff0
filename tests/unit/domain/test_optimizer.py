"""Choosing models from measurements: hand-computed cases for domain.optimizer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.optimizer import (
    DEFAULT_THRESHOLDS,
    Candidate,
    aggressive_choice,
    conservative_choice,
    pareto_frontier,
    progressive_next,
    savings_row,
    sweet_spot,
    threshold_for,
)


def cand(
    model: str,
    quality: float,
    cost_per_fragment: str,
    *,
    low: float | None = None,
    high: float | None = None,
    grounded: int = 100,
    chars: int = 50_000,
    samples: int = 5,
    provisional: bool = False,
) -> Candidate:
    """A candidate whose total cost gives exactly `cost_per_fragment` over `grounded` fragments."""
    return Candidate(
        model=model,
        quality=quality,
        quality_low=quality if low is None else low,
        quality_high=quality if high is None else high,
        provisional=provisional,
        cost_usd=Decimal(cost_per_fragment) * grounded,
        grounded_fragments=grounded,
        source_chars=chars,
        samples=samples,
    )


def barren(model: str, quality: float) -> Candidate:
    """A model that spent money and grounded nothing."""
    return Candidate(model, quality, quality, quality, False, Decimal("0.50"), 0, 50_000, 5)


# --- candidate ----------------------------------------------------------------------------------


def test_cost_per_fragment_counts_only_grounded_fragments() -> None:
    c = Candidate("m", 7.0, 6.0, 8.0, False, Decimal("0.12"), 40, 60_000, 3)
    assert c.cost_per_fragment == Decimal("0.003")  # 0.12 / 40
    assert c.cost_per_1k_chars == Decimal("0.002")  # 0.12 * 1000 / 60000


def test_a_model_with_no_grounded_fragment_has_no_cost_per_fragment() -> None:
    assert barren("m", 5.0).cost_per_fragment is None


def test_no_source_characters_means_no_cost_per_1k_chars() -> None:
    assert Candidate("m", 7, 7, 7, False, Decimal("1"), 1, 0, 1).cost_per_1k_chars is None


def test_money_as_float_is_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        Candidate("m", 7.0, 7.0, 7.0, False, 0.1, 1, 1, 1)  # type: ignore[arg-type]


def test_a_point_estimate_outside_its_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="quality"):
        Candidate("m", 7.0, 7.5, 8.0, False, Decimal("1"), 1, 1, 1)


# --- thresholds ---------------------------------------------------------------------------------


def test_default_thresholds_per_source_type() -> None:
    assert threshold_for("interview") == 8.5
    assert threshold_for("podcast") == 7.5
    assert threshold_for("article") == 7.0
    assert threshold_for("social_media") == 6.0
    assert threshold_for("video") == 7.0  # others
    assert DEFAULT_THRESHOLDS["others"] == 7.0


def test_overrides_win_over_defaults() -> None:
    assert threshold_for("interview", {"interview": 9.0}) == 9.0


def test_an_others_override_applies_only_to_unlisted_types() -> None:
    overrides = {"others": 6.5}
    assert threshold_for("video", overrides) == 6.5
    assert threshold_for("podcast", overrides) == 7.5


def test_a_threshold_outside_zero_to_ten_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        threshold_for("interview", {"interview": 11.0})


# --- pareto -------------------------------------------------------------------------------------


def test_pareto_frontier_keeps_only_undominated_models_cheapest_first() -> None:
    a = cand("a", 6.0, "0.001")
    b = cand("b", 8.0, "0.002")
    c = cand("c", 7.0, "0.003")  # dearer and worse than b
    d = cand("d", 5.0, "0.001")  # as cheap as a and worse
    e = barren("e", 9.0)  # no yield, no cost per fragment
    assert pareto_frontier([c, e, b, d, a]) == [a, b]


def test_identical_models_are_both_on_the_frontier() -> None:
    a, b = cand("a", 7.0, "0.001"), cand("b", 7.0, "0.001")
    assert pareto_frontier([b, a]) == [a, b]


# --- sweet spot ---------------------------------------------------------------------------------

CHEAP = cand("cheap", 7.2, "0.001", low=6.8, high=7.6)
MID = cand("mid", 8.1, "0.002", low=7.7, high=8.4)
TOP = cand("top", 9.0, "0.010", low=8.8, high=9.2)
ALL = [TOP, CHEAP, MID]


@pytest.mark.parametrize(
    ("threshold", "expected", "savings"),
    [
        (7.0, "cheap", Decimal("90.00")),  # (0.010 - 0.001) / 0.010
        (8.0, "mid", Decimal("80.00")),  # (0.010 - 0.002) / 0.010
        (8.5, "top", Decimal("0.00")),  # the reference itself
    ],
)
def test_sweet_spot_moves_with_the_threshold(
    threshold: float, expected: str, savings: Decimal
) -> None:
    spot = sweet_spot(ALL, threshold, reference_model="top", source_type="interview")
    assert (spot.model, spot.qualified, spot.savings_vs_reference) == (expected, True, savings)
    assert spot.candidate is not None and spot.candidate.model == expected
    assert f"{expected} is the cheapest model reaching quality" in spot.reason


def test_an_impossible_threshold_names_the_best_available() -> None:
    spot = sweet_spot(ALL, 9.5, source_type="interview")
    assert (spot.model, spot.qualified, spot.savings_vs_reference) == ("top", False, None)
    assert spot.reason == "no model reaches quality 9.5 for interview sources; best is top at 9.00"


def test_a_score_is_judged_as_shown_so_the_text_never_contradicts_the_choice() -> None:
    # 8.4999 shows as 8.50 (scores are rounded once): it reaches 8.5 as printed.
    spot = sweet_spot([cand("m", 8.4999, "0.001")], 8.5)
    assert spot.qualified
    assert "reaching quality 8.5: 8.50 " in spot.reason
    # 8.494 shows as 8.49 and misses.
    spot = sweet_spot([cand("m", 8.494, "0.001")], 8.5)
    assert spot.reason == "no model reaches quality 8.5; best is m at 8.49"


def test_the_cost_limit_excludes_models_that_reach_the_bar() -> None:
    spot = sweet_spot(ALL, 8.0, budget_per_fragment=Decimal("0.0015"), source_type="article")
    assert (spot.model, spot.qualified) == ("top", False)
    assert spot.reason == (
        "every model reaching quality 8 for article sources costs more than $0.0015 per "
        "grounded fragment (cheapest is mid at $0.002); best is top at 9.00"
    )


def test_the_cost_limit_is_inclusive() -> None:
    spot = sweet_spot(ALL, 8.0, budget_per_fragment=Decimal("0.002"))
    assert (spot.model, spot.qualified) == ("mid", True)


def test_equal_cost_prefers_higher_quality_then_name() -> None:
    better = cand("zeta", 8.0, "0.001")
    worse = cand("alpha", 7.5, "0.001")
    twin = cand("beta", 8.0, "0.001")
    assert sweet_spot([worse, better], 7.0).model == "zeta"
    assert sweet_spot([better, twin], 7.0).model == "beta"


def test_a_model_without_grounded_fragments_never_qualifies() -> None:
    spot = sweet_spot([barren("ghost", 9.9), CHEAP], 8.0)
    assert (spot.model, spot.qualified) == ("cheap", False)
    assert spot.reason == (
        "no model with grounded fragments reaches quality 8; best is cheap at 7.20; "
        "ghost produced no grounded fragments and cannot qualify"
    )


def test_when_nothing_is_grounded_there_is_no_model_to_name() -> None:
    spot = sweet_spot([barren("a", 5.0), barren("b", 6.0)], 5.0, source_type="podcast")
    assert (spot.model, spot.qualified, spot.candidate) == (None, False, None)
    assert "no model produced grounded fragments for podcast sources (a, b)" in spot.reason


def test_no_candidates_gives_no_model_and_a_reason() -> None:
    spot = sweet_spot([], 7.0, source_type="book")
    assert (spot.model, spot.qualified, spot.frontier) == (None, False, ())
    assert spot.reason == "no model has been measured for book sources"


def test_a_provisional_choice_says_so() -> None:
    spot = sweet_spot([cand("m", 8.0, "0.001", provisional=True)], 7.0)
    assert "provisional" in spot.reason


def test_sweet_spot_reports_the_frontier() -> None:
    assert sweet_spot(ALL, 7.0).frontier == (CHEAP, MID, TOP)


def test_savings_need_the_reference_among_the_candidates() -> None:
    assert sweet_spot(ALL, 7.0, reference_model="absent").savings_vs_reference is None


def test_a_model_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        sweet_spot([CHEAP, CHEAP], 7.0)


# --- progressive ----------------------------------------------------------------------------------

ORDER = ["a", "b", "c"]


def test_progressive_tests_the_cheapest_model_first() -> None:
    decision = progressive_next(ORDER, {}, 7.0)
    assert (decision.action, decision.model, decision.models_to_test) == ("test", None, ("a",))


def test_progressive_moves_on_when_the_cheapest_falls_short() -> None:
    decision = progressive_next(ORDER, {"a": cand("a", 6.0, "0.001")}, 7.0)
    assert (decision.action, decision.models_to_test) == ("test", ("b",))
    assert decision.notes[0] == "a scores 6.00 < 7"


def test_progressive_uses_the_first_model_whose_point_estimate_meets_the_bar() -> None:
    measured = {
        "a": cand("a", 6.0, "0.001"),
        "b": cand("b", 7.5, "0.002", low=6.5),  # the low bound does not matter here
    }
    decision = progressive_next(ORDER, measured, 7.0)
    assert (decision.action, decision.model) == ("use", "b")
    assert "b scores 7.50 >= 7" in decision.notes


def test_progressive_measures_a_cheaper_model_before_using_a_dearer_one() -> None:
    decision = progressive_next(ORDER, {"b": cand("b", 9.0, "0.002")}, 7.0)
    assert (decision.action, decision.models_to_test) == ("test", ("a",))


def test_progressive_falls_back_to_the_best_when_none_qualifies() -> None:
    measured = {
        "a": cand("a", 6.0, "0.001"),
        "b": cand("b", 6.8, "0.002"),
        "c": cand("c", 6.5, "0.003"),
    }
    decision = progressive_next(ORDER, measured, 7.0)
    assert (decision.action, decision.model) == ("fallback_best", "b")
    assert decision.notes[-1] == "no candidate reaches 7; fall back to the best measured, b at 6.80"


def test_progressive_never_uses_a_model_without_grounded_fragments() -> None:
    decision = progressive_next(["a", "b"], {"a": barren("a", 9.0)}, 7.0)
    assert (decision.action, decision.models_to_test) == ("test", ("b",))
    assert decision.notes[0] == "a produced no grounded fragments"


def test_progressive_needs_candidates() -> None:
    with pytest.raises(ValueError, match="candidate"):
        progressive_next([], {}, 7.0)


# --- aggressive -----------------------------------------------------------------------------------

HISTORY = [
    cand("a", 6.5, "0.001", low=6.0, high=7.2),
    cand("b", 7.5, "0.002", low=7.0, high=8.0),
]


def test_aggressive_uses_the_cheapest_model_whose_upper_bound_met_the_bar() -> None:
    decision = aggressive_choice(HISTORY, 7.0)  # a: 7.2 >= 7 and cheaper than b
    assert (decision.action, decision.model, decision.models_to_test) == ("use", "a", ())


def test_aggressive_choice_follows_the_threshold() -> None:
    assert aggressive_choice(HISTORY, 7.5).model == "b"  # a's 7.2 no longer meets it


def test_aggressive_without_history_tests_the_candidates() -> None:
    decision = aggressive_choice([], 7.0, ["a", "b"])
    assert (decision.action, decision.model, decision.models_to_test) == ("test", None, ("a", "b"))
    assert decision.notes == ("no history for this source type: test a, b",)


def test_aggressive_tests_only_models_missing_from_history_when_none_met_the_bar() -> None:
    decision = aggressive_choice(HISTORY, 9.0, ["a", "b", "c"])
    assert (decision.action, decision.models_to_test) == ("test", ("c",))


def test_aggressive_falls_back_to_the_best_when_everything_is_known_and_short() -> None:
    decision = aggressive_choice(HISTORY, 9.0, ["a", "b"])
    assert (decision.action, decision.model) == ("fallback_best", "b")


def test_aggressive_needs_history_or_candidates() -> None:
    with pytest.raises(ValueError, match="history"):
        aggressive_choice([], 7.0)


def test_aggressive_refuses_two_history_entries_for_one_model() -> None:
    with pytest.raises(ValueError, match="twice"):
        aggressive_choice([HISTORY[0], HISTORY[0]], 7.0)


# --- conservative ---------------------------------------------------------------------------------

MEASURED = {
    "a": cand("a", 7.4, "0.001", low=6.8, high=7.9),  # point estimate passes 7, low bound fails
    "b": cand("b", 7.6, "0.002", low=7.1, high=8.0),
    "ref": cand("ref", 8.6, "0.010", low=8.0, high=9.0),
}


def test_conservative_measures_every_candidate_and_the_reference_first() -> None:
    decision = conservative_choice({"a": MEASURED["a"]}, ["a", "b"], "ref", 7.0)
    assert (decision.action, decision.model, decision.models_to_test) == (
        "test",
        None,
        ("b", "ref"),
    )


def test_conservative_uses_the_cheapest_whose_lower_bound_meets_the_bar() -> None:
    decision = conservative_choice(MEASURED, ["a", "b"], "ref", 7.0)
    assert (decision.action, decision.model) == ("use", "b")
    assert "a lower bound 6.80 < 7" in decision.notes


def test_conservative_may_choose_the_reference_itself() -> None:
    decision = conservative_choice(MEASURED, ["a", "b"], "ref", 8.0)
    assert (decision.action, decision.model) == ("use", "ref")


def test_conservative_falls_back_to_the_reference_when_no_lower_bound_is_enough() -> None:
    decision = conservative_choice(MEASURED, ["a", "b"], "ref", 8.5)
    assert (decision.action, decision.model) == ("fallback_reference", "ref")
    assert decision.notes[-1] == "no lower bound reaches 8.5; use the reference model"


# --- savings ------------------------------------------------------------------------------------


def test_savings_row_compares_measured_quality_and_cost() -> None:
    # reference: $1.00 for 100 grounded over 50,000 chars -> $0.01/fragment, $0.02/1k chars
    reference = Candidate("ref", 9.0, 8.7, 9.3, False, Decimal("1.00"), 100, 50_000, 12)
    # optimized: $0.10 for 50 grounded over 50,000 chars -> $0.002/fragment, $0.002/1k chars
    optimized = Candidate("opt", 8.1, 7.8, 8.4, False, Decimal("0.10"), 50, 50_000, 10)
    row = savings_row("interview", reference, optimized)
    assert (row.original_model, row.optimized_model) == ("ref", "opt")
    assert row.quality_change_pct == pytest.approx(-10.0)  # (8.1 - 9.0) / 9.0
    assert row.cost_saving_pct == Decimal("80.00")  # (0.01 - 0.002) / 0.01
    assert row.spend_saving_pct == Decimal("90.00")  # (0.02 - 0.002) / 0.02
    assert row.samples == 10  # the weaker side
    assert (row.interval, row.reference_interval) == ((7.8, 8.4), (8.7, 9.3))


def test_savings_are_undefined_against_a_reference_without_yield_or_quality() -> None:
    reference = Candidate("ref", 0.0, 0.0, 0.0, False, Decimal("1.00"), 0, 0, 3)
    row = savings_row("article", reference, cand("opt", 7.0, "0.001"))
    assert (row.quality_change_pct, row.cost_saving_pct, row.spend_saving_pct) == (None, None, None)


def test_a_dearer_optimized_model_shows_a_negative_saving() -> None:
    row = savings_row("article", cand("ref", 8.0, "0.001"), cand("opt", 8.0, "0.0015"))
    assert row.cost_saving_pct == Decimal("-50.00")
    assert row.quality_change_pct == 0.0
