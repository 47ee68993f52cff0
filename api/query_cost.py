"""Query cost: an upper estimate of the objects an operation can produce, before it runs.

The depth, token and alias limits bound a document's size, not its answer: twelve levels of
`first: 100` pages are a million objects from a two-line query. `estimate_nodes` walks the
operation the way graphql-core will execute it (fields merged by response key, named and
inline fragments spread where their type condition applies, `@skip`/`@include` honoured,
variables and argument defaults resolved) and multiplies list sizes down the tree:

- every object (a field of object, interface or union type) counts 1 per instance; scalars,
  enums and `__typename` count nothing;
- a connection's `edges` (a field of a type with `edges` and `pageInfo`) are as many as the
  connection field's `first` or `last`, clamped to 0..100 (the pagination maximum: more is
  refused by the resolver), else the default page (20);
- a list field with an integer `first`/`last` argument has that many items; one with a list
  `ids` argument (`nodes`) has one per id;
- any other list field of objects has `list_size` items (MMOS_QUERY_COST_LIST_SIZE, 10);
- a field of interface or union type costs what its most expensive possible type selects.

A subscription is estimated per event. The estimate is an upper bound for every list whose
size is known (pages, `first`, `ids`) and a configurable guess for the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
    is_object_type,
    value_from_ast_untyped,
)
from graphql.pyutils import Undefined

from db.keyset import DEFAULT_PAGE, MAX_PAGE

DEFAULT_LIST_SIZE = 10
# Distinct (selection, type) pairs weighed per operation; a document needing more is refused.
MAX_STEPS = 100_000


class TooComplexToEstimate(Exception):
    """The document has more distinct selections than `MAX_STEPS`."""


@dataclass(frozen=True)
class Estimate:
    nodes: int
    operation: str  # query, mutation or subscription


def estimate_nodes(schema: GraphQLSchema, document: DocumentNode,
                   variables: Mapping[str, Any] | None = None,
                   operation_name: str | None = None, *,
                   list_size: int = DEFAULT_LIST_SIZE) -> Estimate | None:
    """The objects the operation can produce (per event for a subscription); None when the
    document has no such operation (validation reports that)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    estimator = _Estimator(schema, document, operation, variables, list_size)
    return Estimate(estimator.cost((operation.selection_set,), root, None),
                    operation.operation.value)


class _Estimator:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode,
                 operation: OperationDefinitionNode, variables: Mapping[str, Any] | None,
                 list_size: int) -> None:
        self.schema = schema
        self.list_size = list_size
        self.fragments = {d.name.value: d for d in document.definitions
                          if isinstance(d, FragmentDefinitionNode)}
        # Variable defaults, then the values sent (graphql-core coerces them later; a value it
        # will refuse is only ever read here as "not an int", i.e. the default page).
        values: dict[str, Any] = {}
        for definition in operation.variable_definitions or ():
            if definition.default_value is not None:
                values[definition.variable.name.value] = value_from_ast_untyped(
                    definition.default_value)
        if isinstance(variables, Mapping):
            values.update(variables)
        self.variables = values
        self.memo: dict[tuple[tuple[int, ...], str, int | None], int] = {}
        self.steps = 0
        self.query_type = schema.query_type

    # --- cost -------------------------------------------------------------------------------

    def cost(self, selection_sets: tuple[SelectionSetNode, ...], parent: GraphQLNamedType,
             page: int | None) -> int:
        """The objects below one instance of `parent` selected by `selection_sets`."""
        if is_abstract_type(parent):
            return max((self._object_cost(selection_sets, possible, page)
                        for possible in self.schema.get_possible_types(parent)),  # type: ignore[arg-type]
                       default=0)
        if is_object_type(parent):
            return self._object_cost(selection_sets, parent, page)  # type: ignore[arg-type]
        return 0

    def _object_cost(self, selection_sets: tuple[SelectionSetNode, ...],
                     parent: GraphQLObjectType, page: int | None) -> int:
        key = (tuple(id(s) for s in selection_sets), parent.name, page)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TooComplexToEstimate
        total = 0
        for nodes in self._collect(selection_sets, parent).values():
            field = self._field(parent, nodes[0].name.value)
            if field is not None:
                total += self._field_cost(field, nodes, parent, page)
        self.memo[key] = total
        return total

    def _field_cost(self, field: GraphQLField, nodes: list[FieldNode],
                    parent: GraphQLObjectType, page: int | None) -> int:
        kind: Any = field.type
        count, outermost = 1, True
        while isinstance(kind, GraphQLNonNull | GraphQLList):
            if isinstance(kind, GraphQLList):
                count *= (self._list_size(field, nodes[0], parent, page) if outermost
                          else self.list_size)
                outermost = False
            kind = kind.of_type
        if is_leaf_type(kind):
            return 0
        child_page = self._page_size(field, nodes[0]) if _is_connection(kind) else None
        selection_sets = tuple(n.selection_set for n in nodes if n.selection_set is not None)
        return count * (1 + self.cost(selection_sets, kind, child_page))

    def _list_size(self, field: GraphQLField, node: FieldNode, parent: GraphQLObjectType,
                   page: int | None) -> int:
        if page is not None and _is_connection(parent) and node.name.value in ("edges", "nodes"):
            return page
        for name in ("first", "last"):
            value = self._argument(field, node, name)
            if _is_int(value):
                return max(int(value), 0)
        ids = self._argument(field, node, "ids")
        if isinstance(ids, list):
            return len(ids)
        return self.list_size

    def _page_size(self, field: GraphQLField, node: FieldNode) -> int:
        sizes = [int(value) for value in (self._argument(field, node, "first"),
                                          self._argument(field, node, "last"))
                 if _is_int(value)]
        if not sizes:
            return DEFAULT_PAGE
        return min(max(max(sizes), 0), MAX_PAGE)

    # --- the document, as graphql-core reads it --------------------------------------------

    def _collect(self, selection_sets: Sequence[SelectionSetNode],
                 runtime_type: GraphQLObjectType) -> dict[str, list[FieldNode]]:
        """The fields selected on `runtime_type`, by response key (graphql-core's
        CollectFields: each named fragment spread once, type conditions applied)."""
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        stack = [iter(s.selections) for s in reversed(selection_sets)]
        while stack:
            selection = next(stack[-1], None)
            if selection is None:
                stack.pop()
                continue
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, runtime_type):
                    stack.append(iter(selection.selection_set.selections))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if name in visited or fragment is None:
                    continue
                visited.add(name)
                if self._applies(fragment.type_condition, runtime_type):
                    stack.append(iter(fragment.selection_set.selections))
        return fields

    def _applies(self, condition: NamedTypeNode | None, runtime_type: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        conditional = self.schema.get_type(condition.name.value)
        if conditional is runtime_type:
            return True
        return is_abstract_type(conditional) and self.schema.is_sub_type(
            conditional, runtime_type)  # type: ignore[arg-type]

    def _included(self, selection: Any) -> bool:
        """False only when `@skip(if: true)` or `@include(if: false)` certainly applies."""
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next((a.value for a in directive.arguments or ()
                              if a.name.value == "if"), None)
            value = (value_from_ast_untyped(condition, self.variables)
                     if condition is not None else Undefined)
            if (name == "skip" and value is True) or (name == "include" and value is False):
                return False
        return True

    def _field(self, parent: GraphQLObjectType, name: str) -> GraphQLField | None:
        if name == "__typename":
            return TypeNameMetaFieldDef
        if parent is self.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        return parent.fields.get(name)

    def _argument(self, field: GraphQLField, node: FieldNode, name: str) -> Any:
        definition = field.args.get(name)
        if definition is None:
            return Undefined
        for argument in node.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self.variables)
        return definition.default_value


def _is_connection(kind: Any) -> bool:
    """A Relay connection type: its `edges` are one page."""
    return is_object_type(kind) and "edges" in kind.fields and "pageInfo" in kind.fields


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def refusal_message(estimate: Estimate, limit: int) -> str:
    return (f"this {estimate.operation} could produce about {estimate.nodes} objects, more "
            f"than the limit of {limit} (MMOS_MAX_QUERY_NODES): ask for smaller pages "
            f"(first/last) or fewer nested lists")
