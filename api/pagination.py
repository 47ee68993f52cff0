"""Relay connections with totalCount built from keyset pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay
from strawberry.types.nodes import FragmentSpread, InlineFragment

from db.keyset import Page

N = TypeVar("N")


@strawberry.type(description="A page of results with Relay cursors and the total count.")
class CountedConnection(relay.Connection[N], Generic[N]):
    total_count: int = strawberry.field(description="Results matching the filter, all pages.")


def build_connection(cls: type[Any], page: Page, to_node: Callable[[Any], Any]) -> Any:
    """Fill a connection class from a keyset page."""
    edges = [relay.Edge(cursor=cursor, node=to_node(row))
             for cursor, row in zip(page.cursors, page.rows, strict=True)]
    return cls(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        total_count=page.total_count,
    )


def wants_total(info: Any) -> bool:
    """Whether the connection's `totalCount` is selected (directly or through fragments)."""
    stack = list(getattr(info, "selected_fields", None) or [])
    while stack:
        field = stack.pop()
        for selection in getattr(field, "selections", None) or []:
            if getattr(selection, "name", None) == "totalCount":
                return True
            stack.append(selection)
    return False


def selects(info: Any, *path: str) -> bool:
    """Whether the resolved field's selection reaches `path` (field names, through named and
    inline fragments), e.g. `selects(info, "edges", "node", "source")`."""
    level = list(getattr(info, "selected_fields", None) or [])
    for name in path:
        found = []
        stack = [child for field in _fields(level) for child in field.selections]
        for field in _fields(stack):
            if field.name == name:
                found.append(field)
        if not found:
            return False
        level = found
    return True


def _fields(selections: list[Any]) -> list[Any]:
    """The fields of `selections`, with fragments spread into them."""
    fields, stack = [], list(selections)
    while stack:
        selection = stack.pop()
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            stack.extend(selection.selections)
        else:
            fields.append(selection)
    return fields
