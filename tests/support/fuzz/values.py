"""Hypothesis strategies for GraphQL input values shaped by graphql-core input types.

Every strategy works from the type, so new arguments and input fields are fuzzed without
touching this file. A clean value is what a careful client sends; a hostile one is wrong-typed,
out of range, huge or garbage somewhere inside (nulls where forbidden, missing required fields,
unknown fields, undeclared enum values, huge lists). Values are plain JSON-like Python values;
`operations.py` sends them as variables or renders them as literals.
"""

from __future__ import annotations

import json
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
)
from hypothesis import strategies as st

from tests.support.fuzz.discovery import has_default
from tests.support.fuzz.scalars import NAME_CHARS, Pools, anything, clean_scalar, hostile_scalar

MAX_INPUT_DEPTH = 4


def enum_values(enum: GraphQLEnumType, hostile: bool) -> st.SearchStrategy[str]:
    """A declared value; when hostile, often a name the enum does not have."""
    declared = st.sampled_from(sorted(enum.values))
    if not hostile:
        return declared
    undeclared = st.one_of(st.text(NAME_CHARS, min_size=1, max_size=12),
                           st.sampled_from(("", "null", "true", "lowercase", "IN VALID")))
    return st.one_of(declared, undeclared)


@st.composite
def input_value(draw: st.DrawFn, type_: GraphQLInputType, pools: Pools, hostile: bool,
                depth: int = 0, hint: str = "") -> Any:
    """A value for `type_` (argument or field named `hint`); when hostile, sometimes a value
    of another type altogether."""
    if hostile and draw(st.integers(0, 7)) == 7:
        return draw(anything(pools))
    return draw(shaped_value(type_, pools, hostile, depth, hint))


@st.composite
def shaped_value(draw: st.DrawFn, type_: GraphQLInputType, pools: Pools, hostile: bool,
                 depth: int = 0, hint: str = "") -> Any:
    """A value shaped like `type_` (which, when hostile, may be out of range or nonsense)."""
    if isinstance(type_, GraphQLNonNull):
        if hostile and draw(st.integers(0, 9)) == 9:
            return None  # a null where the schema forbids one
        return draw(shaped_value(type_.of_type, pools, hostile, depth, hint))
    if not hostile and draw(st.integers(0, 9)) == 9:
        return None  # an explicit null where one is allowed
    if isinstance(type_, GraphQLList):
        return draw(list_value(type_, pools, hostile, depth, hint))
    if isinstance(type_, GraphQLInputObjectType):
        return draw(object_value(type_, pools, hostile, depth))
    if isinstance(type_, GraphQLEnumType):
        return draw(enum_values(type_, hostile))
    if isinstance(type_, GraphQLScalarType):
        scalar = hostile_scalar if hostile else clean_scalar
        return draw(scalar(type_.name, pools, hint))
    return draw(anything(pools))


@st.composite
def list_value(draw: st.DrawFn, type_: GraphQLList[Any], pools: Pools, hostile: bool,
               depth: int, hint: str = "") -> Any:
    """A short list; when hostile also an empty one, a bare item or a huge one."""
    item = input_value(type_.of_type, pools, hostile, depth + 1, hint)
    shape = draw(st.sampled_from(("short", "empty", "bare", "huge"))) if hostile else "short"
    if shape == "short":
        return draw(st.lists(item, min_size=1, max_size=3))
    if shape == "empty":
        return []
    if shape == "bare":
        return draw(item)  # GraphQL coerces a single item to a list
    one = draw(item)
    # Repeat one item: generating thousands of distinct ones would only slow the fuzzer down.
    small = len(json.dumps(one, default=str)) < 200
    return [one] * (draw(st.sampled_from((101, 501, 5001))) if small else 3)


@st.composite
def object_value(draw: st.DrawFn, type_: GraphQLInputObjectType, pools: Pools, hostile: bool,
                 depth: int) -> dict[str, Any]:
    """Required fields and some optional ones; when hostile, one field is hostile, a required
    field may be missing and an unknown field may appear."""
    if depth > MAX_INPUT_DEPTH:
        return {}
    names = list(type_.fields)
    target = draw(st.sampled_from(names)) if hostile and names else None
    result: dict[str, Any] = {}
    for name, field in type_.fields.items():
        required = isinstance(field.type, GraphQLNonNull) and not has_default(field)
        if name == target or required or draw(st.booleans()):
            result[name] = draw(input_value(field.type, pools, name == target, depth + 1, name))
    if hostile and names and draw(st.integers(0, 4)) == 4:
        result.pop(draw(st.sampled_from(names)), None)
    if hostile and draw(st.integers(0, 4)) == 4:
        extra = draw(st.text(NAME_CHARS, min_size=1, max_size=10))
        result.setdefault(extra, draw(anything(pools)))
    return result
