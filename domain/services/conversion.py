"""Files and formatted text into sources: convert, validate, store, all or nothing."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import unicodedata
from dataclasses import replace
from pathlib import PurePath
from typing import Any

from domain.documents import ContentFormat, ConversionError, ConvertedDocument
from domain.errors import FieldIssue, InvalidInput
from domain.model import SourceType
from domain.ports import FileConverter, Ports
from domain.sources import SOURCE_CODE_RE, TITLE_MAX, SourceData, SourceLimits, validate_new_source

# Conversions run in threads, two at a time: each one may hold a large file's text and
# parse state, and a burst of uploads must not multiply that.
_CONVERSIONS = threading.BoundedSemaphore(2)
FILE_NAME_MAX = 255
# A file's source type when the request names none (the others default to INTERVIEW).
DEFAULT_TYPES = {ContentFormat.EPUB: SourceType.BOOK, ContentFormat.PDF: SourceType.DOCUMENT,
                 ContentFormat.DOCX: SourceType.DOCUMENT, ContentFormat.HTML: SourceType.ARTICLE}


def limits(ports: Ports) -> SourceLimits:
    return SourceLimits(max_content_bytes=ports.settings.max_content_bytes)


def content_format(raw: dict[str, Any], path: tuple[str, ...]) -> ContentFormat:
    """The declared format of `raw`'s content (TEXT when none is named)."""
    value = raw.pop("content_format", None)
    if value is None:
        return ContentFormat.TEXT
    if isinstance(value, ContentFormat):
        return value
    try:
        return ContentFormat(str(value).strip().upper())
    except ValueError:
        names = ", ".join(f.value for f in ContentFormat)
        raise InvalidInput.single(path, f"must be one of {names} (got {str(value)[:20]!r})"
                                  ) from None


def _converter(ports: Ports) -> FileConverter:
    if ports.converter is None:
        raise RuntimeError("this process was built without file converters")
    return ports.converter


async def convert(ports: Ports, data: bytes, fmt: ContentFormat, file_name: str | None,
                  path: tuple[str, ...]) -> ConvertedDocument:
    """`data` read as `fmt` off the event loop; a ConversionError becomes an InvalidInput
    naming `path`."""
    converter = _converter(ports)

    def run() -> ConvertedDocument:
        with _CONVERSIONS:
            return converter.convert(data, fmt, file_name=file_name)

    try:
        return await asyncio.to_thread(run)
    except ConversionError as exc:
        raise InvalidInput.single(path, exc.message) from None


def converted_source(raw: dict[str, Any], document: ConvertedDocument, fmt: ContentFormat,
                     limits: SourceLimits, prefix: tuple[str, ...]) -> SourceData:
    """The source of a converted document: its text as content, its segments, and the title,
    author and language the file gave where the request gave none."""
    values = dict(raw)
    values["content"] = document.text
    for key, found in (("title", document.title), ("author", document.author),
                       ("language", _language(document.language))):
        if not values.get(key) and found:
            values[key] = found[:TITLE_MAX] if key == "title" else found
    try:
        data = validate_new_source(values, limits, prefix)
    except InvalidInput as exc:
        # The text came from the file: say so where the request's content is not at fault.
        raise InvalidInput([
            FieldIssue(issue.path, f"the text read from the file {issue.message}")
            if issue.path[-1:] == ("content",) else issue for issue in exc.issues]) from None
    return replace(data, content_format=fmt, segments=document.segments,
                   conversion_notes=document.notes)


def _language(tag: str | None) -> str | None:
    """A file's language tag in the form sources take ('pt_BR' → 'pt-BR'), else None."""
    if not tag:
        return None
    parts = tag.strip().replace("_", "-").split("-")
    if not parts[0].isalpha() or not 2 <= len(parts[0]) <= 3:
        return None
    head = parts[0].lower()
    return head if len(parts) == 1 else f"{head}-{parts[1]}"[:16]


def code_from_file_name(file_name: str) -> str | None:
    """A source code from a file's name: 'Marta interview (2).vtt' → 'MARTA_INTERVIEW_2'."""
    path = PurePath(file_name.replace("\\", "/"))
    # A name too short for a code ('a.vtt') takes its extension too ('A_VTT').
    for stem in (path.stem, path.name):
        plain = "".join(c for c in unicodedata.normalize("NFKD", stem)
                        if not unicodedata.combining(c))
        code = re.sub(r"[^A-Z0-9_.-]+", "_", plain.upper().replace(".", "_"))
        code = code.strip("_.-")[:64].rstrip("_.-")
        if SOURCE_CODE_RE.match(code):
            return code
    return None


async def source_of_file(ports: Ports, data: bytes) -> Any:
    """The source already read from a file with exactly these bytes, or None."""
    async with ports.uow(read_only=True) as uow:
        return await uow.sources.get_by_original(hashlib.sha256(data).hexdigest())


async def create_source_from_file(ports: Ports, raw: dict[str, Any], data: bytes,
                                  file_name: str | None,
                                  prefix: tuple[str, ...] = ()) -> Any:
    """Store a source read from a file (any supported format); nothing is stored when the file
    or a field is at fault. The source code and title default to the file's name."""
    prepared = await prepared_file_source(ports, raw, data, file_name, prefix)
    async with ports.uow() as uow:
        return await uow.sources.add(prepared, prefix)


async def prepared_file_source(ports: Ports, raw: dict[str, Any], data: bytes,
                               file_name: str | None,
                               prefix: tuple[str, ...] = ()) -> SourceData:
    """A file's source, validated and converted, not yet stored."""
    raw = dict(raw)
    file_path = (*prefix, "file")
    name = _file_name(file_name, file_path)
    declared = content_format(raw, (*prefix, "contentFormat")) if raw.get(
        "content_format") is not None else None
    if not raw.get("source_code") and name:
        raw["source_code"] = code_from_file_name(name)
    # The title the file gives itself comes first, then the file's name.
    stem = PurePath(name.replace("\\", "/")).stem[:TITLE_MAX] if name else None
    maximum = ports.settings.max_upload_bytes
    if not data:
        raise InvalidInput.single(file_path, "is empty")
    if len(data) > maximum:
        raise InvalidInput.single(file_path, f"is {len(data)} bytes; the limit is {maximum} "
                                             "bytes")
    # The other fields are checked before the (possibly long) conversion.
    validate_new_source({**raw, "title": raw.get("title") or "-", "content": "-"},
                        limits(ports), prefix)
    fmt = declared or _converter(ports).detect(data, name)
    if fmt is None:
        names = ", ".join(f.value for f in ContentFormat)
        raise InvalidInput.single(file_path, "is not in a format MMOS reads; the formats are "
                                             f"{names}: name one with contentFormat")
    if not raw.get("source_type"):
        raw["source_type"] = DEFAULT_TYPES.get(fmt)
    document = await convert(ports, data, fmt, name, file_path)
    if not raw.get("title"):
        raw["title"] = (document.title or "").strip()[:TITLE_MAX] or stem
    source = converted_source(raw, document, fmt, limits(ports), prefix)
    return replace(source, original_file_name=name,
                   original_sha256=hashlib.sha256(data).hexdigest(),
                   original_bytes=len(data))


def _file_name(file_name: str | None, path: tuple[str, ...]) -> str | None:
    if file_name is None or not file_name.strip():
        return None
    name = PurePath(file_name.replace("\\", "/")).name.strip()
    if "\x00" in name or len(name) > FILE_NAME_MAX:
        raise InvalidInput.single(path, f"has a name longer than {FILE_NAME_MAX} characters "
                                        "or with a NUL character")
    return name or None
