"""Strategy plans: which models run on which sources, one step at a time (docs/ARCHITECTURE.md,
"Optimization").

A plan covers the sources of one source type in one `processBatch` request. Each step either
tests models on a small sample of those sources or, finally, processes the remaining sources
with the chosen model. The choice itself is `domain.optimizer`'s (progressive_next,
aggressive_choice, conservative_choice); this module turns it into runnable steps and keeps the
reasons, so that every decision can be recorded on the batches it creates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from domain.optimizer import (
    Candidate,
    Decision,
    aggressive_choice,
    conservative_choice,
    progressive_next,
)

StrategyName = Literal["progressive", "aggressive", "conservative"]
STRATEGIES: tuple[StrategyName, ...] = ("progressive", "aggressive", "conservative")
StepAction = Literal["test", "use", "fallback_best", "fallback_reference", "stop"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one strategy works with for one source type, frozen when the request arrives.

    Parameters:
      strategy: progressive, aggressive or conservative.
      source_type: the type whose threshold applies.
      source_ids: every source of that type in the request, in request order.
      sample_ids: the first few of them, where models are tested.
      candidates: the requested models, cheapest first.
      reference_model: the model conservative falls back to (and measures).
      threshold: the quality bar in force when the request arrived.
      mode: interactive or batch (the provider's batch API), for every step's batches.
    """

    strategy: StrategyName
    source_type: str
    source_ids: tuple[int, ...]
    sample_ids: tuple[int, ...]
    candidates: tuple[str, ...]
    reference_model: str
    threshold: float
    mode: str = "interactive"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}")
        if not self.candidates:
            raise ValueError("a plan needs at least one candidate model")
        if not self.sample_ids or not set(self.sample_ids) <= set(self.source_ids):
            raise ValueError("the sample must be a non-empty subset of the plan's sources")
        if not 0.0 <= self.threshold <= 10.0:
            raise ValueError(f"quality threshold {self.threshold} is outside 0-10")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, stored in the config of every batch the plan creates."""
        return {
            "strategy": self.strategy,
            "sourceType": self.source_type,
            "sourceIds": list(self.source_ids),
            "sampleIds": list(self.sample_ids),
            "candidates": list(self.candidates),
            "referenceModel": self.reference_model,
            "threshold": self.threshold,
            "mode": self.mode,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """The plan stored by `to_json`."""
        return cls(
            strategy=data["strategy"],
            source_type=str(data["sourceType"]),
            source_ids=tuple(int(i) for i in data["sourceIds"]),
            sample_ids=tuple(int(i) for i in data["sampleIds"]),
            candidates=tuple(str(m) for m in data["candidates"]),
            reference_model=str(data["referenceModel"]),
            threshold=float(data["threshold"]),
            mode=str(data.get("mode", "interactive")),
        )


def make_plan(
    strategy: StrategyName,
    source_type: str,
    source_ids: Sequence[int],
    candidates_by_cost: Sequence[str],
    reference_model: str | None,
    threshold: float,
    sample_size: int,
    mode: str = "interactive",
) -> Plan:
    """A plan whose sample is the first `sample_size` sources; the reference defaults to the
    dearest candidate (the last one)."""
    if sample_size < 1:
        raise ValueError("the sample needs at least one source")
    ids = tuple(dict.fromkeys(source_ids))
    return Plan(
        strategy=strategy,
        source_type=source_type,
        source_ids=ids,
        sample_ids=ids[:sample_size],
        candidates=tuple(dict.fromkeys(candidates_by_cost)),
        reference_model=reference_model or candidates_by_cost[-1],
        threshold=threshold,
        mode=mode,
    )


@dataclass(frozen=True, slots=True)
class Step:
    """What to run next: each of `models` over `source_ids`; a final step ends the plan."""

    action: StepAction
    models: tuple[str, ...]
    source_ids: tuple[int, ...]
    final: bool
    chosen: str | None
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The decision as recorded on batches."""
        return {
            "action": self.action,
            "models": list(self.models),
            "sourceIds": list(self.source_ids),
            "final": self.final,
            "chosen": self.chosen,
            "notes": list(self.notes),
        }


def first_step(plan: Plan, history: Sequence[Candidate]) -> Step:
    """The opening move: test on the sample, or (aggressive with history) use a model at once.

    `history` holds one pooled candidate per requested model for the plan's source type.
    """
    if plan.strategy == "progressive":
        decision = progressive_next(plan.candidates, {}, plan.threshold)
    elif plan.strategy == "aggressive":
        decision = aggressive_choice(_known(history, plan), plan.threshold, plan.candidates)
    else:
        decision = conservative_choice({}, plan.candidates, plan.reference_model, plan.threshold)
    return _step(plan, decision, done={})


def next_step(
    plan: Plan,
    measured: Mapping[str, Candidate],
    history: Sequence[Candidate],
    done: Mapping[str, frozenset[int]],
) -> Step:
    """The move after the sample runs of the previous step ended.

    `measured` holds, per model tested in this plan, its pooled result on the sample (a run
    that failed counts as a zero sample); `done` the sources each model already completed in
    this plan, which the final step does not process again.
    """
    if plan.strategy == "progressive":
        decision = progressive_next(plan.candidates, measured, plan.threshold)
    elif plan.strategy == "aggressive":
        pool = {c.model: c for c in _known(history, plan)}
        for model, candidate in measured.items():
            pool.setdefault(model, candidate)
        if not pool:
            note = "nothing was measured on the sample and there is no history; stop here"
            return Step("stop", (), (), True, None, (note,))
        # Everything requested was tested at the opening move: no second round of tests.
        decision = aggressive_choice(list(pool.values()), plan.threshold, ())
    else:
        decision = conservative_choice(
            measured, plan.candidates, plan.reference_model, plan.threshold
        )
    if decision.action == "test" and set(decision.models_to_test) & set(measured):
        note = "a model to test was already tested in this plan without a result; stop here"
        return Step("stop", (), (), True, None, (*decision.notes, note))
    return _step(plan, decision, done)


def _known(history: Sequence[Candidate], plan: Plan) -> list[Candidate]:
    return [c for c in history if c.model in plan.candidates]


def _step(plan: Plan, decision: Decision, done: Mapping[str, frozenset[int]]) -> Step:
    notes = list(decision.notes)
    if decision.action == "test":
        notes.append(
            f"test {', '.join(decision.models_to_test)} on a sample of {len(plan.sample_ids)} "
            f"{plan.source_type} source(s)"
        )
        return Step("test", decision.models_to_test, plan.sample_ids, False, None, tuple(notes))
    chosen = decision.model
    assert chosen is not None  # every non-test decision names a model
    already = done.get(chosen, frozenset())
    rest = tuple(i for i in plan.source_ids if i not in already)
    if rest:
        notes.append(f"process {len(rest)} {plan.source_type} source(s) with {chosen}")
        return Step(decision.action, (chosen,), rest, True, chosen, tuple(notes))
    notes.append(f"every {plan.source_type} source already has a run of {chosen}")
    return Step(decision.action, (), (), True, chosen, tuple(notes))
