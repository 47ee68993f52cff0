"""Classes of GraphQL types taken from the running schema, and the request's Source nodes.

The modules of api.types import one another one way only: source > optimization and
source > graph > processing (nodes and enums below them all). A resolver of a lower module
that has to build an object of a higher module's type (a fragment's or a run's Source, a
coverage's Source) takes the class from the schema instead of importing it.
"""

from __future__ import annotations

from typing import Any

import strawberry

from api.loaders import PENDING, loaded


def node_class(info: strawberry.Info, name: str) -> Any:
    """The Python class behind the GraphQL object type `name` of the executing schema.

    Why from the schema: importing the class would point an import upward and close a cycle
    between the api.types modules. The schema is the registry that `strawberry.lazy`
    annotations already rely on to find these classes, so it always holds the same class
    objects the modules define (Schema.get_type_by_name is a cached dictionary lookup)."""
    definition = info.schema.get_type_by_name(name)
    if definition is None:  # pragma: no cover - a misspelt name, caught by any test
        raise LookupError(f"no GraphQL type {name!r} in the schema")
    return definition.origin  # type: ignore[union-attr]


def source_node(info: strawberry.Info, source_id: int) -> Any:
    """The Source of `source_id` through the request's loader: the object itself when the
    loader already holds its row, else an awaitable of it."""
    loaders = info.context.loaders
    source = node_class(info, "Source")
    key = (source, source_id)
    node = loaders.objects.get(key)
    if node is None:
        row = loaded(loaders.source, source_id)
        if row is PENDING:
            return _load_source(loaders, source, source_id)
        node = loaders.objects[key] = source.from_row(row)
    return node


async def _load_source(loaders: Any, source: Any, source_id: int) -> Any:
    node = source.from_row(await loaders.source.load(source_id))
    loaders.objects[(source, source_id)] = node
    return node
