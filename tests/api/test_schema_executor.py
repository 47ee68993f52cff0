"""The executor's short path for scalar fields answers exactly like graphql-core's own path:
same data, same errors at the same paths, for plain values and for every odd one."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import pytest
import strawberry
from strawberry import relay
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.schema_executor import ScalarFastPathExecutor


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item(relay.Node):
    id: relay.NodeID[int]
    name: str
    nickname: str | None
    count: int
    ratio: float
    active: bool
    colour: Colour
    when: dt.datetime
    price: Decimal
    extra: strawberry.scalars.JSON
    strict_name: str  # set to None or to a wrong value by the tests

    @strawberry.field
    def computed(self) -> str:
        return self.name.upper()


@strawberry.type
class Renamed(relay.Node):
    """A Node that resolves its own ids: relay's resolver must keep answering for it."""

    id: relay.NodeID[int]

    @classmethod
    def resolve_id(cls, root: Renamed, *, info: strawberry.Info) -> str:
        return f"custom-{root.id}"


def _items() -> list[Item]:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    plain = Item(id=1, name="one", nickname=None, count=3, ratio=0.5, active=True,
                 colour=Colour.RED, when=when, price=Decimal("1.25"), extra={"a": [1]},
                 strict_name="fine")
    missing = Item(id=2, name="two", nickname="deux", count=-4, ratio=2.0, active=False,
                   colour=Colour.BLUE, when=when, price=Decimal("0"), extra=None,
                   strict_name=None)  # type: ignore[arg-type]
    wrong = Item(id=3, name="three", nickname=["a list"], count=2**40,  # type: ignore[arg-type]
                 ratio=float("nan"), active=True, colour="green",  # type: ignore[arg-type]
                 when=when, price=Decimal("2"), extra=[], strict_name=ValueError("boom"))  # type: ignore[arg-type]
    return [plain, missing, wrong]


async def _later(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _items()

    @strawberry.field
    def item(self) -> Item | None:
        return _items()[0]

    @strawberry.field
    async def later(self) -> Item:
        item = _items()[0]
        item.nickname = _later("soon")  # type: ignore[assignment]
        return item

    @strawberry.field
    def renamed(self) -> list[Renamed]:
        return [Renamed(id=7)]


FIELDS = "id name nickname count ratio active colour when price extra computed __typename"
QUERIES = [
    "{ item { " + FIELDS + " strictName } }",
    "{ items { " + FIELDS + " } }",
    "{ items { strictName } }",
    "{ items { name strictName } }",
    "{ items { a: name b: name name } }",
    "{ items { ...F } } fragment F on Item { count name ... on Item { id } }",
    "{ later { name nickname } }",
    "{ renamed { id __typename } }",
    "{ nodes(ids: []) { id } }",
]


def _schema(executor: type | None, extensions: list[Any] | None = None) -> strawberry.Schema:
    @strawberry.type
    class Root(Query):
        nodes: list[relay.Node | None] = relay.node()

    return strawberry.Schema(query=Root, types=[Item, Renamed], extensions=extensions or [],
                             execution_context_class=executor)


def _answer(result: Any) -> tuple[Any, list[tuple[str, Any]]]:
    errors = [(error.message, error.path) for error in result.errors or []]
    return result.data, errors


@pytest.mark.parametrize("query", QUERIES)
async def test_the_short_path_answers_like_graphql_core(query: str) -> None:
    # Given
    reference = _schema(StrawberryGraphQLCoreExecutionContext)
    fast = _schema(ScalarFastPathExecutor)
    # When
    expected = _answer(await reference.execute(query))
    got = _answer(await fast.execute(query))
    # Then
    assert got == expected
    assert repr(got[0]) == repr(expected[0])  # same order of keys, same value types


async def test_the_odd_values_are_errors_located_on_their_fields() -> None:
    schema = _schema(ScalarFastPathExecutor)
    # When
    data, errors = _answer(await schema.execute("{ items { name nickname } }"))
    colour, colour_errors = _answer(await schema.execute("{ items { colour } }"))
    strict, strict_errors = _answer(await schema.execute("{ items { strictName } }"))
    # Then: a nullable field fails alone, the rest of its object is answered
    assert data == {"items": [{"name": "one", "nickname": None},
                              {"name": "two", "nickname": "deux"},
                              {"name": "three", "nickname": None}]}
    assert [(tuple(path), "String cannot represent value" in message)
            for message, path in errors] == [(("items", 2, "nickname"), True)]
    # and an error in a non-null field nulls the parents, as the specification says
    assert colour is None
    assert colour_errors == [("Enum 'Colour' cannot represent value: 'green'",
                              ["items", 2, "colour"])]
    assert strict is None
    assert [tuple(path) for _, path in strict_errors] == [("items", 1, "strictName")]
    assert "Cannot return null for non-nullable field Item.strictName" in strict_errors[0][0]


async def test_relay_ids_are_the_ones_relay_gives() -> None:
    # When
    data, errors = _answer(await _schema(ScalarFastPathExecutor).execute(
        "{ items { id } renamed { id } }"))
    # Then
    assert not errors
    assert [i["id"] for i in data["items"]] == [
        str(relay.GlobalID("Item", str(n))) for n in (1, 2, 3)]
    assert data["renamed"] == [{"id": str(relay.GlobalID("Renamed", "custom-7"))}]


async def test_resolve_hooks_of_extensions_still_see_every_field() -> None:
    # Given: an extension that wraps every resolver
    seen: list[str] = []

    class Spy(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    schema = _schema(ScalarFastPathExecutor, extensions=[Spy])
    # When
    await schema.execute("{ item { id name count } }")
    # Then
    assert seen == ["item", "id", "name", "count"]


def test_the_application_schema_uses_the_short_path() -> None:
    from api.schema import schema

    assert schema.execution_context_class is ScalarFastPathExecutor
