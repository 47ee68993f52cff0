"""Sources: create (from text in any text format, or from a file), change, delete, import
many at once."""

from __future__ import annotations

from typing import Any

from domain.documents import ContentFormat, Segment
from domain.errors import FieldIssue, InvalidInput, NotFound
from domain.ports import Ports
from domain.services import quality
from domain.services.conversion import content_format, convert, converted_source, limits
from domain.sources import (
    SourceData,
    speaker_labels,
    stored_subject,
    validate_new_source,
    validate_source_changes,
)
from domain.subjects import subject_speakers


async def prepared_source(ports: Ports, raw: dict[str, Any],
                          prefix: tuple[str, ...] = ("input",)) -> SourceData:
    """A create request validated and, for a text format other than TEXT, converted."""
    raw = dict(raw)
    fmt = content_format(raw, (*prefix, "contentFormat"))
    data = validate_new_source(raw, limits(ports), prefix)
    if fmt is ContentFormat.TEXT:
        return data
    if not fmt.is_text:
        raise InvalidInput.single(
            (*prefix, "contentFormat"),
            f"{fmt.value} arrives as a file: upload it with POST /sources/upload or "
            "`mmos import FILE`")
    document = await convert(ports, data.content.encode("utf-8"), fmt, None,
                             (*prefix, "content"))
    return converted_source(raw, document, fmt, limits(ports), prefix)


async def create_source(ports: Ports, raw: dict[str, Any],
                        prefix: tuple[str, ...] = ("input",)) -> Any:
    """Store a new source; its code and its content must both be new."""
    data = await prepared_source(ports, raw, prefix)
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
    data = await prepared_source(ports, raw, ())
    async with ports.uow() as uow:
        existing = await uow.sources.get_by_code(data.source_code)
        return existing if existing is not None else await uow.sources.add(data, ())


async def update_source(ports: Ports, source_id: int, raw: dict[str, Any]) -> Any:
    """Change the fields named in `raw`; the others stay. New content (in any text format)
    replaces the segment map; a new subject is matched against the source's speakers."""
    raw = dict(raw)
    fmt = content_format(raw, ("input", "contentFormat")) if "content_format" in raw else None
    if fmt is not None and "content" not in raw:
        raise InvalidInput.single(("input", "contentFormat"),
                                  "names the format of new content; give `content` too")
    changes = validate_source_changes(raw, limits(ports))
    if not changes:
        raise InvalidInput.single(("input",), "names no field to change")
    segments: tuple[Segment, ...] | None = None
    if "content" in changes:
        fmt = fmt or ContentFormat.TEXT
        segments = ()
        if fmt is not ContentFormat.TEXT:
            if not fmt.is_text:
                raise InvalidInput.single(("input", "contentFormat"),
                                          f"{fmt.value} arrives as a file, not as content")
            document = await convert(ports, changes["content"].encode("utf-8"), fmt, None,
                                     ("input", "content"))
            converted = converted_source({"source_code": "UPDATE", "title": "update",
                                          "content": document.text}, document, fmt,
                                         limits(ports), ("input",))
            changes.update(content=converted.content, content_sha256=converted.content_sha256,
                           word_count=converted.word_count, char_count=converted.char_count,
                           conversion_notes=list(converted.conversion_notes))
            segments = converted.segments
        changes.update(content_format=fmt.value, original_file_name=None,
                       original_sha256=None, original_bytes=None)
        if fmt is ContentFormat.TEXT:
            changes["conversion_notes"] = []
    async with ports.uow() as uow:
        subject_changed = "subject" in changes
        subject = changes.pop("subject", None)
        if segments is not None:
            await uow.sources.require(source_id, ("input", "id"))
            labels = list(speaker_labels(segments))
        elif subject_changed:
            labels = await uow.segments.speaker_labels(source_id)
        row = None
        if subject_changed:
            changes.update(subject_name=subject.name if subject else None,
                           subject_aliases=list(subject.aliases) if subject else [])
        if subject_changed or segments is not None:
            if not subject_changed:
                row = await uow.sources.require(source_id, ("input", "id"))
                subject = stored_subject(row.subject_name, row.subject_aliases)
            changes["subject_speakers"] = list(subject_speakers(labels, subject))
        row = await uow.sources.update(source_id, changes)
        if segments is not None:
            await uow.segments.replace(source_id, segments)
    if "subject_speakers" in changes:
        # Coverage counts the subject's sentences: the source's scores change with them.
        await quality.feed_verdicts(ports, {source_id})
    return row


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
            valid.append((index, await prepared_source(ports, raw,
                                                       ("input", "sources", str(index)))))
        except InvalidInput as exc:
            issues.extend(exc.issues)
    async with ports.uow() as uow:
        issues.extend(await uow.sources.import_issues(valid))
        if issues:
            issues.sort(key=lambda issue: int(issue.path[2]))
            raise InvalidInput(issues)
        return list(await uow.sources.add_all([item for _, item in valid]))
