"""Whole GraphQL operations for one root field: arguments, then a random selection set.

Arguments go either as variables (typed as the schema declares) or as inline literals, so both
variable coercion and literal parsing are exercised. Selection sets walk the return type to a
bounded depth, with inline fragments on every union member and interface implementation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
)
from hypothesis import strategies as st

from tests.support.fuzz.discovery import has_default
from tests.support.fuzz.scalars import Pools
from tests.support.fuzz.values import input_value

# Object levels below the root field; the server allows more (max_query_depth), and staying
# well under its token limit keeps most operations past validation and into the resolvers.
MAX_DEPTH = 4
MAX_FIELDS = 4
MAX_COMPOSITE_FIELDS = 2
NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*\Z")
SHOWN_CHARS = 3000


@dataclass(frozen=True)
class Operation:
    """A GraphQL request as it will be sent."""

    document: str
    variables: dict[str, Any] = field(default_factory=dict)
    method: str = "POST"

    def body(self) -> str:
        """The JSON body; ASCII-escaped so lone surrogates survive encoding (the server
        must refuse them, not the client)."""
        return json.dumps({"query": self.document, "variables": self.variables},
                          ensure_ascii=True, allow_nan=True)

    def describe(self) -> str:
        """The operation for a failure report (long values cut)."""
        variables = json.dumps(self.variables, ensure_ascii=True, allow_nan=True, default=str)
        if len(variables) > SHOWN_CHARS:
            variables = variables[:SHOWN_CHARS] + f"… ({len(variables)} chars)"
        document = self.document
        if len(document) > SHOWN_CHARS:
            document = document[:SHOWN_CHARS] + f"… ({len(document)} chars)"
        return f"{self.method} /graphql\n{document}\nvariables: {variables}"


def string_literal(value: str) -> str:
    """A GraphQL string literal: JSON's escapes are a subset of GraphQL's."""
    return json.dumps(value, ensure_ascii=True)


def literal(value: Any, type_: Any = None) -> str:
    """Render a value as a GraphQL literal, using the expected type for enums and objects."""
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList) and not isinstance(value, list):
        return literal(value, inner.of_type)  # a bare item where a list is expected
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else string_literal(str(value))
    if isinstance(value, str):
        bare = isinstance(inner, GraphQLEnumType) and NAME.match(value)
        return value if bare and value not in ("true", "false", "null") else string_literal(value)
    if isinstance(value, list):
        item_type = inner.of_type if isinstance(inner, GraphQLList) else None
        return "[" + ", ".join(literal(item, item_type) for item in value) + "]"
    if isinstance(value, dict):
        fields = inner.fields if isinstance(inner, GraphQLInputObjectType) else {}
        parts = [f"{key}: {literal(item, fields[key].type if key in fields else None)}"
                 for key, item in value.items() if NAME.match(key)]
        return "{" + ", ".join(parts) + "}"
    return string_literal(str(value))


def _is_required(argument: GraphQLArgument) -> bool:
    return isinstance(argument.type, GraphQLNonNull) and not has_default(argument)


@st.composite
def chosen_arguments(draw: st.DrawFn, arguments: dict[str, GraphQLArgument],
                     optional_odds: int) -> dict[str, GraphQLInputType]:
    """Required arguments (rarely left out) and some optional ones (1 in `optional_odds`)."""
    chosen: dict[str, GraphQLInputType] = {}
    for name, argument in arguments.items():
        if _is_required(argument):
            keep = draw(st.integers(0, 24)) != 24
        else:
            keep = draw(st.integers(1, optional_odds)) == 1
        if keep:
            chosen[name] = argument.type
    return chosen


@st.composite
def hostile_arguments(draw: st.DrawFn, names: list[str]) -> set[str]:
    """Which arguments get hostile values: one (most often), none, or all of them."""
    if not names:
        return set()
    mode = draw(st.sampled_from(("one", "one", "none", "all")))
    if mode == "one":
        return {draw(st.sampled_from(names))}
    return set(names) if mode == "all" else set()


@st.composite
def literal_arguments(draw: st.DrawFn, arguments: dict[str, GraphQLArgument],
                      pools: Pools) -> str:
    """`(name: literal, …)` for a nested field, or "" when no argument is chosen."""
    chosen = draw(chosen_arguments(arguments, optional_odds=3))
    parts = []
    for name, type_ in chosen.items():
        hostile = draw(st.integers(0, 5)) == 5
        value = draw(input_value(type_, pools, hostile, hint=name))
        parts.append(f"{name}: {literal(value, type_)}")
    return f"({', '.join(parts)})" if parts else ""


@st.composite
def selection_set(draw: st.DrawFn, type_: GraphQLOutputType, schema: GraphQLSchema,
                  pools: Pools, depth: int) -> str:
    """The `{ … }` for a return type; "" for scalars and enums."""
    named = get_named_type(type_)
    if is_leaf_type(named):
        return ""
    if isinstance(named, GraphQLUnionType):
        members = draw(st.lists(st.sampled_from(named.types), min_size=1, unique_by=_name))
        parts = [f"... on {member.name} {draw(object_selection(member, schema, pools, depth))}"
                 for member in members]
        return "{ __typename " + " ".join(parts) + " }"
    if isinstance(named, GraphQLInterfaceType):
        own = draw(object_selection(named, schema, pools, depth))
        possible = list(schema.get_possible_types(named))
        members = draw(st.lists(st.sampled_from(possible), max_size=2, unique_by=_name)
                       if possible else st.just([]))
        parts = [f"... on {member.name} {draw(object_selection(member, schema, pools, depth))}"
                 for member in members]
        return "{ __typename " + own[1:-1] + " ".join(parts) + " }"
    assert isinstance(named, GraphQLObjectType), named
    return str(draw(object_selection(named, schema, pools, depth)))


def _name(type_: Any) -> str:
    return str(type_.name)


@st.composite
def object_selection(draw: st.DrawFn, type_: GraphQLObjectType | GraphQLInterfaceType,
                     schema: GraphQLSchema, pools: Pools, depth: int) -> str:
    """A few fields of an object or interface, with arguments and nested selections."""
    leaves = [name for name, f in type_.fields.items() if is_leaf_type(get_named_type(f.type))]
    composites = [name for name in type_.fields if name not in leaves]
    picked = draw(st.lists(st.sampled_from(leaves), max_size=MAX_FIELDS, unique=True)
                  if leaves else st.just([]))
    if depth < MAX_DEPTH and composites:
        picked += draw(st.lists(st.sampled_from(composites), max_size=MAX_COMPOSITE_FIELDS,
                                unique=True))
    parts = []
    for name in picked:
        child = type_.fields[name]
        arguments = draw(literal_arguments(child.args, pools))
        nested = draw(selection_set(child.type, schema, pools, depth + 1))
        parts.append(f"{name}{arguments} {nested}".strip())
    if not parts or draw(st.integers(0, 4)) == 0:
        parts.append("__typename")
    return "{ " + " ".join(parts) + " }"


@st.composite
def operations(draw: st.DrawFn, schema: GraphQLSchema, kind: str, field_name: str,
               pools: Pools) -> Operation:
    """One `query`/`mutation` calling `field_name` with drawn arguments and selections."""
    root = schema.query_type if kind == "query" else schema.mutation_type
    assert root is not None
    root_field = root.fields[field_name]
    chosen = draw(chosen_arguments(root_field.args, optional_odds=2))
    hostile = draw(hostile_arguments(list(chosen)))
    as_variables = draw(st.booleans())
    definitions, arguments, variables = [], [], {}
    for name, type_ in chosen.items():
        value = draw(input_value(type_, pools, name in hostile, hint=name))
        if as_variables:
            definitions.append(f"${name}: {type_}")
            arguments.append(f"{name}: ${name}")
            variables[name] = value
        else:
            arguments.append(f"{name}: {literal(value, type_)}")
    header = f"{kind} Fuzz" + (f"({', '.join(definitions)})" if definitions else "")
    call = field_name + (f"({', '.join(arguments)})" if arguments else "")
    selection = draw(selection_set(root_field.type, schema, pools, depth=1))
    operation = Operation(f"{header} {{ {call} {selection} }}", variables)
    if kind == "query" and len(operation.body()) < 1500 and draw(st.integers(0, 4)) == 0:
        return Operation(operation.document, operation.variables, method="GET")
    return operation
