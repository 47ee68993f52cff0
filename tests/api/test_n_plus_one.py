"""A nested page costs the same number of SQL statements whatever its size (DataLoaders)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from db.tables import FragmentTagRow, RelationshipRow, TagRow, VerificationEventRow
from tests.support.graph_data import seed_source

NESTED = """
query Nested($n: Int!) {
  sources(first: $n) {
    totalCount
    edges { node {
      sourceCode
      processingSummary { runCount fragmentCount totalCostUsd }
      fragments(first: $n) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { node {
          fragmentCode verificationStatus
          source { sourceCode }
          batch { model }
          tags { name usageCount }
          relationships { direction relationship { relationshipType }
                          otherFragment { fragmentCode source { sourceCode } } }
          verificationHistory { decision reviewer }
        } }
      }
    } }
  }
}
"""


@contextmanager
def counted_statements(runtime: Any) -> Iterator[list[str]]:
    """Every SQL statement sent through the runtime's engine while the block runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


async def _graph(runtime: Any, sources: int, per_source: int) -> None:
    """Sources whose fragments all carry two tags, a decision, and a link to a fragment of an
    older source (never on the page, so the linked fragments' sources always need loading)."""
    hub = await seed_source(runtime, [f"Hub fragment {i} about work." for i in range(3)])
    seeded = [await seed_source(runtime, [f"Fragment {s}-{f} about trust." for f in
                                          range(per_source)]) for s in range(sources)]
    fragment_ids = [fid for item in seeded for fid in item.fragment_ids]
    async with runtime.transaction() as session:
        tags = (await session.execute(sa.insert(TagRow).values(
            [{"name": "trust"}, {"name": "work", "category": "theme"}])
            .returning(TagRow.__table__.c.id))).scalars().all()  # type: ignore[attr-defined]
        await session.execute(sa.insert(FragmentTagRow).values(
            [{"fragment_id": f, "tag_id": t} for f in fragment_ids for t in tags]))
        await session.execute(sa.insert(RelationshipRow).values(
            [{"fragment_id": f, "related_fragment_id": hub.fragment_ids[i % 3],
              "relationship_type": "supports"} for i, f in enumerate(fragment_ids)]))
        await session.execute(sa.insert(VerificationEventRow).values(
            [{"fragment_id": f, "decision": "verified", "previous_status": "unverified",
              "reviewer": "ana"} for f in fragment_ids]))


async def _statements_for(gql: Any, runtime: Any, n: int) -> tuple[int, dict[str, Any]]:
    with counted_statements(runtime) as statements:
        body = await gql(NESTED, {"n": n})
    return len(statements), body["data"]["sources"]


async def test_nested_page_statement_count_does_not_grow_with_page_size(gql: Any,
                                                                         db: Any) -> None:
    # Given
    await _graph(db, sources=50, per_source=50)
    # When
    small_count, small = await _statements_for(gql, db, 5)
    large_count, large = await _statements_for(gql, db, 50)
    # Then: the pages really are 25 and 2,500 fragments deep, fully resolved
    assert len(small["edges"]) == 5 and len(large["edges"]) == 50
    fragments = [f["node"] for s in large["edges"] for f in s["node"]["fragments"]["edges"]]
    assert len(fragments) == 2500
    assert all(len(f["tags"]) == 2 and f["verificationHistory"] for f in fragments)
    assert all(f["relationships"][0]["otherFragment"]["source"] for f in fragments)
    assert small_count == large_count
    assert large_count <= 12


async def test_later_pages_of_a_source_use_the_cursor(gql: Any, db: Any) -> None:
    # Given
    await _graph(db, sources=2, per_source=7)
    first = (await gql(NESTED, {"n": 5}))["data"]["sources"]["edges"][0]["node"]
    cursor = first["fragments"]["pageInfo"]["endCursor"]
    # When
    rest = (await gql("""query($after: String) { sources(first: 1) { edges { node {
        fragments(first: 5, after: $after) { totalCount pageInfo { hasNextPage }
                                             edges { node { fragmentCode } } } } } } }""",
                      {"after": cursor}))["data"]["sources"]["edges"][0]["node"]["fragments"]
    # Then
    seen = [e["node"]["fragmentCode"] for e in first["fragments"]["edges"]]
    later = [e["node"]["fragmentCode"] for e in rest["edges"]]
    assert len(seen) == 5 and len(later) == 2 and not set(seen) & set(later)
    assert first["fragments"]["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"]
    assert rest["totalCount"] == 7


PAGE = """query($n: Int!) { fragments(first: $n, orderBy: {field: CREATED_AT, direction: ASC}) {
    edges { node { id fragmentCode source { id sourceCode } } } } }"""


async def test_a_fragments_page_loads_its_sources_in_one_statement(gql: Any, db: Any) -> None:
    # Given: fragments of three sources
    for s in range(3):
        await seed_source(db, [f"Fragment {s}-{f} about trust." for f in range(4)])
    # When
    with counted_statements(db) as statements:
        page = (await gql(PAGE, {"n": 12}))["data"]["fragments"]["edges"]
    with counted_statements(db) as without_sources:
        await gql("{ fragments(first: 12) { edges { node { fragmentCode } } } }")
    # Then: the page and its sources, nothing per fragment (no COUNT: totalCount not asked)
    assert len(page) == 12 and len({edge["node"]["source"]["id"] for edge in page}) == 3
    assert all(edge["node"]["source"]["sourceCode"] for edge in page)
    assert len([s for s in statements if "FROM fragments" in s]) == 1
    assert len([s for s in statements if "FROM sources" in s]) == 1
    assert len(statements) == 2 and len(without_sources) == 1
