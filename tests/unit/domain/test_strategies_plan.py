"""Strategy plans step by step: every decision path of progressive, aggressive, conservative."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.optimizer import Candidate, failed_sample
from domain.strategy import Plan, first_step, make_plan, next_step

SOURCES = (11, 12, 13, 14, 15)
CHEAP_TO_DEAR = ("tiny", "small", "medium", "large")


def cand(model: str, quality: float, *, low: float | None = None, high: float | None = None,
         cpf: str = "0.01", grounded: int = 100) -> Candidate:
    return Candidate(model, quality, quality if low is None else low,
                     quality if high is None else high, False, Decimal(cpf) * grounded,
                     grounded, 10_000, 2)


def plan(strategy: str, threshold: float = 8.0, reference: str | None = None,
         candidates: tuple[str, ...] = CHEAP_TO_DEAR) -> Plan:
    return make_plan(strategy, "interview", SOURCES, candidates, reference,  # type: ignore[arg-type]
                     threshold, sample_size=2)


# --- the plan -----------------------------------------------------------------------------------


def test_the_sample_is_the_first_sources_and_the_reference_defaults_to_the_dearest() -> None:
    p = plan("progressive")
    assert p.sample_ids == (11, 12)
    assert p.reference_model == "large"
    assert plan("conservative", reference="gold").reference_model == "gold"


def test_a_plan_survives_its_json_form() -> None:
    p = plan("aggressive", threshold=7.25)
    assert Plan.from_json(p.to_json()) == p


def test_a_plan_refuses_a_threshold_outside_zero_to_ten() -> None:
    with pytest.raises(ValueError, match="outside 0-10"):
        plan("progressive", threshold=10.5)


def test_a_plan_refuses_an_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        plan("reckless")


# --- progressive ------------------------------------------------------------------------------


def test_progressive_opens_by_testing_the_cheapest_model_on_the_sample() -> None:
    step = first_step(plan("progressive"), history=[cand("large", 9.9)])
    assert (step.action, step.models, step.source_ids, step.final) == \
        ("test", ("tiny",), (11, 12), False)


def test_progressive_escalates_to_the_next_model_when_the_cheapest_falls_short() -> None:
    step = next_step(plan("progressive"), {"tiny": cand("tiny", 6.0)}, [], {})
    assert (step.action, step.models, step.source_ids) == ("test", ("small",), (11, 12))
    assert "tiny scores 6.00 < 8" in step.notes


def test_progressive_stops_at_the_first_model_whose_score_meets_the_bar() -> None:
    measured = {"tiny": cand("tiny", 6.0), "small": cand("small", 8.0, low=5.0)}
    step = next_step(plan("progressive"), measured, [], {"small": frozenset({11, 12})})
    # The point estimate decides, not the lower bound; the sample is not processed again.
    assert (step.action, step.chosen, step.models, step.source_ids, step.final) == \
        ("use", "small", ("small",), (13, 14, 15), True)
    assert "medium" not in " ".join(step.notes)


def test_progressive_falls_back_to_the_best_measured_when_none_qualifies() -> None:
    measured = {m: cand(m, q) for m, q in zip(CHEAP_TO_DEAR, (5.0, 7.5, 6.0, 7.9), strict=True)}
    step = next_step(plan("progressive"), measured, [], {"large": frozenset({11, 12})})
    assert (step.action, step.chosen, step.source_ids) == \
        ("fallback_best", "large", (13, 14, 15))


def test_a_failed_sample_never_qualifies_and_progressive_moves_on() -> None:
    measured = {"tiny": failed_sample("tiny", Decimal("0.02"), 5_000)}
    step = next_step(plan("progressive", threshold=0.0), measured, [], {})
    assert (step.action, step.models) == ("test", ("small",))
    assert "tiny produced no grounded fragments" in step.notes


# --- aggressive ---------------------------------------------------------------------------------


def test_aggressive_reuses_history_and_processes_everything_without_testing() -> None:
    history = [cand("tiny", 7.0, high=8.2, cpf="0.001"), cand("medium", 9.0, cpf="0.01")]
    step = first_step(plan("aggressive"), history)
    assert (step.action, step.chosen, step.source_ids, step.final) == \
        ("use", "tiny", SOURCES, True)
    assert any("without testing" in note for note in step.notes)


def test_aggressive_ignores_history_of_models_not_requested() -> None:
    history = [cand("outsider", 9.5, cpf="0.0001")]
    step = first_step(plan("aggressive"), history)
    assert (step.action, step.models, step.source_ids) == ("test", CHEAP_TO_DEAR, (11, 12))


def test_aggressive_without_history_tests_every_candidate_on_the_sample() -> None:
    step = first_step(plan("aggressive"), [])
    assert (step.action, step.models, step.source_ids, step.final) == \
        ("test", CHEAP_TO_DEAR, (11, 12), False)
    assert "no history for this source type" in step.notes[0]


def test_aggressive_after_testing_uses_the_cheapest_upper_bound_that_met_the_bar() -> None:
    measured = {"tiny": cand("tiny", 6.0, high=7.0, cpf="0.001"),
                "small": cand("small", 7.5, high=8.1, cpf="0.002"),
                "medium": cand("medium", 9.0, cpf="0.005"),
                "large": cand("large", 9.1, cpf="0.05")}
    done = {m: frozenset({11, 12}) for m in measured}
    step = next_step(plan("aggressive"), measured, [], done)
    assert (step.action, step.chosen, step.source_ids) == ("use", "small", (13, 14, 15))


def test_aggressive_after_testing_falls_back_to_the_best_without_a_second_round() -> None:
    measured = {m: cand(m, 5.0 + i) for i, m in enumerate(CHEAP_TO_DEAR)}
    step = next_step(plan("aggressive", threshold=9.5), measured, [], {})
    assert (step.action, step.chosen, step.source_ids) == ("fallback_best", "large", SOURCES)


def test_aggressive_stops_when_nothing_was_measured_and_there_is_no_history() -> None:
    step = next_step(plan("aggressive"), {}, [], {})
    assert (step.action, step.models, step.final) == ("stop", (), True)


# --- conservative -------------------------------------------------------------------------------


def test_conservative_opens_by_testing_every_candidate_and_the_reference() -> None:
    step = first_step(plan("conservative", reference="gold"), [])
    assert (step.action, step.models, step.source_ids) == \
        ("test", (*CHEAP_TO_DEAR, "gold"), (11, 12))


def test_conservative_judges_by_the_lower_bound_not_the_point_estimate() -> None:
    measured = {"tiny": cand("tiny", 8.5, low=7.9, cpf="0.001"),
                "small": cand("small", 8.3, low=8.0, cpf="0.002"),
                "medium": cand("medium", 9.0, cpf="0.005"),
                "large": cand("large", 9.2, cpf="0.05")}
    step = next_step(plan("conservative"), measured, [], {})
    # tiny's point estimate meets 8.0 (progressive would take it), its lower bound does not.
    assert (step.action, step.chosen) == ("use", "small")
    assert "tiny lower bound 7.90 < 8" in step.notes


def test_conservative_falls_back_to_the_reference_when_no_lower_bound_is_enough() -> None:
    measured = {m: cand(m, 8.5, low=7.0) for m in CHEAP_TO_DEAR}
    step = next_step(plan("conservative"), measured, [], {"large": frozenset({11, 12})})
    assert (step.action, step.chosen, step.source_ids) == \
        ("fallback_reference", "large", (13, 14, 15))


def test_a_final_step_with_nothing_left_to_process_creates_nothing() -> None:
    measured = {"tiny": cand("tiny", 9.0)}
    every = {"tiny": frozenset(SOURCES)}
    step = next_step(plan("progressive"), measured, [], every)
    assert (step.action, step.chosen, step.models, step.final) == ("use", "tiny", (), True)
    assert "already has a run of tiny" in step.notes[-1]


def test_a_provisional_measurement_is_flagged_in_the_decision_notes() -> None:
    provisional = Candidate("tiny", 9.0, 9.0, 9.0, True, Decimal("0.1"), 10, 1_000, 1)
    step = next_step(plan("progressive"), {"tiny": provisional}, [], {})
    assert ("tiny scores 9.00 >= 8 (provisional: measured without an independent reference)"
            in step.notes)
