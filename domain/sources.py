"""Validation and derived facts of sources (pure): codes, sizes, hashes, word counts."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.documents import ContentFormat, Segment, SegmentKind
from domain.errors import FieldIssue, InvalidInput
from domain.model import ExtractionPriority, SourceQuality, SourceType
from domain.subjects import Subject, subject_speakers, validate_subject
from domain.text import is_valid_unicode

SOURCE_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{1,63}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_WORD_RE = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)

TITLE_MAX = 500
AUTHOR_MAX = 300
URL_MAX = 2000
NOTES_MAX = 20_000


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """Input limits that are configurable (content size in UTF-8 bytes)."""

    max_content_bytes: int = 5 * 1024 * 1024


@dataclass(slots=True)
class SourceData:
    """A validated source ready to be stored."""

    source_code: str
    title: str
    source_type: SourceType
    quality: SourceQuality
    extraction_priority: ExtractionPriority
    content: str
    language: str
    author: str | None
    url: str | None
    source_date: date | None
    notes: str | None
    subject: Subject | None = None
    content_format: ContentFormat = ContentFormat.TEXT
    segments: tuple[Segment, ...] = ()
    original_file_name: str | None = None
    original_sha256: str | None = None
    original_bytes: int | None = None
    conversion_notes: tuple[str, ...] = ()

    @property
    def speakers(self) -> tuple[str, ...]:
        """The speaker labels of the source's turns, in order of first appearance."""
        return speaker_labels(self.segments)

    @property
    def subject_speakers(self) -> tuple[str, ...]:
        """The speaker labels that are the subject's."""
        return subject_speakers(self.speakers, self.subject)

    @property
    def content_sha256(self) -> str:
        return content_hash(self.content)

    @property
    def word_count(self) -> int:
        return count_words(self.content)

    @property
    def char_count(self) -> int:
        return len(self.content)


def content_hash(content: str) -> str:
    """sha256 of the UTF-8 content: the identity used to detect duplicate sources."""
    return hashlib.sha256(content.encode("utf-8", errors="surrogatepass")).hexdigest()


def count_words(text: str) -> int:
    """Words as runs of letters/digits, contractions and hyphenated words counting once."""
    return len(_WORD_RE.findall(text))


def stored_subject(name: str | None, aliases: Any) -> Subject | None:
    """The subject of a stored source (its `subject_name` and `subject_aliases` columns)."""
    return Subject(name, tuple(aliases or ())) if name else None


def speaker_labels(segments: tuple[Segment, ...] | list[Segment]) -> tuple[str, ...]:
    """Distinct speakers of the TURN segments (else of the CUE segments), in order."""
    for kind in (SegmentKind.TURN, SegmentKind.CUE):
        labels = dict.fromkeys(s.speaker for s in segments if s.kind is kind and s.speaker)
        if labels:
            return tuple(label for label in labels if label)
    return ()


def search_config_for(language: str) -> str:
    """PostgreSQL text search configuration for a source language."""
    base = language.split("-")[0].lower()
    return {"en": "english", "pt": "portuguese"}.get(base, "simple")


def _text(value: Any, path: tuple[str, ...], issues: list[FieldIssue], *, required: bool,
          max_len: int) -> str | None:
    if value is None:
        if required:
            issues.append(FieldIssue(path, "is required"))
        return None
    text = str(value).strip()
    if not text:
        if required:
            issues.append(FieldIssue(path, "must not be empty"))
        return None
    if len(text) > max_len:
        issues.append(FieldIssue(path, f"must be at most {max_len} characters"))
    if "\x00" in text:
        issues.append(FieldIssue(path, "must not contain NUL characters"))
    elif not is_valid_unicode(text):
        issues.append(FieldIssue(path, "must be valid Unicode (no lone surrogates)"))
    return text


def check_source_code(code: str | None, path: tuple[str, ...], issues: list[FieldIssue]) -> None:
    """Codes are 2–64 chars of A–Z, 0–9, '_', '-', '.', starting with a letter or digit."""
    if code is not None and not SOURCE_CODE_RE.match(code):
        issues.append(FieldIssue(
            path,
            "must be 2-64 characters of A-Z, 0-9, '_', '-' or '.', starting with a letter or "
            f"digit (got {code[:70]!r})",
        ))


def check_content(content: str | None, path: tuple[str, ...], limits: SourceLimits,
                  issues: list[FieldIssue]) -> None:
    """Content must be non-blank text within the configured byte limit."""
    if content is None:
        return
    size = len(content.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_content_bytes:
        issues.append(FieldIssue(
            path, f"is {size} bytes; the limit is {limits.max_content_bytes} bytes"
        ))
    elif not content.strip():
        issues.append(FieldIssue(path, "must not be empty"))
    elif "\x00" in content:
        issues.append(FieldIssue(path, "must not contain NUL characters"))
    elif not is_valid_unicode(content):
        issues.append(FieldIssue(path, "must be valid Unicode (no lone surrogates)"))


def check_language(language: str | None, path: tuple[str, ...], issues: list[FieldIssue]) -> None:
    """Languages are BCP 47 tags such as 'en', 'pt', 'pt-BR'."""
    if language is not None and not LANGUAGE_RE.match(language):
        issues.append(FieldIssue(path, f"must be a language tag such as 'en' or 'pt-BR' "
                                       f"(got {language[:20]!r})"))


def check_url(url: str | None, path: tuple[str, ...], issues: list[FieldIssue]) -> None:
    """Only http(s) URLs are accepted."""
    if url is not None and not re.match(r"^https?://[^\s]+$", url):
        issues.append(FieldIssue(path, "must be an http:// or https:// URL"))


def validate_new_source(raw: dict[str, Any], limits: SourceLimits,
                        prefix: tuple[str, ...] = ("input",)) -> SourceData:
    """Validate a create request; raises InvalidInput listing every bad field."""
    issues: list[FieldIssue] = []
    code = _text(raw.get("source_code"), (*prefix, "sourceCode"), issues, required=True,
                 max_len=64)
    check_source_code(code, (*prefix, "sourceCode"), issues)
    title = _text(raw.get("title"), (*prefix, "title"), issues, required=True, max_len=TITLE_MAX)
    content = raw.get("content")
    if content is None:
        issues.append(FieldIssue((*prefix, "content"), "is required"))
    check_content(content, (*prefix, "content"), limits, issues)
    language = _text(raw.get("language") or "en", (*prefix, "language"), issues, required=True,
                     max_len=16)
    check_language(language, (*prefix, "language"), issues)
    author = _text(raw.get("author"), (*prefix, "author"), issues, required=False,
                   max_len=AUTHOR_MAX)
    url = _text(raw.get("url"), (*prefix, "url"), issues, required=False, max_len=URL_MAX)
    check_url(url, (*prefix, "url"), issues)
    notes = _text(raw.get("notes"), (*prefix, "notes"), issues, required=False, max_len=NOTES_MAX)
    subject = _subject(raw.get("subject"), (*prefix, "subject"), issues)
    if issues:
        raise InvalidInput(issues)
    return SourceData(
        source_code=code or "",
        title=title or "",
        source_type=SourceType(raw.get("source_type") or SourceType.INTERVIEW),
        quality=SourceQuality(raw.get("quality") or SourceQuality.PRIMARY),
        extraction_priority=ExtractionPriority(
            raw.get("extraction_priority") or ExtractionPriority.MEDIUM
        ),
        content=content or "",
        language=language or "en",
        author=author,
        url=url,
        source_date=raw.get("source_date"),
        notes=notes,
        subject=subject,
    )


def _subject(raw: Any, path: tuple[str, ...], issues: list[FieldIssue]) -> Subject | None:
    try:
        return validate_subject(raw, path)
    except InvalidInput as exc:
        issues.extend(exc.issues)
        return None


def validate_source_changes(raw: dict[str, Any], limits: SourceLimits,
                            prefix: tuple[str, ...] = ("input",)) -> dict[str, Any]:
    """Validate a partial update; only keys present in `raw` change. Returns column values."""
    issues: list[FieldIssue] = []
    changes: dict[str, Any] = {}
    if "source_code" in raw:
        code = _text(raw["source_code"], (*prefix, "sourceCode"), issues, required=True,
                     max_len=64)
        check_source_code(code, (*prefix, "sourceCode"), issues)
        changes["source_code"] = code
    if "title" in raw:
        changes["title"] = _text(raw["title"], (*prefix, "title"), issues, required=True,
                                 max_len=TITLE_MAX)
    if "content" in raw:
        if raw["content"] is None:
            issues.append(FieldIssue((*prefix, "content"), "must not be null"))
        check_content(raw["content"], (*prefix, "content"), limits, issues)
        if raw["content"] is not None:
            changes["content"] = raw["content"]
            changes["content_sha256"] = content_hash(raw["content"])
            changes["word_count"] = count_words(raw["content"])
            changes["char_count"] = len(raw["content"])
    if "language" in raw:
        language = _text(raw["language"], (*prefix, "language"), issues, required=True,
                         max_len=16)
        check_language(language, (*prefix, "language"), issues)
        changes["language"] = language
    for key, field, max_len in (("author", "author", AUTHOR_MAX), ("url", "url", URL_MAX),
                                ("notes", "notes", NOTES_MAX)):
        if key in raw:
            changes[key] = _text(raw[key], (*prefix, field), issues, required=False,
                                 max_len=max_len)
    if "url" in changes:
        check_url(changes["url"], (*prefix, "url"), issues)
    for key, field, enum_cls in (
        ("source_type", "sourceType", SourceType),
        ("quality", "quality", SourceQuality),
        ("extraction_priority", "extractionPriority", ExtractionPriority),
    ):
        if key in raw:
            if raw[key] is None:
                issues.append(FieldIssue((*prefix, field), "must not be null"))
            else:
                changes[key] = enum_cls(raw[key]).value
    if "source_date" in raw:
        changes["source_date"] = raw["source_date"]
    if "subject" in raw:
        # None clears the subject; the service derives the subject's speaker labels.
        changes["subject"] = _subject(raw["subject"], (*prefix, "subject"), issues)
    if issues:
        raise InvalidInput(issues)
    return changes
