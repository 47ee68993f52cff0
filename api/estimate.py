"""`mmos estimate SOURCE_CODE... --models m1,m2 [--strategy s] [--mode batch]`: the forecast of
estimateProcessing, printed as a table."""

from __future__ import annotations

import sys
from decimal import Decimal

from api.settings import Settings
from domain.services.forecast import Estimate


def _usd(value: Decimal | None) -> str:
    return "unpriced" if value is None else f"${value:.4f}"


def _covers(value: bool | None) -> str:
    return "no budget" if value is None else ("yes" if value else "NO")


def format_estimate(estimate: Estimate) -> str:
    """The forecast as a table, one line per model, then the totals."""
    head = ("model", "chunks", "input tok", "out exp", "out worst", "cost exp", "cost worst",
            "time exp", "budget ok")
    rows = [head]
    for item in estimate.models:
        f = item.forecast
        rows.append((f.model, str(f.chunks), str(f.input_tokens),
                     str(f.expected_output_tokens), str(f.worst_output_tokens),
                     _usd(f.expected_cost_usd), _usd(f.worst_cost_usd),
                     f"{f.expected_seconds:.1f}s", _covers(item.budget_covers_worst)))
    rows.append(("total", "", "", "", "", _usd(estimate.expected_cost_usd),
                 _usd(estimate.worst_cost_usd), f"{estimate.expected_seconds:.1f}s",
                 _covers(estimate.budget_covers_worst)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    workers = (f"{estimate.workers} worker(s)" if not estimate.workers_assumed
               else "no live worker seen: 1 assumed")
    notes = [f"mode {estimate.mode}; {workers}"]
    if estimate.strategy:
        notes.append(f"strategy {estimate.strategy}: {estimate.strategy_rule}")
    if estimate.budget_remaining_usd is not None:
        notes.append(f"today's budget remaining: {_usd(estimate.budget_remaining_usd)}")
    bases = sorted({m.forecast.output_ratio_basis for m in estimate.models})
    notes.append(f"expected output from: {'; '.join(bases)}")
    return "\n".join([*lines, "", *notes])


async def run_estimate(settings: Settings, url: str, codes: list[str], models: str,
                       strategy: str | None, mode: str) -> int:
    from api.container import cli_container
    from domain.errors import DomainError
    from domain.services import forecast, sources

    container = await cli_container(settings, url)
    try:
        try:
            ids = [(await sources.source_by_code(container.ports, code)).id for code in codes]
            found = await forecast.estimate_processing(
                container.ports, source_ids=ids,
                model_names=[m for m in models.split(",") if m.strip()],
                strategy=strategy, mode=mode, path=())
        except DomainError as exc:
            issues = getattr(exc, "issues", None) or []
            print(f"mmos estimate: {exc.message}", file=sys.stderr)
            for issue in issues:
                print(f"  {'.'.join(issue.path)}: {issue.message}", file=sys.stderr)
            return 2
        print(format_estimate(found))
    finally:
        await container.close()
    return 0
