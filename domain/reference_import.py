"""Reading people's own fragment files (MMOS v5 fields) into checked records (pure).

Two formats: MMOS_YAML (one YAML document per fragment, a multi-document stream, a list, or a
Markdown file whose fenced ```yaml blocks hold them) and JSONL (one JSON object per line).
Every record keeps the line it starts on, so problems name the fragment and its line; all
problems are reported together as one InvalidInput, and nothing is read half.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml

from domain.errors import FieldIssue, InvalidInput
from domain.model import Category, FragmentType
from domain.sources import is_valid_unicode

MAX_REFERENCE_FRAGMENTS = 10_000
MAX_ID_CHARS = 200  # the external_id column's width
MAX_CONTENT_CHARS = 50_000
MAX_TEXT_CHARS = 20_000  # source, location, context, insight
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_ISSUES = 100  # problems reported at once; the rest are counted

# The C parser when PyYAML was built with libyaml; both are the safe loaders (plain data only).
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([A-Za-z0-9_+-]*)[^`]*$")
_YAML_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*ya?ml\s*$", re.IGNORECASE | re.MULTILINE)
_TEXT_FIELDS = {"source": "source_label", "location": "location", "context": "context",
                "insight": "insight"}


class ReferenceFormat(enum.StrEnum):
    MMOS_YAML = "mmos_yaml"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    """One fragment of a file, checked: taxonomy resolved, the record as sent kept in `raw`."""

    index: int  # position in the file, 0-based (the field path's number)
    line: int  # 1-based line of the file where the fragment starts
    external_id: str
    content: str
    category: Category
    fragment_type: FragmentType
    source_label: str | None
    location: str | None
    relevance: int | None
    context: str | None
    insight: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReferenceFragmentData:
    """What is stored for one imported fragment (the reference_fragments columns)."""

    external_id: str
    content: str
    char_start: int | None
    char_end: int | None
    grounding: str
    grounding_score: float
    closest_start: int | None
    closest_end: int | None
    category: str
    fragment_type: str
    relevance: int | None
    context: str | None
    insight: str | None
    tags: list[str]
    location: str | None
    source_label: str | None
    metadata: dict[str, Any]
    raw_record: dict[str, Any]
    verification_status: str
    reviewer: str
    provenance_file: str | None


@dataclass(frozen=True, slots=True)
class _Item:
    line: int
    field_lines: Mapping[str, int]
    value: Any


def parse_reference(data: str, fmt: ReferenceFormat, *, path: tuple[str, ...] = ("input", "data"),
                    max_fragments: int = MAX_REFERENCE_FRAGMENTS) -> list[ReferenceRecord]:
    """The checked records of a file; InvalidInput naming each problem's field and line."""
    if data.startswith("\ufeff"):
        data = data[1:]
    items = _jsonl_items(data, path) if fmt is ReferenceFormat.JSONL else _yaml_items(data, path)
    if not items:
        raise InvalidInput.single(path, "holds no fragment")
    if len(items) > max_fragments:
        raise InvalidInput.single(path, f"has {len(items)} fragments; the limit is "
                                        f"{max_fragments}")
    records: list[ReferenceRecord] = []
    issues: list[FieldIssue] = []
    first_of: dict[str, ReferenceRecord] = {}
    for index, item in enumerate(items):
        record = _record(index, item, (*path, str(index)), issues)
        if record is None:
            continue
        earlier = first_of.get(record.external_id)
        if earlier is not None:
            issues.append(FieldIssue((*path, str(index), "id"),
                                     f"{record.external_id!r} (line {record.line}) is also "
                                     f"the id of fragment {earlier.index} (line "
                                     f"{earlier.line}); ids must be unique in a file"))
            continue
        first_of[record.external_id] = record
        records.append(record)
    if issues:
        raise InvalidInput(_capped(issues, path))
    return records


# --- YAML and Markdown ---------------------------------------------------------------------


def _yaml_items(text: str, path: tuple[str, ...]) -> list[_Item]:
    blocks = list(_markdown_blocks(text, path)) if _YAML_FENCE.search(text) else [(0, text)]
    items: list[_Item] = []
    for offset, block in blocks:
        items.extend(_yaml_stream(block, offset, path))
    return items


def _markdown_blocks(text: str, path: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """(line offset, text) of each fenced ```yaml block; other fences are skipped whole."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index].rstrip("\r"))
        if opening is None:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = index + 1
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end].rstrip("\r")):
            end += 1
        if end == len(lines):
            raise InvalidInput.single(path, f"the fenced block opened at line {index + 1} "
                                            "is never closed")
        if language in ("yaml", "yml"):
            yield index + 1, "\n".join(lines[index + 1:end])
        index = end + 1


def _yaml_stream(text: str, offset: int, path: tuple[str, ...]) -> list[_Item]:
    loader = _Loader(text)
    items: list[_Item] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _refuse_aliases(node, offset, path)
            items.extend(_document_items(node, loader.construct_document(node), offset))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (f" at line {mark.line + 1 + offset}, column {mark.column + 1}"
                 if mark is not None else "")
        problem = exc.problem or exc.context or "cannot be read"
        raise InvalidInput.single(path, f"is not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput.single(path, f"is not valid YAML: {exc}") from None
    except RecursionError:
        raise InvalidInput.single(path, "is nested too deeply to be a fragment file") from None
    finally:
        loader.dispose()
    return items


def _refuse_aliases(root: yaml.Node, offset: int, path: tuple[str, ...]) -> None:
    """Anchors and aliases (&a / *a) are refused: fragment files have no use for them, and a
    few nested aliases expand to gigabytes once the record is stored as JSON."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            line = node.start_mark.line + 1 + offset
            raise InvalidInput.single(path, f"uses a YAML alias (*name) at line {line}; "
                                            "write every fragment out in full")
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _document_items(node: yaml.Node, value: Any, offset: int) -> list[_Item]:
    if value is None:
        return []  # an empty document (a trailing `---`)
    if isinstance(value, dict) and set(value) == {"fragments"} \
            and isinstance(value["fragments"], list) and isinstance(node, yaml.MappingNode):
        node, value = node.value[0][1], value["fragments"]
    if isinstance(value, list) and isinstance(node, yaml.SequenceNode):
        return [_Item(_line(child, offset), _field_lines(child, offset), element)
                for child, element in zip(node.value, value, strict=True)]
    return [_Item(_line(node, offset), _field_lines(node, offset), value)]


def _line(node: yaml.Node, offset: int) -> int:
    return int(node.start_mark.line) + 1 + offset


def _field_lines(node: yaml.Node, offset: int) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): _line(key, offset) for key, _ in node.value
            if isinstance(key, yaml.ScalarNode)}


# --- JSONL ------------------------------------------------------------------------------------


def _jsonl_items(text: str, path: tuple[str, ...]) -> list[_Item]:
    items: list[_Item] = []
    issues: list[FieldIssue] = []
    # Split on newlines only: str.splitlines would also cut at U+2028 inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.append(FieldIssue(path, f"line {number}, column {exc.colno}: is not valid "
                                           f"JSON ({exc.msg})"))
            continue
        except RecursionError:
            issues.append(FieldIssue(path, f"line {number}: is nested too deeply"))
            continue
        items.append(_Item(number, {}, value))
    if issues:
        raise InvalidInput(_capped(issues, path))
    return items


# --- one record -------------------------------------------------------------------------------


def _at(line: int, external_id: str | None = None) -> str:
    named = f"fragment {external_id!r}, " if external_id else ""
    return f" ({named}line {line})"


def _record(index: int, item: _Item, path: tuple[str, ...],
            issues: list[FieldIssue]) -> ReferenceRecord | None:
    if not isinstance(item.value, dict):
        issues.append(FieldIssue(path, "must be a mapping of fragment fields (id, content, "
                                       f"category, …){_at(item.line)}"))
        return None
    raw = {str(key): _json_safe(value) for key, value in item.value.items()}
    before = len(issues)
    external_id = _external_id(raw.get("id"), path, item.line, issues)

    def problem(name: str, message: str) -> None:
        line = item.field_lines.get(name, item.line)
        issues.append(FieldIssue((*path, name), f"{message}{_at(line, external_id)}"))

    for name, value in raw.items():
        bad = _bad_text(value)
        if bad:
            problem(name, bad)
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        problem("content", "is required: the fragment's text as it appears in the source")
    elif len(content) > MAX_CONTENT_CHARS:
        problem("content", f"has {len(content)} characters; the limit is {MAX_CONTENT_CHARS}")
    category = _label(raw.get("category"), Category, "category", problem)
    fragment_type = _label(raw.get("type"), FragmentType, "type", problem)
    texts = {column: _text(raw.get(name), name, problem) for name, column in _TEXT_FIELDS.items()}
    relevance = _relevance(raw.get("relevance"), problem)
    tags = _tags(raw.get("tags"), problem)
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problem("metadata", "must be a mapping (e.g. {confidence: 0.9, clarity: 5})")
    if len(issues) > before or external_id is None or not isinstance(content, str):
        return None
    return ReferenceRecord(
        index=index, line=item.line, external_id=external_id, content=content.strip(),
        category=category or Category.GENERAL,
        fragment_type=fragment_type or FragmentType.DIRECT_QUOTE,
        source_label=texts["source_label"], location=texts["location"],
        relevance=relevance, context=texts["context"], insight=texts["insight"], tags=tags,
        metadata=dict(metadata or {}), raw=raw)


def _external_id(value: Any, path: tuple[str, ...], line: int,
                 issues: list[FieldIssue]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        issues.append(FieldIssue((*path, "id"), f"is required: the fragment's own id, e.g. "
                                                f"FRAG_ABC_007{_at(line)}"))
        return None
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        issues.append(FieldIssue((*path, "id"), f"has {len(text)} characters; the limit is "
                                                f"{MAX_ID_CHARS}{_at(line)}"))
        return None
    return text


def _label(value: Any, kind: type[Category] | type[FragmentType], name: str,
           problem: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    found = kind.lookup(value) if isinstance(value, str) else None
    if found is None:
        known = ", ".join(member.value for member in kind)
        problem(name, f"{str(value)[:100]!r} is not a known {name}; use one of {known}")
    return found


def _text(value: Any, name: str, problem: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problem(name, "must be text")
        return None
    text = str(value).strip()
    if len(text) > MAX_TEXT_CHARS:
        problem(name, f"has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        return None
    return text or None


def _relevance(value: Any, problem: Any) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= 10:
        problem("relevance", f"must be a whole number from 1 to 10 (got {str(value)[:20]!r})")
        return None
    return number


def _tags(value: Any, problem: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        problem("tags", "must be a list of names, e.g. [\"decision_making\", \"simplicity\"]")
        return ()
    if len(value) > MAX_TAGS:
        problem("tags", f"has {len(value)} items; the limit is {MAX_TAGS}")
        return ()
    names = [tag.strip() for tag in value]
    if any(not name or len(name) > MAX_TAG_CHARS for name in names):
        problem("tags", f"must hold names of 1 to {MAX_TAG_CHARS} characters")
        return ()
    return tuple(dict.fromkeys(names))


def _bad_text(value: Any) -> str | None:
    """A problem with any text inside `value` that PostgreSQL cannot store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and ("\x00" in item or not is_valid_unicode(item)):
            return "must not contain NUL characters or lone surrogates"
        if isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _json_safe(value: Any) -> Any:
    """YAML's plain data as JSON: dates as ISO text, sets as lists, keys as text, non-finite
    numbers and binary as text (jsonb refuses NaN)."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_json_safe(item) for item in items]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _capped(issues: list[FieldIssue], path: tuple[str, ...]) -> list[FieldIssue]:
    if len(issues) <= MAX_ISSUES:
        return issues
    rest = len(issues) - MAX_ISSUES
    return [*issues[:MAX_ISSUES], FieldIssue(path, f"{rest} more problems are not shown")]
