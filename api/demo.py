"""`mmos demo`: load the sample interviews, compare the offline models, print a summary."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.container import Container, resolve_database_url, start_api
from api.settings import Settings

DEMO_MODELS = ["rules-fast", "rules-thorough"]


async def _ensure_sources(runtime: Container) -> list[int]:
    from api.demo_data import load_samples, load_transcript
    from domain.services.sources import ensure_source

    ids = []
    for sample in [*load_samples(), load_transcript()]:
        row = await ensure_source(runtime.ports, {
            "source_code": sample["sourceCode"], "title": sample["title"],
            "source_type": sample["sourceType"], "content": sample["content"],
            "language": sample["language"], "author": sample["author"],
            "content_format": sample.get("contentFormat"), "subject": sample.get("subject")})
        ids.append(row.id or 0)
    return ids


async def _progress(runtime: Container, batch_ids: list[int]) -> list[Any]:
    from db.processing import batch_progress

    async with runtime.read() as session:
        return await batch_progress(session, batch_ids)


async def _summary(runtime: Container, batch_ids: list[int]) -> list[Any]:
    from db.processing import run_summaries

    async with runtime.read() as session:
        return await run_summaries(session, batch_ids)


async def _print_reports(runtime: Container, source_ids: list[int], console: Console) -> None:
    """The optimization report of each sample: measured quality, interval, cost, advice."""
    from domain.quality import format_score
    from domain.services.reports import optimization_report

    for source_id in source_ids:
        report = None
        for _ in range(50):  # quality is measured right after each run ends
            report = await optimization_report(runtime.ports, source_id)
            if len(report.comparison.entries) >= len(DEMO_MODELS) and not \
                    report.comparison.pending_runs:
                break
            await asyncio.sleep(0.2)
        assert report is not None
        reference = report.comparison.reference
        table = Table(title=f"Optimization report: {report.source.source_code} "
                            f"(reference: {reference.kind}"
                            f"{' ' + reference.model if reference.model else ''})")
        # The paired column only when a reference model was measured (two free models have
        # no "most expensive" one: their reference is the consensus).
        paired = any(e.vs_reference is not None for e in report.comparison.entries)
        columns = ("model", "quality", "90% interval", *(("vs reference",) if paired else ()),
                   "grounded", "MIU", "F1", "USD/fragment")
        for column in columns:
            table.add_column(column, justify="left" if column == "model" else "right")
        for entry in report.comparison.entries:
            versus = entry.vs_reference
            table.add_row(
                entry.model + (" (reference)" if entry.is_reference
                               else " (provisional)" if entry.provisional else ""),
                format_score(entry.quality_score),
                f"{format_score(entry.quality_low)}-{format_score(entry.quality_high)}",
                *(("-" if versus is None or entry.is_reference else versus.describe(),)
                  if paired else ()),
                f"{entry.grounded_rate:.0%}", f"{entry.miu_rate:.0%}",
                "-" if entry.f1 is None else f"{entry.f1:.2f}",
                "-" if entry.cost_per_fragment is None else f"{entry.cost_per_fragment:.6f}")
        console.print(table)
        console.print(report.recommendation)


def _clock(ms: int | None) -> str:
    if ms is None:
        return "?"
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"


async def _print_transcript(runtime: Container, source_id: int, batch_id: int,
                            console: Console) -> None:
    """A few of the transcript's subject-only fragments (of the last model's batch) with who
    said them and when."""
    from db.fragments import FragmentFilterSpec, list_fragments
    from db.keyset import PageRequest

    async with runtime.read() as session:
        page = await list_fragments(
            session, FragmentFilterSpec(source_id=source_id, batch_id=batch_id,
                                        subject_only=True),
            "POSITION", False, PageRequest(first=3, count=True))
    console.print(f"{DEMO_MODELS[-1]} found {page.total_count} fragments in the subject's own "
                  "words in the transcript (subjectOnly); the first ones, and where they are:")
    for row in page.rows:
        console.print(f"  {row.speaker}, {_clock(row.time_start_ms)}-{_clock(row.time_end_ms)}:"
                      f" {row.quote[:90]!r}")


def _share(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.0f}%)" if whole else "0"


async def run_demo(settings: Settings, console: Console) -> int:
    """Process both samples with the offline models and print what each model found."""
    from domain.services.processing import start_processing

    url = resolve_database_url(settings)
    runtime = await start_api(settings, url)
    try:
        source_ids = await _ensure_sources(runtime)
        console.print(f"Loaded {len(source_ids)} sample sources: interviews in English and "
                      "Portuguese, and a podcast transcript (WebVTT, two speakers).")
        started = await start_processing(runtime.ports, source_ids=source_ids,
                                         model_names=DEMO_MODELS, strategy=None,
                                         budget_usd=None)
        began = time.monotonic()
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total} chunks"), TimeElapsedColumn(),
                      console=console) as progress:
            tasks: dict[int, Any] = {}
            while True:
                rows = await _progress(runtime, started.batch_ids)
                for row in rows:
                    if row.id not in tasks:
                        tasks[row.id] = progress.add_task(row.model_name, total=None)
                    progress.update(tasks[row.id], total=max(int(row.chunks or 0), 1),
                                    completed=int(row.done or 0),
                                    description=f"{row.model_name} [{row.status}]")
                if rows and all(r.status in ("completed", "failed", "cancelled") for r in rows):
                    break
                if time.monotonic() - began > 600:
                    console.print("[red]The demo did not finish within 10 minutes.[/red]")
                    return 1
                await asyncio.sleep(0.3)
        table = Table(title="Offline model comparison (measured on the sample interviews)")
        for column in ("source", "model", "status", "fragments", "grounded", "MIU-clean",
                       "cost USD", "latency ms"):
            table.add_column(column, justify="right" if column not in ("source", "model",
                                                                        "status") else "left")
        for row in await _summary(runtime, started.batch_ids):
            fragments = row.fragment_count or 0
            table.add_row(row.source_code, row.model_name, row.status, str(fragments),
                          _share(row.grounded_count, fragments), _share(row.miu, fragments),
                          f"{Decimal(row.cost_usd):.6f}", str(row.latency_ms))
        console.print(table)
        await _print_reports(runtime, source_ids, console)
        await _print_transcript(runtime, source_ids[-1], started.batch_ids[-1], console)
        console.print("Explore the fragments in GraphiQL: `mmos serve`, then open "
                      "http://127.0.0.1:8000/graphql")
        return 0
    finally:
        await runtime.close()
