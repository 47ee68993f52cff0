"""GraphQL execution with a short path for plain scalar fields.

graphql-core resolves every field the same way: a path, a resolve-info tuple, the resolver
call, awaitable checks and value completion. For the scalars of a page of objects (a
hundred fragments with twenty-odd fields each) that machinery costs far more than the
values. Here two kinds of scalar and enum fields are read and coerced directly:

- fields without a resolver, arguments or extensions (Strawberry's "basic" fields);
- relay Node ids where relay's own resolution applies (type name and NodeID attribute).

Anything else, and every value that is not plainly valid (null for a non-null field, an
exception, an awaitable, a value the scalar refuses, an object relay would resolve
differently), goes through graphql-core's own path, which then answers, raises or reports
exactly as it does without the short path. With middleware (a schema extension that wraps
resolvers) nothing is shortened.
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
import uuid
from decimal import Decimal
from typing import Any

from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, is_leaf_type
from graphql.pyutils import Path, Undefined
from strawberry import relay
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Reader = Any  # source object -> value
# A selection set's plan: (response name, (reader, coercion, non-null) or None) in selection
# order; None for the whole plan when no field of the set can be read directly.
Plan = list[tuple[str, tuple[Reader, Any, bool] | None]] | None

_MAX_PLANS = 2000  # per operation: selection sets are few, this only bounds odd documents
_PENDING = object()
# Values of these classes are neither exceptions nor awaitables: no need to ask each one.
_PLAIN: dict[type, bool] = {cls: True for cls in (
    str, int, float, bool, dt.datetime, dt.date, dt.time, Decimal, uuid.UUID)}


def _plain(cls: type) -> bool:
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = issubclass(cls, enum.Enum) and "__getattr__" not in vars(cls)
    return plain


class _Unread(Exception):
    """A reader's answer when it cannot read the object: graphql-core resolves the field."""


_UNREAD = _Unread()
_NODE_ID = relay.Node.__dict__["_id"].__func__
_NODE_RESOLVE_ID = relay.Node.resolve_id.__func__
_NODE_RESOLVE_TYPENAME = relay.Node.resolve_typename.__func__


def _basic_reader(field_def: GraphQLField, field: Any) -> Reader:
    """A basic field: an attribute getter when Strawberry would only call getattr (the same
    read, in C), else Strawberry's own resolver."""
    if isinstance(field, StrawberryField) and field.default_resolver is getattr:
        return operator.attrgetter(field.python_name)
    resolve = field_def.resolve
    assert resolve is not None
    return lambda source: resolve(source, None)


def _is_node_id(field: Any) -> bool:
    """Whether `field` is relay's `Node.id`, unwrapped (no permissions or extensions)."""
    wrapped = getattr(getattr(field, "base_resolver", None), "wrapped_func", None)
    return (isinstance(field, StrawberryField) and not field.extensions
            and getattr(wrapped, "__func__", None) is _NODE_ID)


def _node_id_reader(type_name: str) -> Reader:
    """What `Node.id` resolves to for a Node keeping relay's resolve_id and resolve_typename:
    the GlobalID of the type's name and the NodeID attribute. Any other object, or an id
    that is not a plain value, is left to the resolver."""
    def read(source: Any) -> Any:
        cls = source.__class__
        if (not isinstance(source, relay.Node)
                or getattr(cls.resolve_id, "__func__", None) is not _NODE_RESOLVE_ID
                or getattr(cls.resolve_typename, "__func__", None)
                is not _NODE_RESOLVE_TYPENAME):
            return _UNREAD
        node_id = getattr(source, cls.resolve_id_attr())
        if node_id is None or not _plain(node_id.__class__):
            return _UNREAD
        return relay.GlobalID(type_name=type_name, node_id=str(node_id))

    return read


class ScalarFastPathExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, reading plain scalar fields without per-field machinery."""

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any,
                       path: Path | None, grouped_field_set: Any,
                       position_context: Any) -> Any:
        plan = self._plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        results: dict[str, Any] = {}
        others: list[str] = []
        is_awaitable = self.is_awaitable
        for name, leaf in plan:
            if leaf is not None:
                read, coerce, non_null = leaf
                value = read(source_value)
                if value is None:
                    if not non_null:
                        results[name] = None
                        continue
                elif _plain(value.__class__) or (not isinstance(value, Exception)
                                                 and not is_awaitable(value)):
                    try:
                        coerced = coerce(value)
                    except Exception:  # graphql-core's path reports it, located
                        coerced = None
                    if coerced is not None and coerced is not Undefined:
                        results[name] = coerced
                        continue
            results[name] = _PENDING  # holds the field's place: answers keep selection order
            others.append(name)
        if not others:
            return results
        completed = super().execute_fields(
            parent_type, source_value, path, {name: grouped_field_set[name] for name in others},
            position_context)

        def merge(done: dict[str, Any]) -> dict[str, Any]:
            for name in others:
                if name in done:
                    results[name] = done[name]
                else:  # not a field of the type: graphql-core leaves it out
                    del results[name]
            return results

        if is_awaitable(completed):
            async def merge_later() -> dict[str, Any]:
                return merge(await completed)

            return merge_later()
        return merge(completed)

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan:
        plans: dict[tuple[Any, int], tuple[Any, Plan]] = self.__dict__.setdefault(
            "_scalar_plans", {})
        key = (parent_type, id(grouped_field_set))
        cached = plans.get(key)
        if cached is not None:
            return cached[1]
        plan = self._build_plan(parent_type, grouped_field_set)
        if len(plans) < _MAX_PLANS:
            # The field set is kept with its plan: its id cannot be reused meanwhile.
            plans[key] = (grouped_field_set, plan)
        return plan

    def _build_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:
            return None  # middleware wraps every resolver: no field is plain
        converter = getattr(getattr(self.schema, "_strawberry_schema", None),
                            "schema_converter", None)
        # Exception handlers wrap resolvers such as Node.id's: those are then left alone.
        node_ids = converter is not None and not getattr(converter, "exception_handlers", ())
        plan: list[tuple[str, tuple[Reader, Any, bool] | None]] = []
        for name, details in grouped_field_set.items():
            node = details[0].node
            field_def = self.schema.get_field(parent_type, node.name.value)
            read = None
            if field_def is not None and not field_def.args and not node.arguments:
                read = self._reader(parent_type, field_def, node_ids)
            if read is None:
                plan.append((name, None))
            else:
                non_null = isinstance(field_def.type, GraphQLNonNull)
                named = field_def.type.of_type if non_null else field_def.type
                plan.append((name, (read, named.coerce_output_value, non_null)))
        return plan if any(leaf is not None for _, leaf in plan) else None

    @staticmethod
    def _reader(parent_type: GraphQLObjectType, field_def: GraphQLField,
                node_ids: bool) -> Reader | None:
        """How to read this field directly, or None when graphql-core must resolve it."""
        return_type = field_def.type
        named = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if not is_leaf_type(named):
            return None
        field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if getattr(field_def.resolve, "_is_default", False):  # Strawberry's basic field
            return _basic_reader(field_def, field)
        if node_ids and _is_node_id(field):
            return _node_id_reader(parent_type.name)
        return None
