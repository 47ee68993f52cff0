"""Sources over GraphQL: create, read, page, filter, update, delete, import."""

from __future__ import annotations

from typing import Any

CREATE = """
mutation Create($input: CreateSourceInput!) {
  createSource(input: $input) {
    __typename
    ... on CreateSourcePayload { source { id sourceCode title wordCount charCount contentSha256
                                          sourceType quality extractionPriority status language } }
    ... on ValidationError { message fieldErrors { field path message } }
    ... on Conflict { message field existingId }
    ... on NotFound { message }
  }
}
"""

LIST = """
query List($first: Int, $after: String, $last: Int, $before: String,
           $filter: SourceFilter, $orderBy: SourceOrder) {
  sources(first: $first, after: $after, last: $last, before: $before,
          filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { sourceCode title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def source_input(code: str, **overrides: Any) -> dict[str, Any]:
    data = {
        "sourceCode": code,
        "title": f"Interview {code}",
        "sourceType": "INTERVIEW",
        "content": f"I grew up near the sea ({code}). Because of that, I still swim every day.",
    }
    data.update(overrides)
    return data


async def create(gql: Any, code: str, **overrides: Any) -> dict[str, Any]:
    body = await gql(CREATE, {"input": source_input(code, **overrides)})
    return body["data"]["createSource"]


async def test_created_source_round_trips_with_hash_and_word_count(gql: Any) -> None:
    # When
    result = await create(gql, "INT_001", content="Olá, mundo! Eu adoro café ☕ e o mar.")
    # Then
    assert result["__typename"] == "CreateSourcePayload"
    source = result["source"]
    assert source["wordCount"] == 8
    assert source["charCount"] == len("Olá, mundo! Eu adoro café ☕ e o mar.")
    assert len(source["contentSha256"]) == 64
    assert (source["sourceType"], source["quality"], source["extractionPriority"]) == (
        "INTERVIEW", "PRIMARY", "MEDIUM")
    body = await gql("query($id: ID!) { source(id: $id) { sourceCode } node(id: $id) "
                     "{ ... on Source { title } } }", {"id": source["id"]})
    assert body["data"]["source"]["sourceCode"] == "INT_001"
    assert body["data"]["node"]["title"] == "Interview INT_001"
    by_code = await gql('{ sourceByCode(code: "INT_001") { id } }')
    assert by_code["data"]["sourceByCode"]["id"] == source["id"]


async def test_paging_forwards_and_backwards_neither_skips_nor_repeats(gql: Any) -> None:
    # Given
    codes = [f"SRC_{i:03d}" for i in range(23)]
    for code in codes:
        await create(gql, code)
    order = {"field": "SOURCE_CODE", "direction": "ASC"}
    # When: forwards by 5
    seen, after = [], None
    while True:
        page = (await gql(LIST, {"first": 5, "after": after, "orderBy": order}))["data"]["sources"]
        assert page["totalCount"] == 23
        seen += [edge["node"]["sourceCode"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # Then
    assert seen == codes
    # When: backwards by 4
    back, before = [], None
    while True:
        page = (await gql(LIST, {"last": 4, "before": before, "orderBy": order}))["data"]["sources"]
        back = [edge["node"]["sourceCode"] for edge in page["edges"]] + back
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert back == codes


async def test_default_order_is_newest_first_with_id_tie_breaker(gql: Any) -> None:
    for code in ("A_1", "A_2", "A_3"):
        await create(gql, code)
    page = (await gql(LIST, {"first": 10}))["data"]["sources"]
    assert [e["node"]["sourceCode"] for e in page["edges"]] == ["A_3", "A_2", "A_1"]


async def test_filters_combine_type_quality_priority_language_and_title(gql: Any) -> None:
    await create(gql, "F_1", title="Talk about music", sourceType="PODCAST", language="pt-BR")
    await create(gql, "F_2", title="Music and 100% joy", quality="SECONDARY",
                 extractionPriority="CRITICAL")
    await create(gql, "F_3", title="Other things")

    async def codes(flt: dict[str, Any]) -> list[str]:
        page = (await gql(LIST, {"filter": flt, "orderBy": {"field": "SOURCE_CODE",
                                                            "direction": "ASC"}}))
        return [e["node"]["sourceCode"] for e in page["data"]["sources"]["edges"]]

    assert await codes({"titleContains": "music"}) == ["F_1", "F_2"]
    assert await codes({"titleContains": "100%"}) == ["F_2"]
    assert await codes({"sourceTypes": ["PODCAST"]}) == ["F_1"]
    assert await codes({"qualities": ["SECONDARY"]}) == ["F_2"]
    assert await codes({"priorities": ["CRITICAL", "LOW"]}) == ["F_2"]
    assert await codes({"languages": ["pt-BR"]}) == ["F_1"]
    assert await codes({"statuses": ["PENDING"]}) == ["F_1", "F_2", "F_3"]
    assert await codes({"titleContains": "music", "sourceTypes": ["INTERVIEW"]}) == ["F_2"]


async def test_priority_ordering_puts_critical_first(gql: Any) -> None:
    await create(gql, "P_LOW", extractionPriority="LOW")
    await create(gql, "P_CRIT", extractionPriority="CRITICAL")
    await create(gql, "P_HIGH", extractionPriority="HIGH")
    page = await gql(LIST, {"orderBy": {"field": "PRIORITY", "direction": "DESC"}, "first": 2})
    edges = page["data"]["sources"]["edges"]
    assert [e["node"]["sourceCode"] for e in edges] == ["P_CRIT", "P_HIGH"]
    rest = await gql(LIST, {"orderBy": {"field": "PRIORITY", "direction": "DESC"},
                            "after": edges[-1]["cursor"]})
    assert [e["node"]["sourceCode"] for e in rest["data"]["sources"]["edges"]] == ["P_LOW"]


async def test_duplicate_code_and_duplicate_content_are_conflicts(gql: Any) -> None:
    first = await create(gql, "DUP_1")
    same_code = await create(gql, "DUP_1", content="Something else entirely.")
    assert same_code["__typename"] == "Conflict"
    assert same_code["field"] == "input.sourceCode"
    same_text = await create(gql, "DUP_2")
    same_text = await create(gql, "DUP_3", content=source_input("DUP_1")["content"])
    assert same_text["__typename"] == "Conflict"
    assert same_text["field"] == "input.content"
    assert "sha256" in same_text["message"]
    assert same_text["existingId"] is not None
    total = (await gql(LIST, {}))["data"]["sources"]["totalCount"]
    assert total == 2
    assert first["__typename"] == "CreateSourcePayload"


async def test_invalid_fields_are_reported_together_and_nothing_is_written(gql: Any) -> None:
    result = await create(gql, "bad code!", title="   ", language="english!",
                          url="javascript:alert(1)")
    assert result["__typename"] == "ValidationError"
    fields = {e["field"] for e in result["fieldErrors"]}
    assert fields == {"input.sourceCode", "input.title", "input.language", "input.url"}
    assert (await gql(LIST, {}))["data"]["sources"]["totalCount"] == 0


async def test_oversize_content_is_refused_with_the_limit(gql: Any, settings: Any) -> None:
    big = "a" * (settings.max_content_bytes + 1)
    result = await create(gql, "BIG_1", content=big)
    assert result["__typename"] == "ValidationError"
    assert result["fieldErrors"][0]["field"] == "input.content"
    assert str(settings.max_content_bytes) in result["fieldErrors"][0]["message"]


async def test_update_changes_only_given_fields_and_checks_conflicts(gql: Any) -> None:
    a = (await create(gql, "UPD_1"))["source"]
    await create(gql, "UPD_2")
    mutation = """mutation($input: UpdateSourceInput!) { updateSource(input: $input) {
        __typename ... on UpdateSourcePayload { source { title sourceCode wordCount notes } }
        ... on Conflict { field } ... on ValidationError { fieldErrors { field } }
        ... on NotFound { kind id } } }"""
    ok = await gql(mutation, {"input": {"id": a["id"], "title": "New title", "notes": "n"}})
    assert ok["data"]["updateSource"]["source"] == {
        "title": "New title", "sourceCode": "UPD_1", "wordCount": a["wordCount"], "notes": "n"}
    clash = await gql(mutation, {"input": {"id": a["id"], "sourceCode": "UPD_2"}})
    assert clash["data"]["updateSource"] == {"__typename": "Conflict", "field": "input.sourceCode"}
    empty = await gql(mutation, {"input": {"id": a["id"], "title": ""}})
    assert empty["data"]["updateSource"]["fieldErrors"] == [{"field": "input.title"}]
    missing = await gql(mutation, {"input": {"id": "999999", "title": "x"}})
    assert missing["data"]["updateSource"]["__typename"] == "NotFound"


async def test_delete_removes_the_source(gql: Any) -> None:
    a = (await create(gql, "DEL_1"))["source"]
    mutation = """mutation($id: ID!) { deleteSource(input: {id: $id}) { __typename
        ... on DeleteSourcePayload { deletedId sourceCode } ... on NotFound { message } } }"""
    done = await gql(mutation, {"id": a["id"]})
    assert done["data"]["deleteSource"] == {"__typename": "DeleteSourcePayload",
                                            "deletedId": a["id"], "sourceCode": "DEL_1"}
    again = await gql(mutation, {"id": a["id"]})
    assert again["data"]["deleteSource"]["__typename"] == "NotFound"


IMPORT = """mutation($input: ImportSourcesInput!) { importSources(input: $input) { __typename
    ... on ImportSourcesPayload { count sources { sourceCode } }
    ... on ValidationError { fieldErrors { field message } } } }"""


async def test_import_is_all_or_nothing_with_errors_per_item(gql: Any) -> None:
    await create(gql, "IMP_0")
    bad = await gql(IMPORT, {"input": {"sources": [
        source_input("IMP_1"), source_input("IMP_0", content="fresh text here"),
        source_input("IMP_2", title=""), source_input("IMP_1", content="other text"),
    ]}})
    errors = bad["data"]["importSources"]["fieldErrors"]
    assert {e["field"] for e in errors} == {
        "input.sources.1.sourceCode", "input.sources.2.title", "input.sources.3.sourceCode"}
    assert (await gql(LIST, {}))["data"]["sources"]["totalCount"] == 1
    good = await gql(IMPORT, {"input": {"sources": [source_input("IMP_1"),
                                                    source_input("IMP_2")]}})
    assert good["data"]["importSources"]["count"] == 2


async def test_bad_paging_arguments_are_clear_errors(gql: Any) -> None:
    for variables, field in (({"first": -1}, "first"), ({"first": 101}, "first"),
                             ({"after": "garbage!!"}, "after"),
                             ({"first": 1, "last": 1}, "last"),
                             ({"before": "eyJvIjoiWCIsImsiOlsxLDJdfQ"}, "before")):
        body = await gql(LIST, variables, expect_errors=True)
        assert body["data"] is None
        error = body["errors"][0]
        assert error["extensions"]["field"] == field, body
        assert "Internal" not in error["message"]


async def test_nodes_resolves_many_ids_in_order_with_nulls(gql: Any) -> None:
    a = (await create(gql, "N_1"))["source"]["id"]
    b = (await create(gql, "N_2"))["source"]["id"]
    body = await gql("query($ids: [ID!]!) { nodes(ids: $ids) { ... on Source { sourceCode } } }",
                     {"ids": [b, a]})
    assert body["data"]["nodes"] == [{"sourceCode": "N_2"}, {"sourceCode": "N_1"}]
