"""A nested page costs the same number of SQL statements whatever its size (DataLoaders)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from db.tables import FragmentTagRow, RelationshipRow, TagRow, VerificationEventRow
from tests.support.database import counted_statements
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


CONTENT_PAGE = """
query Page($n: Int!, $withContent: Boolean!) {
  sources(first: $n) { edges { node { sourceCode content @include(if: $withContent) } } }
  fragments(first: $n) { edges { node { fragmentCode
    source { title content @include(if: $withContent) } } } }
}
"""


def _reads_content(statements: list[str]) -> bool:
    """Whether a statement reads the sources' text column (not its sha256)."""
    return any(re.search(r"\bsources\.content\b(?!_)", statement) for statement in statements)


async def test_pages_read_source_text_only_when_it_is_selected(gql: Any, db: Any) -> None:
    # Given: sources holding a megabyte of text each
    seeded = [await seed_source(db, [f"Fragment {i} about trust."]) for i in range(3)]
    big = "Long text about trust and work. " * 32_000
    async with db.transaction() as session:
        await session.execute(sa.text("UPDATE sources SET content = :c || id"), {"c": big})
    # When: pages of sources and of fragments with their sources, without the text
    with counted_statements(db) as without:
        body = await gql(CONTENT_PAGE, {"n": 10, "withContent": False})
    # Then: no statement reads the content column
    assert len(body["data"]["sources"]["edges"]) == 3
    assert not _reads_content(without), without
    # When: the text is selected
    with counted_statements(db) as with_text:
        body = await gql(CONTENT_PAGE, {"n": 10, "withContent": True})
    # Then: every source carries its own full text, read in one more statement per list
    texts = {edge["node"]["sourceCode"]: edge["node"]["content"]
             for edge in body["data"]["sources"]["edges"]}
    async with db.read() as session:
        stored = dict((await session.execute(sa.text(
            "SELECT source_code, content FROM sources"))).all())
    assert texts == stored
    for edge in body["data"]["fragments"]["edges"]:
        assert edge["node"]["source"]["content"].startswith(big)
    assert _reads_content(with_text)
    assert len(with_text) <= len(without) + 2
    assert len(seeded) == 3
