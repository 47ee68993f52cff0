"""Keyset pagination over (sort key, id) with opaque cursors, forwards and backwards."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidInput

MAX_PAGE = 100
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_PAGE = 20


@dataclass(frozen=True, slots=True)
class SortKey:
    """One orderable field: its public name, SQL expression and value kind."""

    name: str
    expression: Any
    kind: str = "str"  # str | int | datetime


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Validated Relay arguments; `count` is False when nobody asked for totalCount."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    count: bool = True


@dataclass(slots=True)
class Page:
    """One page of rows with the cursors and flags a Relay connection needs."""

    rows: list[Any]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def validate_page(first: int | None, after: str | None, last: int | None,
                  before: str | None) -> PageRequest:
    """Check Relay arguments: first/last within 0..100, not both; defaults to first=20."""
    issues = []
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE:
            issues.append(((name,), f"must be between 0 and {MAX_PAGE} (got {value})"))
    if first is not None and last is not None:
        issues.append((("last",), "cannot be combined with first"))
    if issues:
        from domain.errors import FieldIssue

        raise InvalidInput([FieldIssue(path, msg) for path, msg in issues])
    if first is None and last is None:
        first = DEFAULT_PAGE
    return PageRequest(first=first, after=after, last=last, before=before)


# One encoder for every cursor (json.dumps with options builds a new one per call).
_CURSOR_JSON = json.JSONEncoder(separators=(",", ":"))


def encode_cursor(order: str, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = _CURSOR_JSON.encode({"o": order, "k": [value, row_id]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str, key: SortKey, arg: str) -> tuple[Any, int]:
    """Parse an opaque cursor; anything malformed or from another ordering is bad input."""
    bad = InvalidInput.single((arg,), "is not a valid cursor for this list and ordering")
    if len(cursor) > 1000:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        value, row_id = data["k"]
        if data["o"] != order or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise bad
        if not _INT64_MIN <= row_id <= _INT64_MAX:
            raise bad
        if key.kind == "datetime":
            value = datetime.fromisoformat(value)
        elif key.kind == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise bad
        elif not isinstance(value, str) or "\x00" in value:
            raise bad
        else:
            value.encode("utf-8")  # a lone surrogate raises UnicodeError: bad cursor
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise bad from None
    return value, row_id


async def paginate(session: AsyncSession, query: sa.Select[Any], *, entity_id: Any,
                   key: SortKey, descending: bool, page: PageRequest,
                   count_query: sa.Select[Any] | None = None, plain_rows: bool = False) -> Page:
    """Run a keyset page of `query` ordered by (key, id); `query` selects the entity, or,
    with `plain_rows`, columns (among them `id`), and the page holds those rows."""
    order = f"{key.name}:{'DESC' if descending else 'ASC'}"
    after = decode_cursor(page.after, order, key, "after") if page.after else None
    before = decode_cursor(page.before, order, key, "before") if page.before else None
    pair = sa.tuple_(key.expression, entity_id)

    def later(bound: tuple[Any, int]) -> Any:
        literal = sa.tuple_(sa.literal(bound[0]), sa.literal(bound[1]))
        return pair < literal if descending else pair > literal

    def earlier(bound: tuple[Any, int]) -> Any:
        literal = sa.tuple_(sa.literal(bound[0]), sa.literal(bound[1]))
        return pair > literal if descending else pair < literal

    filtered = query
    if after is not None:
        filtered = filtered.where(later(after))
    if before is not None:
        filtered = filtered.where(earlier(before))

    backwards = page.last is not None
    limit = page.last if backwards else page.first
    assert limit is not None
    flip = descending != backwards
    ordering = (key.expression.desc(), entity_id.desc()) if flip else (
        key.expression.asc(), entity_id.asc())
    stmt = filtered.add_columns(key.expression.label("_sort_value")).order_by(*ordering)
    rows = (await session.execute(stmt.limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if plain_rows:
        entities = rows
        cursors = [encode_cursor(order, row[-1], row.id) for row in rows]
    else:
        entities = [row[0] for row in rows]
        cursors = [encode_cursor(order, row[-1], row[0].id) for row in rows]

    total = -1
    if page.count:  # a COUNT over the whole filtered set: only when it is selected
        total_stmt = count_query if count_query is not None else query
        total = (await session.execute(
            sa.select(sa.func.count()).select_from(total_stmt.order_by(None).subquery())
        )).scalar_one()
    return Page(
        rows=entities,
        cursors=cursors,
        has_next_page=more if not backwards else before is not None,
        has_previous_page=more if backwards else after is not None,
        total_count=int(total),
    )
