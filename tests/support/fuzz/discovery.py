"""The schema as a client sees it: built from an introspection of `api.schema.schema`."""

from __future__ import annotations

from functools import cache

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLSchema,
    Undefined,
    build_client_schema,
    print_ast,
)


def has_default(argument: GraphQLArgument | GraphQLInputField) -> bool:
    """Whether an argument or input field declares a default (a client schema keeps it as a
    literal in `default`, not in `default_value`)."""
    return getattr(argument, "default", None) is not None or (
        argument.default_value is not Undefined)


def default_of(argument: GraphQLArgument | GraphQLInputField) -> str:
    """The declared default as GraphQL source text ("" when none)."""
    default = getattr(argument, "default", None)
    if default is not None and default.literal is not None:
        return print_ast(default.literal)
    return "" if argument.default_value is Undefined else str(argument.default_value)


@cache
def discovered_schema() -> GraphQLSchema:
    """The served schema rebuilt from its introspection result (new fields appear by
    themselves)."""
    from api.schema import schema

    return build_client_schema(schema.introspect())  # type: ignore[arg-type]


def root_fields(kind: str) -> list[str]:
    """Names of the root fields of `query` or `mutation`, sorted."""
    schema = discovered_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    return sorted(root.fields) if root is not None else []


def node_types() -> tuple[str, ...]:
    """Types implementing the Relay `Node` interface (the kinds a global ID can name)."""
    schema = discovered_schema()
    node = schema.get_type("Node")
    if not isinstance(node, GraphQLInterfaceType):
        return ()
    return tuple(sorted(t.name for t in schema.get_possible_types(node)))


def cursor_orders() -> tuple[str, ...]:
    """Orderings a keyset cursor may name: every `…OrderField` value with each direction, the
    default orderings of `…Order` inputs (weighted: lists use them when no order is given) and
    the search ranking. Forged cursors that parse get as far as the SQL."""
    schema = discovered_schema()
    values = {value for name, type_ in schema.type_map.items()
              if name.endswith("OrderField") and isinstance(type_, GraphQLEnumType)
              for value in type_.values}
    defaults = []
    for name, type_ in schema.type_map.items():
        if name.endswith("Order") and isinstance(type_, GraphQLInputObjectType):
            field, direction = type_.fields.get("field"), type_.fields.get("direction")
            if field is not None and direction is not None:
                defaults.append(f"{default_of(field)}:{default_of(direction)}")
    every = [f"{value}:{way}" for value in sorted(values) for way in ("ASC", "DESC")]
    return (*(defaults * 6), *every, "RANK")
