"""`mmos import FILE... [--type --quality --priority --language --subject --alias --format]`:
sources from files, one at a time, with a progress bar (on a terminal) and a summary.

A file whose exact bytes were imported before, or whose text is already stored, counts as a
duplicate and is skipped; a file that cannot be read is an error and the others go on.
Exit status: 0 when every file was created or a duplicate, 1 when some file failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.settings import Settings


@dataclass(slots=True)
class ImportSummary:
    """What one `mmos import` did, file by file."""

    created: list[tuple[str, str]] = field(default_factory=list)  # (file, source code)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file, existing code)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, why)

    def line(self) -> str:
        return (f"{len(self.created)} created, {len(self.duplicates)} duplicates, "
                f"{len(self.errors)} errors")


def _raw(args: argparse.Namespace) -> dict[str, Any]:
    from domain import model as m

    raw: dict[str, Any] = {}
    if args.type:
        raw["source_type"] = m.SourceType(args.type)
    if args.quality:
        raw["quality"] = m.SourceQuality(args.quality)
    if args.priority:
        raw["extraction_priority"] = m.ExtractionPriority(args.priority)
    if args.language:
        raw["language"] = args.language
    if args.format:
        raw["content_format"] = args.format.upper()
    if args.subject:
        raw["subject"] = {"name": args.subject, "aliases": list(args.alias or [])}
    return raw


def _why(exc: Exception) -> str:
    issues = getattr(exc, "issues", None) or []
    if issues:
        return "; ".join(f"{'.'.join(issue.path) or 'file'}: {issue.message}" for issue in issues)
    return str(getattr(exc, "message", None) or exc)


async def import_files(ports: Any, paths: list[Path], raw: dict[str, Any],
                       progress: Any = None) -> ImportSummary:
    """Import each file as a source; `progress(path)` is called after each one."""
    from domain.errors import Conflict, DomainError
    from domain.services import conversion

    summary = ImportSummary()
    for path in paths:
        name = str(path)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            summary.errors.append((name, f"cannot be read: {exc.strerror or exc}"))
        else:
            try:
                existing = await conversion.source_of_file(ports, data)
                if existing is not None:
                    summary.duplicates.append((name, existing.source_code))
                else:
                    row = await conversion.create_source_from_file(ports, dict(raw), data,
                                                                   path.name)
                    summary.created.append((name, row.source_code))
            except Conflict as exc:
                if exc.path[-1:] in (("content",), ("file",)):
                    summary.duplicates.append((name, f"source {exc.existing_id or '?'}"))
                else:
                    summary.errors.append((name, _why(exc)))
            except DomainError as exc:
                summary.errors.append((name, _why(exc)))
        if progress is not None:
            progress(path)
    return summary


async def run_import(settings: Settings, url: str, args: argparse.Namespace) -> int:
    """Run `mmos import` and print its summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from api.container import cli_container

    paths = [Path(name) for name in args.files]
    container = await cli_container(settings, url)
    console = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, transient=True,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task("importing", total=len(paths))
            summary = await import_files(
                container.ports, paths, _raw(args),
                progress=lambda path: bar.update(task, advance=1,
                                                 description=f"importing {path.name[:40]}"))
    finally:
        await container.close()
    for name, code in summary.created:
        print(f"created    {code}  ({name})")
    for name, existing in summary.duplicates:
        print(f"duplicate  {name}: already stored as {existing}")
    for name, why in summary.errors:
        print(f"error      {name}: {why}", file=sys.stderr)
    print(summary.line())
    return 1 if summary.errors else 0
