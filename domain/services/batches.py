"""Creating batches: the checks every new batch passes (models known, enabled, priced under a
budget; at a start, callable by the live workers and fitting their context windows; no model
already busy on a source) and its frozen config snapshot. Shared by plain
processing and by strategy steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from domain.batching import BATCH_PROVIDERS, batch_provider, provider_of
from domain.errors import Conflict, FieldIssue, InvalidInput
from domain.ports import Settings, UnitOfWork
from domain.preflight import ALIVE_SECONDS, context_problem, key_problem, prompt_tokens
from domain.prompt import PROMPT_VERSION, SUBJECT_PROMPT_VERSION, prompt_hash

MODES = ("interactive", "batch")


async def checked_models(uow: UnitOfWork, model_names: list[str], budget_usd: Decimal | None,
                         path: tuple[str, ...],
                         positions: Mapping[str, int] | None = None, *,
                         settings: Settings | None = None) -> dict[str, Any]:
    """Catalog rows of the named models; unknown, disabled, or unpriced under a budget refused.
    With `settings` (a start), the pre-flight too (domain/preflight.py): a model whose key the
    live workers lack, or whose context window cannot hold one call, is refused. A refusal
    names the model's index in the request (`positions`, when the request's list had
    duplicates removed), else its index in `model_names`; every model's refusals come at once."""
    issues: list[FieldIssue] = []
    at = {name: str(index) for index, name in reversed(list(enumerate(model_names)))}
    at.update({name: str(index) for name, index in (positions or {}).items()})
    catalog = await uow.catalog.get_many(model_names)
    for name in model_names:
        row = catalog.get(name)
        if row is None:
            issues.append(FieldIssue((*path, "models", at[name]),
                                     f"unknown model {name[:100]!r}; see the models query"))
        elif not row.enabled:
            issues.append(FieldIssue((*path, "models", at[name]),
                                     f"model {name!r} is disabled"))
    if issues:
        raise InvalidInput(issues)
    daily = await uow.budget.daily_limit()
    budgeted = daily is not None or budget_usd is not None
    workers = (await uow.workers.reach(ALIVE_SECONDS)) if settings is not None else []
    prompt = prompt_tokens() if settings is not None else 0
    for name in model_names:
        row = catalog[name]
        problems: list[str | None] = []
        if budgeted and not uow.catalog.spec_of(row).is_priced:
            problems.append(f"model {name!r} has no known price and a budget is in force; "
                            "set its prices with updateModel first")
        if settings is not None:
            problems.append(key_problem(row, workers))
            problems.append(context_problem(
                row, min(row.max_output_tokens, settings.max_output_tokens), prompt))
        issues.extend(FieldIssue((*path, "models", at[name]), problem)
                      for problem in problems if problem)
    if issues:
        raise InvalidInput(issues)
    return catalog


async def refuse_busy(uow: UnitOfWork, source_ids: Sequence[int], model_names: Sequence[str],
                      path: tuple[str, ...]) -> None:
    """Conflict when one of the models is already processing one of the sources."""
    busy = await uow.processing.busy_pair(source_ids, model_names)
    if busy is not None:
        raise Conflict(f"source {busy[0]} is already being processed by {busy[1]}; wait for "
                       "that batch or cancel it", (*path, "models"))


def batch_config(settings: Settings, model: Any, strategy: str | None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The frozen config snapshot of a new batch (prompt version and hash, limits)."""
    return {"promptVersion": PROMPT_VERSION, "promptHash": prompt_hash(), "temperature": 0.0,
            "maxOutputTokens": min(model.max_output_tokens, settings.max_output_tokens),
            "chunkMaxTokens": settings.chunk_max_tokens,
            "chunkOverlapTokens": settings.chunk_overlap_tokens,
            "strategy": strategy, "litellmModel": model.litellm_model, **(extra or {})}


async def create_batch(uow: UnitOfWork, settings: Settings, *, group_id: str, model: Any,
                       sources: list[Any], strategy: str | None, budget_usd: Decimal | None,
                       extra_config: dict[str, Any] | None = None,
                       decisions: list[Any] | None = None, mode: str = "interactive") -> Any:
    """One batch of one model over the sources, with its frozen config snapshot."""
    extra = {**(extra_config or {}), "mode": mode}
    if any(getattr(source, "subject_name", None) for source in sources):
        # Some of its sources name a subject: their prompts carry the subject framing.
        extra.update(subjectPromptVersion=SUBJECT_PROMPT_VERSION,
                     subjectPromptHash=prompt_hash(subject_framing=True))
    config = batch_config(settings, model, strategy, extra)
    return await uow.processing.create_batch(
        group_id=group_id, model=model, sources=sources, strategy=strategy, config=config,
        budget_usd=budget_usd, max_attempts=settings.job_max_attempts, decisions=decisions,
        mode=mode)


def checked_mode(mode: str | None, catalog: Mapping[str, Any], model_names: Sequence[str],
                 path: tuple[str, ...], positions: Mapping[str, int] | None = None) -> str:
    """The processing mode of a request: INTERACTIVE (a call per chunk) or BATCH (the
    provider's batch API, about half price, results within a day). BATCH is refused, naming
    each model, for providers without a batch API MMOS can drive."""
    value = (mode or "interactive").strip().lower()
    if value not in MODES:
        raise InvalidInput.single((*path, "mode"), "must be INTERACTIVE or BATCH")
    if value == "batch":
        at = {name: str(index) for index, name in reversed(list(enumerate(model_names)))}
        at.update({name: str(index) for name, index in (positions or {}).items()})
        issues = []
        for name in model_names:
            row = catalog[name]
            if getattr(row, "is_local", False) or batch_provider(row.litellm_model) is None:
                provider = provider_of(row.litellm_model) or "unknown"
                issues.append(FieldIssue(
                    (*path, "models", at[name]),
                    f"model {name!r} ({provider}) has no batch API MMOS can use (supported: "
                    f"{', '.join(sorted(BATCH_PROVIDERS))}); use mode INTERACTIVE"))
        if issues:
            raise InvalidInput(issues)
    return value
