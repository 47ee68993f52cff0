"""Every root field of the served schema, fuzzed: no 5xx, no masked or leaked internal error.

The fields come from an introspection of the schema at collection time, so a new query or
mutation is fuzzed without touching this file. Examples per field come from
MMOS_FUZZ_EXAMPLES (default 20: the whole suite in well under a minute); the seeded test draws
six times as many over all fields. A failure shows the operation, the answer and the server's
traceback, plus a `@reproduce_failure` blob; `--hypothesis-seed=<n>` fixes the draws, and a
larger MMOS_FUZZ_EXAMPLES makes a longer hunt.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzz.discovery import cursor_orders, discovered_schema, node_types, root_fields
from tests.support.fuzz.operations import operations
from tests.support.fuzz.oracle import FuzzClient
from tests.support.fuzz.scalars import Pools

EXAMPLES = int(os.environ.get("MMOS_FUZZ_EXAMPLES", "20"))
SEEDED_EXAMPLES = EXAMPLES * 6

LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
QUERY_FIELDS = root_fields("query")
MUTATION_FIELDS = root_fields("mutation")
ROOT_FIELDS = [("mutation", name) for name in MUTATION_FIELDS] + [
    ("query", name) for name in QUERY_FIELDS]


def fuzz_settings(examples: int) -> Any:
    """Bounded, no example database in the tree, no per-example deadline (DB round trips)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def test_discovery_finds_the_root_fields_and_node_types_of_the_served_schema() -> None:
    # Given the schema Strawberry serves
    from api.schema import schema

    served = schema._schema
    assert served.query_type is not None and served.mutation_type is not None
    # Then the fuzzer sees exactly its root fields, and the core ones are among them
    assert set(QUERY_FIELDS) == set(served.query_type.fields)
    assert set(MUTATION_FIELDS) == set(served.mutation_type.fields)
    assert {"sources", "fragments", "node", "budget"} <= set(QUERY_FIELDS)
    assert {"createSource", "startMultiModelProcessing"} <= set(MUTATION_FIELDS)
    assert {"Source", "Fragment", "Batch", "Run"} <= set(node_types())


@fuzz_settings(EXAMPLES * 10)
@given(data=st.data())
def test_drawn_operations_are_well_formed_graphql(data: st.DataObject) -> None:
    # Given any drawn operation on any root field
    kind, field_name = data.draw(st.sampled_from(ROOT_FIELDS))
    pools = Pools(node_types=node_types(), names=("rules-fast",), cursor_orders=cursor_orders())
    operation = data.draw(operations(discovered_schema(), kind, field_name, pools))
    # Then it parses (the fuzzer spends its budget on the server, not on syntax errors),
    # except where a lone surrogate escape is sent on purpose
    if not LONE_SURROGATE_ESCAPE.search(operation.document):
        parse(operation.document)


@pytest.mark.parametrize("field_name", QUERY_FIELDS)
@fuzz_settings(EXAMPLES)
@given(data=st.data())
async def test_query_field_answers_any_arguments_and_selection(
        fuzz_client: FuzzClient, empty_pools: Pools, field_name: str, data: st.DataObject
) -> None:
    # Given an operation on this field with drawn arguments and a drawn selection set
    operation = data.draw(operations(discovered_schema(), "query", field_name, empty_pools))
    # When it is sent / Then the answer is a handled one
    await fuzz_client.check(operation)


@pytest.mark.parametrize("field_name", MUTATION_FIELDS)
@fuzz_settings(EXAMPLES)
@given(data=st.data())
async def test_mutation_field_answers_any_input_and_selection(
        fuzz_client: FuzzClient, empty_pools: Pools, field_name: str, data: st.DataObject
) -> None:
    # Given an empty database and a drawn mutation on this field
    operation = data.draw(operations(discovered_schema(), "mutation", field_name, empty_pools))
    # When it is sent / Then the answer is a handled one (errors are data, never a crash)
    await fuzz_client.check(operation)


@fuzz_settings(SEEDED_EXAMPLES)
@given(data=st.data())
async def test_any_operation_on_seeded_rows_answers_without_crashing(
        fuzz_client: FuzzClient, seeded_pools: Pools, data: st.DataObject
) -> None:
    # Given sources processed by the offline models, with tags and relationships, and IDs
    # and names of those rows mixed into the drawn values
    kind, field_name = data.draw(st.sampled_from(ROOT_FIELDS))
    operation = data.draw(operations(discovered_schema(), kind, field_name, seeded_pools))
    # When it is sent / Then the answer is a handled one
    await fuzz_client.check(operation)
