"""Sources: create, change, delete, import many at once."""

from __future__ import annotations

from typing import Any

from domain.errors import FieldIssue, InvalidInput, NotFound
from domain.ports import Ports
from domain.sources import SourceData, SourceLimits, validate_new_source, validate_source_changes


def limits(ports: Ports) -> SourceLimits:
    return SourceLimits(max_content_bytes=ports.settings.max_content_bytes)


async def create_source(ports: Ports, raw: dict[str, Any],
                        prefix: tuple[str, ...] = ("input",)) -> Any:
    """Store a new source; its code and its content must both be new."""
    data = validate_new_source(raw, limits(ports), prefix)
    async with ports.uow() as uow:
        return await uow.sources.add(data, prefix)


async def source_by_code(ports: Ports, code: str,
                         path: tuple[str, ...] = ("sourceCode",)) -> Any:
    """The source with this code; NotFound naming `path` when there is none."""
    async with ports.uow(read_only=True) as uow:
        row = await uow.sources.get_by_code(code.strip())
    if row is None:
        raise NotFound("Source", code.strip(), path)
    return row


async def ensure_source(ports: Ports, raw: dict[str, Any]) -> Any:
    """The source with this code, stored now when there is none yet."""
    data = validate_new_source(raw, SourceLimits(), ())
    async with ports.uow() as uow:
        existing = await uow.sources.get_by_code(data.source_code)
        return existing if existing is not None else await uow.sources.add(data, ())


async def update_source(ports: Ports, source_id: int, raw: dict[str, Any]) -> Any:
    """Change the fields named in `raw`; the others stay."""
    changes = validate_source_changes(raw, limits(ports))
    if not changes:
        raise InvalidInput.single(("input",), "names no field to change")
    async with ports.uow() as uow:
        return await uow.sources.update(source_id, changes)


async def delete_source(ports: Ports, source_id: int) -> Any:
    """Delete a source with its runs and fragments; returns the deleted row."""
    async with ports.uow() as uow:
        return await uow.sources.delete(source_id)


async def import_sources(ports: Ports, items: list[dict[str, Any]]) -> list[Any]:
    """Store many sources: all of them or none, every problem reported per item."""
    limit = ports.settings.max_import_items
    if not items:
        raise InvalidInput.single(("input", "sources"), "must not be empty")
    if len(items) > limit:
        raise InvalidInput.single(("input", "sources"),
                                  f"has {len(items)} items; the limit is {limit}")
    valid: list[tuple[int, SourceData]] = []
    issues: list[FieldIssue] = []
    for index, raw in enumerate(items):
        try:
            valid.append((index, validate_new_source(raw, limits(ports),
                                                     ("input", "sources", str(index)))))
        except InvalidInput as exc:
            issues.extend(exc.issues)
    async with ports.uow() as uow:
        issues.extend(await uow.sources.import_issues(valid))
        if issues:
            issues.sort(key=lambda issue: int(issue.path[2]))
            raise InvalidInput(issues)
        return list(await uow.sources.add_all([item for _, item in valid]))
