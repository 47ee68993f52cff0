"""Malformed and hostile requests get clear 4xx or GraphQL errors: never a crash, leak or write."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

MiB = 1024 * 1024
MASKED = "Internal error"
LEAKS = ("Traceback", 'File "', "sqlalchemy", "asyncpg")
INJECTION = "'; DROP TABLE sources; --"

CREATE = """
mutation Create($input: CreateSourceInput!) {
  createSource(input: $input) {
    __typename
    ... on CreateSourcePayload { source { id } }
    ... on ValidationError { message fieldErrors { field message } }
  }
}
"""
UPDATE = """
mutation Update($input: UpdateSourceInput!) {
  updateSource(input: $input) {
    __typename
    ... on ValidationError { message fieldErrors { field message } }
    ... on NotFound { message }
  }
}
"""
DELETE = """
mutation Delete($input: DeleteSourceInput!) {
  deleteSource(input: $input) {
    __typename
    ... on ValidationError { message fieldErrors { field message } }
    ... on NotFound { message }
  }
}
"""
IMPORT = """
mutation Import($input: ImportSourcesInput!) {
  importSources(input: $input) {
    __typename
    ... on ValidationError { message fieldErrors { field message } }
  }
}
"""
LIST = """
query List($first: Int, $last: Int, $after: String, $before: String, $filter: SourceFilter) {
  sources(first: $first, last: $last, after: $after, before: $before, filter: $filter) {
    totalCount edges { node { id } }
  }
}
"""
COUNT = "{ sources { totalCount } }"
BY_CODE = "query($c: String!) { sourceByCode(code: $c) { id } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
SOURCE = "query($id: ID!) { source(id: $id) { id } }"

Request = dict[str, Any]


@dataclass(frozen=True)
class Hostile:
    """One request to send, the status a well-behaved server answers and a phrase it says."""

    build: Callable[[], Request]
    status: int | tuple[int, ...]
    says: str = ""  # must appear in the response (case-insensitive); "" = any clear answer


# --- request builders ---------------------------------------------------------------------------


def source(**overrides: Any) -> dict[str, Any]:
    data = {
        "sourceCode": "HOSTILE_1",
        "title": "A title",
        "sourceType": "INTERVIEW",
        "content": "Some perfectly ordinary content.",
    }
    data.update(overrides)
    return data


def gid(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def cursor(payload: Any) -> str:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def op(query: str, variables: Any = None, **extra: Any) -> Callable[[], Request]:
    """A JSON POST of one operation; `variables` may be a factory (big values built lazily).

    Encoded as ASCII JSON so that lone surrogates travel as `\\udXXX` escapes, as any client
    may send them.
    """

    def build() -> Request:
        body: dict[str, Any] = {"query": query, **extra}
        if variables is not None:
            body["variables"] = variables() if callable(variables) else variables
        return {
            "method": "POST",
            "content": json.dumps(body).encode(),
            "headers": {"content-type": "application/json"},
        }

    return build


def raw(
    content: bytes | Callable[[], bytes], content_type: str | None = "application/json"
) -> Callable[[], Request]:
    """A POST of exactly these bytes with this content type (none when None)."""

    def build() -> Request:
        headers = {"content-type": content_type} if content_type else {}
        body = content() if callable(content) else content
        return {"method": "POST", "content": body, "headers": headers}

    return build


def post_json(value: Any) -> Callable[[], Request]:
    return raw(json.dumps(value).encode())


def get(**params: str) -> Callable[[], Request]:
    return lambda: {"method": "GET", "params": params, "headers": {"accept": "application/json"}}


def literal(text: str) -> str:
    """`text` as a GraphQL string literal: a NUL travels as the escape `\\u0000`, not as a NUL."""
    return json.dumps(text)


def create_literal(**overrides: str) -> str:
    """A createSource mutation with its input written inline in the document."""
    fields = {"sourceCode": "HOSTILE_1", "title": "A title", "content": "Some content."}
    fields.update(overrides)
    inline = ", ".join(f"{name}: {literal(value)}" for name, value in fields.items())
    return (
        "mutation { createSource(input: {" + inline + ", sourceType: INTERVIEW}) "
        "{ __typename ... on ValidationError { message fieldErrors { field message } } } }"
    )


def streamed(size: int) -> Callable[[], Request]:
    """A chunked body with no Content-Length: the cap must hold while the body is read."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(size // MiB):
            yield b" " * MiB

    return lambda: {
        "method": "POST",
        "content": chunks(),
        "headers": {"content-type": "application/json"},
    }


def multipart() -> Request:
    operations = {
        "query": "mutation($file: Upload!) { upload(file: $file) }",
        "variables": {"file": None},
    }
    return {
        "method": "POST",
        "files": {"0": ("a.txt", b"hello", "text/plain")},
        "data": {
            "operations": json.dumps(operations),
            "map": json.dumps({"0": ["variables.file"]}),
        },
    }


def fragment_chain(depth: int, on: str, step: str, leaf: str) -> str:
    """`depth` fragments, each spreading the next inside `step` (or directly when step is "")."""

    def body(i: int) -> str:
        return f"{step} {{ ...F{i + 1} }}" if step else f"...F{i + 1}"

    parts = [f"fragment F{i} on {on} {{ {body(i)} }}" for i in range(depth)]
    parts.append(f"fragment F{depth} on {on} {{ {leaf} }}")
    return "\n".join(parts)


def nested(depth: int, opening: str, leaf: str) -> str:
    """`opening` (which opens one brace) repeated `depth` times around `leaf`."""
    return opening * depth + leaf + " }" * depth


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def introspection_amplifier(levels: int) -> str:
    """types → fields → type → fields … : each level multiplies the response size."""
    inner = "name"
    for _ in range(levels):
        inner = f"name fields {{ name type {{ name ofType {{ {inner} }} }} }}"
    return "{ __schema { types { " + inner + " } } }"


def bug(reason: str) -> pytest.MarkDecorator:
    """A request the app mishandles today; strict, so the fix makes the marker fail loudly."""
    return pytest.mark.xfail(strict=True, reason=reason)


REPROCESS_BY_ARG = ("mutation($id: ID!) { reprocessRun(runId: $id) { __typename "
                    "... on ValidationError { message fieldErrors { field message } } "
                    "... on NotFound { message } ... on Conflict { message } } }")
RETRY_RUN = ("mutation($input: RetryRunInput!) { retryRun(input: $input) { __typename "
             "... on ValidationError { message fieldErrors { field message } } "
             "... on NotFound { message } ... on Conflict { message } } }")

NOT_AN_OBJECT = "the request body must be a JSON object with a `query`"
NOT_A_BATCH = "a batched request must be a non-empty JSON array of operation objects"
NUL_REFUSED = "the request contains a NUL character (\\u0000)"
SURROGATE_REFUSED = "the request contains a lone UTF-16 surrogate"
NUL_LITERAL_REFUSED = "string values must not contain a NUL character"


CASES = [
    # --- transport: bodies, content types, shapes ----------------------------------------------
    pytest.param(
        Hostile(raw(b'{"query": '), 400, "Unable to parse request body as JSON"),
        id="truncated-json",
    ),
    pytest.param(
        Hostile(raw(b"{query: sources}"), 400, "Unable to parse request body as JSON"),
        id="json5-is-not-json",
    ),
    pytest.param(Hostile(raw(b""), 400, "Unable to parse request body as JSON"), id="empty-body"),
    pytest.param(
        Hostile(raw(b"\xff\xfe\x00garbage"), 400, "Unable to parse request body"),
        id="invalid-utf8-body",
    ),
    pytest.param(Hostile(post_json([1, 2, 3]), 400, NOT_A_BATCH), id="json-array-of-numbers"),
    pytest.param(Hostile(post_json([]), 400, NOT_A_BATCH), id="json-empty-array"),
    pytest.param(
        Hostile(post_json([{"query": COUNT}, "x"]), 400, NOT_A_BATCH),
        id="json-array-mixing-objects-and-strings",
    ),
    pytest.param(Hostile(post_json(COUNT), 400, NOT_AN_OBJECT), id="json-string"),
    pytest.param(Hostile(post_json(42), 400, NOT_AN_OBJECT), id="json-number"),
    pytest.param(Hostile(post_json(None), 400, NOT_AN_OBJECT), id="json-null"),
    pytest.param(Hostile(post_json(True), 400, NOT_AN_OBJECT), id="json-boolean"),
    pytest.param(
        Hostile(
            raw(json.dumps({"query": COUNT}).encode(), "text/plain"),
            400,
            "Unsupported content type",
        ),
        id="json-sent-as-text-plain",
    ),
    pytest.param(
        Hostile(raw(b"<query>sources</query>", "application/xml"), 400, "Unsupported content type"),
        id="xml-content-type",
    ),
    pytest.param(
        Hostile(raw(json.dumps({"query": COUNT}).encode(), None), 400, "Unsupported content type"),
        id="no-content-type",
    ),
    pytest.param(
        Hostile(
            raw(b"query=%7B__typename%7D", "application/x-www-form-urlencoded"),
            400,
            "Unsupported content type",
        ),
        id="form-urlencoded",
    ),
    pytest.param(Hostile(multipart, 400, "Unsupported content type"), id="multipart-upload"),
    pytest.param(Hostile(post_json({}), 400, "No GraphQL query found"), id="missing-query"),
    pytest.param(
        Hostile(post_json({"query": None}), 400, "No GraphQL query found"), id="query-null"
    ),
    pytest.param(
        Hostile(post_json({"query": 12}), 400, "`query` must be a string"), id="query-number"
    ),
    pytest.param(
        Hostile(post_json({"query": [COUNT]}), 400, "`query` must be a string"), id="query-list"
    ),
    pytest.param(
        Hostile(post_json({"query": {"q": COUNT}}), 400, "`query` must be a string"),
        id="query-object",
    ),
    pytest.param(
        Hostile(
            post_json({"query": COUNT, "variables": [1]}), 400, "`variables` must be an object"
        ),
        id="variables-list",
    ),
    pytest.param(
        Hostile(
            post_json({"query": COUNT, "variables": "{}"}), 400, "`variables` must be an object"
        ),
        id="variables-string",
    ),
    pytest.param(
        Hostile(post_json({"query": COUNT, "variables": 7}), 400, "`variables` must be an object"),
        id="variables-number",
    ),
    pytest.param(
        Hostile(
            post_json({"query": COUNT, "extensions": "x"}), 400, "`extensions` must be an object"
        ),
        id="extensions-string",
    ),
    pytest.param(
        Hostile(
            post_json({"query": COUNT, "operationName": 5}), 400, 'Unknown operation named "5"'
        ),
        id="operation-name-number",
    ),
    pytest.param(
        Hostile(post_json([{"query": COUNT}, {"query": COUNT}]), 400, "Batching is not enabled"),
        id="batched-operations",
    ),
    pytest.param(
        Hostile(
            raw(lambda: b'{"query": "' + b"x" * (9 * MiB) + b'"}'), 413, "exceeds 8388608 bytes"
        ),
        id="body-9mb",
    ),
    pytest.param(Hostile(streamed(9 * MiB), 413, "exceeds 8388608 bytes"), id="body-9mb-chunked"),
    pytest.param(
        Hostile(lambda: {"method": "PUT", "json": {"query": COUNT}}, 405), id="put-method"
    ),
    # --- GraphQL documents -----------------------------------------------------------------------
    pytest.param(Hostile(op(""), 400, "No GraphQL query found"), id="empty-query"),
    pytest.param(Hostile(op("{ sources { "), 200, "Syntax Error"), id="syntax-error"),
    pytest.param(
        Hostile(op("{ sources { secrets } }"), 200, "Cannot query field 'secrets'"),
        id="unknown-field",
    ),
    pytest.param(
        Hostile(
            op("query A { __typename } query B { __typename }", operationName="Nowhere"),
            400,
            'Unknown operation named "Nowhere"',
        ),
        id="operation-name-pointing-nowhere",
    ),
    # Strawberry runs the first operation here (the spec asks for an error); harmless.
    pytest.param(
        Hostile(op("query A { a: __typename } query B { b: __typename }"), 200),
        id="several-operations-no-name",
    ),
    pytest.param(
        Hostile(
            op("subscription { sources { totalCount } }"),
            200,
            "subscription operation is not supported",
        ),
        id="subscription-over-post",
    ),
    pytest.param(
        Hostile(op("{ __typename @evil }"), 200, "Unknown directive '@evil'"),
        id="unknown-directive",
    ),
    pytest.param(
        Hostile(op('{ __typename @include(if: "yes") }'), 200, "Boolean cannot represent"),
        id="directive-argument-wrong-type",
    ),
    pytest.param(
        Hostile(
            op("{ ...Loop } fragment Loop on Query { ...Loop }"),
            200,
            "Cannot spread fragment 'Loop' within itself",
        ),
        id="fragment-cycle",
    ),
    pytest.param(
        Hostile(
            op("{ ...F0 }\n" + fragment_chain(50, "Query", "", "__typename")),
            200,
            '"__typename":"Query"',
        ),
        id="fragment-spread-chain-50",
    ),
    # The depth limiter skips introspection by design; an ofType chain ends in nulls quickly ...
    pytest.param(
        Hostile(
            op(
                "{ __schema { types { ...F0 } } }\n"
                + fragment_chain(50, "__Type", "ofType", "name")
            ),
            200,
            "__schema",
        ),
        id="introspection-fragment-chain-50",
    ),
    pytest.param(
        Hostile(
            op("{ __schema { types { " + nested(50, "ofType { ", "name") + " } } }"),
            200,
            "__schema",
        ),
        id="introspection-depth-50",
    ),
    # ... and graphql-core's introspection depth rule stops the fields → type → fields blow-up.
    pytest.param(
        Hostile(op(introspection_amplifier(6)), 200, "Maximum introspection depth exceeded"),
        id="introspection-amplification",
    ),
    pytest.param(
        Hostile(
            op(
                "query($id: ID!) { node(id: $id) { "
                + nested(50, "... on Source { ", "id")
                + " } }",
                {"id": gid("Source:1")},
            ),
            200,
            '"node":null',
        ),
        id="inline-fragments-50-on-node",
    ),
    pytest.param(Hostile(op(aliases(31)), 200, "31 aliases found. Allowed: 30"), id="aliases-31"),
    pytest.param(Hostile(op(aliases(5000)), 200, "more than 2000 tokens"), id="aliases-5000"),
    pytest.param(
        Hostile(op("{ " + "__typename " * 50_000 + "}"), 200, "more than 2000 tokens"),
        id="tokens-50000",
    ),
    # --- variables and arguments -----------------------------------------------------------------
    pytest.param(
        Hostile(op(LIST, {"first": "ten"}), 200, "Int cannot represent non-integer"),
        id="first-is-string",
    ),
    pytest.param(
        Hostile(op(LIST, {"first": 2**40}), 200, "non 32-bit signed integer"),
        id="first-beyond-int32",
    ),
    pytest.param(
        Hostile(op(LIST, {"first": 1.5}), 200, "non-integer value: 1.5"), id="first-is-float"
    ),
    pytest.param(
        Hostile(op(LIST, {"first": -1}), 200, "first: must be between 0 and 100"),
        id="first-negative",
    ),
    pytest.param(
        Hostile(op(LIST, {"first": 1_000_000}), 200, "first: must be between 0 and 100"),
        id="first-huge",
    ),
    pytest.param(
        Hostile(op(LIST, {"last": -5}), 200, "last: must be between 0 and 100"), id="last-negative"
    ),
    pytest.param(
        Hostile(op(LIST, {"first": 5, "last": 5}), 200, "cannot be combined with first"),
        id="first-and-last",
    ),
    pytest.param(
        Hostile(op(LIST, {"after": "!!!not-a-cursor!!!"}), 200, "not a valid cursor"),
        id="cursor-garbage",
    ),
    pytest.param(
        Hostile(op(LIST, {"after": cursor(b"\x00\xff binary")}), 200, "not a valid cursor"),
        id="cursor-binary",
    ),
    pytest.param(
        Hostile(
            op(LIST, {"after": cursor({"o": "TITLE:ASC", "k": ["a", 1]})}),
            200,
            "not a valid cursor",
        ),
        id="cursor-from-other-ordering",
    ),
    pytest.param(
        Hostile(
            op(LIST, {"before": cursor({"o": "CREATED_AT:DESC", "k": [1, "x"]})}),
            200,
            "before: is not a valid cursor",
        ),
        id="cursor-wrong-value-types",
    ),
    pytest.param(
        Hostile(op(LIST, {"after": cursor([1, 2])}), 200, "not a valid cursor"),
        id="cursor-json-list",
    ),
    pytest.param(
        Hostile(op(LIST, {"after": "A" * 100_000}), 200, "not a valid cursor"),
        id="cursor-100k-chars",
    ),
    pytest.param(
        Hostile(
            op(CREATE, {"input": source(sourceType="ALIEN")}),
            200,
            "Value 'ALIEN' does not exist in 'SourceType' enum",
        ),
        id="enum-unknown-in-variable",
    ),
    pytest.param(
        Hostile(
            op(
                'mutation { createSource(input: {sourceCode: "X_1", title: "t", '
                'sourceType: ALIEN, content: "c"}) { __typename } }'
            ),
            200,
            "Value 'ALIEN' does not exist in 'SourceType' enum",
        ),
        id="enum-unknown-literal",
    ),
    pytest.param(
        Hostile(
            op(
                'mutation { createSource(input: {sourceCode: "X_1", title: "t", '
                'sourceType: "INTERVIEW", content: "c"}) { __typename } }'
            ),
            200,
            "Enum 'SourceType' cannot represent non-enum value",
        ),
        id="enum-as-string-literal",
    ),
    pytest.param(
        Hostile(
            op(CREATE, {"input": source(title=None)}),
            200,
            "at .title: Expected value of non-null type",
        ),
        id="null-for-required",
    ),
    pytest.param(
        Hostile(op(CREATE, {"input": {"title": "t"}}), 200, "required field 'sourceCode'"),
        id="missing-required-fields",
    ),
    pytest.param(
        Hostile(op(CREATE, {}), 200, "non-null type 'CreateSourceInput!' to be provided"),
        id="missing-required-variable",
    ),
    pytest.param(
        Hostile(op(CREATE, {"input": "everything"}), 200, "to be an object"), id="input-is-a-string"
    ),
    pytest.param(
        Hostile(
            op(CREATE, {"input": source(sourceDate="2024-13-45")}), 200, "cannot represent a Date"
        ),
        id="date-out-of-range",
    ),
    pytest.param(
        Hostile(op(CREATE, {"input": source(extra="field")}), 200, "unknown field 'extra'"),
        id="unknown-input-field",
    ),
    # --- oversize strings (each body stays under the 8 MB request cap) ---------------------------
    pytest.param(
        Hostile(
            op(CREATE, lambda: {"input": source(content="x" * (6 * MiB))}),
            200,
            "the limit is 5242880 bytes",
        ),
        id="content-6mb",
    ),
    pytest.param(
        Hostile(
            op(CREATE, lambda: {"input": source(title="t" * (6 * MiB))}),
            200,
            "input.title: must be at most 500 characters",
        ),
        id="title-6mb",
    ),
    pytest.param(
        Hostile(
            op(CREATE, lambda: {"input": source(sourceCode="C" * (6 * MiB))}),
            200,
            "input.sourceCode: must be at most 64 characters",
        ),
        id="source-code-6mb",
    ),
    pytest.param(
        Hostile(
            op(
                IMPORT,
                {
                    "input": {
                        "sources": [
                            source(sourceCode=f"BULK_{i}", content=f"text {i}") for i in range(501)
                        ]
                    }
                },
            ),
            200,
            "has 501 items; the limit is 500",
        ),
        id="import-over-item-limit",
    ),
    pytest.param(
        Hostile(op(IMPORT, {"input": {"sources": []}}), 200, "input.sources: must not be empty"),
        id="import-empty",
    ),
    # --- unicode garbage and NUL bytes -----------------------------------------------------------
    # NUL and lone surrogates in the JSON are refused before GraphQL runs ...
    pytest.param(
        Hostile(op(CREATE, {"input": source(title="bad\x00title")}), 400, NUL_REFUSED),
        id="nul-in-title",
    ),
    pytest.param(
        Hostile(op(CREATE, {"input": source(content="bad\x00content")}), 400, NUL_REFUSED),
        id="nul-in-content",
    ),
    pytest.param(
        Hostile(op(UPDATE, {"input": {"id": "1", "notes": "x\x00y"}}), 400, NUL_REFUSED),
        id="nul-in-update",
    ),
    pytest.param(
        Hostile(post_json({"query": COUNT, "extensions": {"k\x00": 1}}), 400, NUL_REFUSED),
        id="nul-in-a-json-key",
    ),
    pytest.param(
        Hostile(op("{ sources { totalCount } }\x00"), 400, NUL_REFUSED), id="nul-in-the-document"
    ),
    # ... and a NUL written as a GraphQL escape is refused by validation, before execution.
    pytest.param(
        Hostile(op(create_literal(title="bad\x00title")), 200, NUL_LITERAL_REFUSED),
        id="nul-escape-in-title-literal",
    ),
    pytest.param(
        Hostile(op(create_literal(content="bad\x00content")), 200, NUL_LITERAL_REFUSED),
        id="nul-escape-in-content-literal",
    ),
    pytest.param(
        Hostile(
            op(
                'mutation { updateSource(input: {id: "1", notes: '
                + literal("x\x00y")
                + "}) { __typename "
                "... on ValidationError { fieldErrors { field message } } } }"
            ),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-update-literal",
    ),
    pytest.param(
        Hostile(
            op(CREATE, {"input": source(sourceCode="\u202e\u200b\ufeffZ")}),
            200,
            "input.sourceCode: must be 2-64 characters",
        ),
        id="unicode-controls-in-code",
    ),
    pytest.param(
        Hostile(
            op(CREATE, {"input": source(content="lone \udfff surrogate")}), 400, SURROGATE_REFUSED
        ),
        id="lone-surrogate-in-content",
    ),
    pytest.param(
        Hostile(op(CREATE, {"input": source(title="lone \ud800")}), 400, SURROGATE_REFUSED),
        id="lone-surrogate-in-title",
    ),
    pytest.param(
        Hostile(op(UPDATE, {"input": {"id": "1", "title": "lone \ud800"}}), 400, SURROGATE_REFUSED),
        id="lone-surrogate-in-update-of-missing-source",
    ),
    # GraphQL itself refuses a surrogate escape, so none reaches a resolver through a literal.
    pytest.param(
        Hostile(
            op(create_literal().replace('"A title"', '"lone \\uD800"')),
            200,
            "Invalid Unicode escape sequence",
        ),
        id="lone-surrogate-escape-in-title-literal",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"titleContains": "a\x00b"}}), 400, NUL_REFUSED),
        id="nul-in-title-filter",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"languages": ["e\x00n"]}}), 400, NUL_REFUSED),
        id="nul-in-languages-filter",
    ),
    pytest.param(
        Hostile(op(BY_CODE, {"c": "NUL\x00CODE"}), 400, NUL_REFUSED), id="nul-in-source-by-code"
    ),
    # A NUL escape in any other string argument must get a clear answer, not a database error.
    pytest.param(
        Hostile(
            op("{ sources(filter: {titleContains: " + literal("a\x00b") + "}) { totalCount } }"),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-title-filter-literal",
    ),
    pytest.param(
        Hostile(
            op("{ sources(filter: {languages: [" + literal("e\x00n") + "]}) { totalCount } }"),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-languages-filter-literal",
    ),
    pytest.param(
        Hostile(
            op("{ sourceByCode(code: " + literal("NUL\x00CODE") + ") { id } }"),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-source-by-code-literal",
    ),
    pytest.param(
        Hostile(
            op("{ model(name: " + literal("m\x00") + ") { __typename } }"), 200, NUL_LITERAL_REFUSED
        ),
        id="nul-escape-in-model-name-literal",
    ),
    pytest.param(
        Hostile(
            op("{ batches(model: " + literal("m\x00") + ") { totalCount } }"),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-batches-model-literal",
    ),
    pytest.param(
        Hostile(
            op("{ fragments(filter: {model: " + literal("m\x00") + "}) { totalCount } }"),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-fragments-model-literal",
    ),
    pytest.param(
        Hostile(
            op(
                "mutation { registerModel(input: {name: "
                + literal("m\x00")
                + ", litellmModel: "
                + literal("openai/x\x00")
                + "}) { __typename } }"
            ),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-register-model-literal",
    ),
    pytest.param(
        Hostile(
            op(
                "mutation { updateModel(input: {name: "
                + literal("m\x00")
                + ", notes: "
                + literal("n\x00")
                + "}) { __typename } }"
            ),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-update-model-literal",
    ),
    pytest.param(
        Hostile(
            op(
                'mutation { startMultiModelProcessing(input: {sourceId: "1", '
                "models: [" + literal("m\x00") + "]}) { __typename } }"
            ),
            200,
            NUL_LITERAL_REFUSED,
        ),
        id="nul-escape-in-processing-models-literal",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"authorContains": "\udc80"}}), 400, SURROGATE_REFUSED),
        id="lone-surrogate-in-author-filter",
    ),
    pytest.param(
        Hostile(op(BY_CODE, {"c": "\ud800"}), 400, SURROGATE_REFUSED),
        id="lone-surrogate-in-source-by-code",
    ),
    pytest.param(
        Hostile(
            op(LIST, {"filter": {"titleContains": "\U0001f4a9\u0301\u202e" * 100}}),
            200,
            '"totalCount":0',
        ),
        id="unicode-garbage-in-filter",
    ),
    # --- SQL-looking input -----------------------------------------------------------------------
    pytest.param(
        Hostile(op(LIST, {"filter": {"titleContains": INJECTION}}), 200, '"totalCount":0'),
        id="sql-injection-in-title-filter",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"authorContains": "' OR 1=1 --"}}), 200, '"totalCount":0'),
        id="sql-injection-in-author-filter",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"languages": [INJECTION]}}), 200, '"totalCount":0'),
        id="sql-injection-in-languages",
    ),
    pytest.param(
        Hostile(op(BY_CODE, {"c": INJECTION}), 200, '"sourceByCode":null'),
        id="sql-injection-in-source-by-code",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"titleContains": "%"}}), 200, '"totalCount":0'),
        id="like-percent",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"titleContains": "_"}}), 200, '"totalCount":0'),
        id="like-underscore",
    ),
    pytest.param(
        Hostile(op(LIST, {"filter": {"titleContains": "\\"}}), 200, '"totalCount":0'),
        id="like-trailing-backslash",
    ),
    # --- global IDs ------------------------------------------------------------------------------
    pytest.param(
        Hostile(op(NODE, {"id": "garbage"}), 200, "cannot represent a GlobalID"),
        id="node-id-garbage",
    ),
    pytest.param(
        Hostile(op(NODE, {"id": ""}), 200, "cannot represent a GlobalID"), id="node-id-empty"
    ),
    pytest.param(
        Hostile(op(NODE, {"id": gid("Alien:1")}), 200, "Alien"), id="node-id-unknown-type"
    ),
    pytest.param(
        Hostile(op(NODE, {"id": gid("Source:abc")}), 200, '"node":null'), id="node-id-not-numeric"
    ),
    pytest.param(
        Hostile(op(NODE, {"id": gid("Source:" + "9" * 30)}), 200, '"node":null'),
        id="node-id-overflow",
    ),
    pytest.param(
        Hostile(
            op("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["x", gid("Source:-1")]}),
            200,
            "cannot represent a GlobalID",
        ),
        id="nodes-with-garbage",
    ),
    pytest.param(
        Hostile(op(SOURCE, {"id": "garbage"}), 200, "id: is not a valid Source ID"),
        id="source-id-garbage",
    ),
    pytest.param(
        Hostile(
            op(SOURCE, {"id": gid("Fragment:1")}), 200, "id: is a Fragment ID, expected a Source ID"
        ),
        id="source-id-of-another-type",
    ),
    pytest.param(
        Hostile(op(SOURCE, {"id": "9" * 40}), 200, "id: is not a valid Source ID"),
        id="source-id-huge-number",
    ),
    pytest.param(
        Hostile(
            op(UPDATE, {"input": {"id": "garbage", "title": "t"}}),
            200,
            "input.id: is not a valid Source ID",
        ),
        id="update-id-garbage",
    ),
    pytest.param(
        Hostile(
            op(UPDATE, {"input": {"id": gid("Run:3"), "title": "t"}}),
            200,
            "input.id: is a Run ID, expected a Source ID",
        ),
        id="update-id-of-another-type",
    ),
    pytest.param(
        Hostile(op(UPDATE, {"input": {"id": "12345"}}), 200, "input: names no field to change"),
        id="update-without-changes",
    ),
    pytest.param(
        Hostile(
            op(DELETE, {"input": {"id": gid("Source:" + "1" * 25)}}),
            200,
            "input.id: is not a valid Source ID",
        ),
        id="delete-id-overflow",
    ),
    # --- run recovery: retryRun and reprocessRun ------------------------------------------------
    pytest.param(
        Hostile(op(REPROCESS_BY_ARG, {"id": gid("Source:1")}), 200,
                "runId: is a Source ID, expected a Run ID"),
        id="reprocess-id-of-another-type",
    ),
    pytest.param(
        Hostile(op(REPROCESS_BY_ARG, {"id": "not an id"}), 200, "runId: is not a valid Run ID"),
        id="reprocess-id-garbage",
    ),
    pytest.param(
        Hostile(op(REPROCESS_BY_ARG, {"id": gid("Run:987654")}), 200, "Run"),
        id="reprocess-unknown-run",
    ),
    pytest.param(
        Hostile(op("mutation { reprocessRun { __typename "
                   "... on ValidationError { message fieldErrors { field message } } } }"),
                200, "give the run as runId or as input.runId, once"),
        id="reprocess-without-a-run",
    ),
    pytest.param(
        Hostile(op("mutation($id: ID!) { reprocessRun(runId: $id, input: {runId: $id}) { "
                   "__typename ... on ValidationError { fieldErrors { field message } } } }",
                   {"id": gid("Run:1")}),
                200, "once"),
        id="reprocess-run-given-twice",
    ),
    pytest.param(
        Hostile(op(RETRY_RUN, {"input": {"runId": gid("Run:987654"),
                                         "failedChunksOnly": True}}), 200, "Run"),
        id="retry-failed-chunks-of-unknown-run",
    ),
    pytest.param(
        Hostile(op(RETRY_RUN, {"input": {"runId": gid("Run:1"), "failedChunksOnly": "yes"}}),
                200, "failedChunksOnly"),
        id="retry-failed-chunks-only-not-a-boolean",
    ),
    # --- GET -------------------------------------------------------------------------------------
    pytest.param(
        Hostile(
            get(query='mutation { deleteSource(input: {id: "1"}) { __typename } }'),
            (400, 405),
            "mutations are not allowed when using GET",
        ),
        id="get-mutation",
    ),
    pytest.param(
        Hostile(get(query="{ sources { "), (200, 400), "Syntax Error"), id="get-invalid-query"
    ),
    pytest.param(Hostile(get(), 400, "No GraphQL query found"), id="get-without-query"),
    pytest.param(
        Hostile(get(query=COUNT, variables="{not json"), 400, "Unable to parse"),
        id="get-variables-not-json",
    ),
    pytest.param(
        Hostile(get(query=COUNT, variables="[1]"), 400, "`variables` must be an object"),
        id="get-variables-list",
    ),
    pytest.param(
        Hostile(get(query=COUNT, variables="42"), 400, "`variables` must be an object"),
        id="get-variables-number",
    ),
    pytest.param(
        Hostile(get(query=COUNT, extensions="[1]"), 400, "`extensions` must be an object"),
        id="get-extensions-list",
    ),
    pytest.param(
        Hostile(
            get(query=BY_CODE, variables=json.dumps({"c": "a\x00b"})),
            400,
            "contains a NUL character",
        ),
        id="get-nul-in-variables",
    ),
    pytest.param(
        Hostile(
            get(query="{ sources { totalCount } }\x00"),
            400,
            "the query string contains a NUL character",
        ),
        id="get-nul-in-query",
    ),
]


def _logged_errors(caplog: pytest.LogCaptureFixture) -> str:
    """Whatever was logged at ERROR: a client mistake is an answer, never an incident."""
    formatter = logging.Formatter()
    return "\n".join(
        formatter.format(record) for record in caplog.records if record.levelno >= logging.ERROR
    )


def _is_json_or_text(response: Any) -> bool:
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        response.json()
        return True
    return kind.startswith("text/plain")


async def _stored_sources(client: Any) -> int:
    response = await client.post("/graphql", json={"query": COUNT})
    return int(response.json()["data"]["sources"]["totalCount"])


def test_the_hostile_suite_covers_at_least_fifty_requests() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES)
async def test_hostile_request_gets_a_clear_client_error_and_writes_nothing(
    client: Any, caplog: pytest.LogCaptureFixture, case: Hostile
) -> None:
    # Given
    caplog.set_level(logging.ERROR)
    spec = case.build()
    method = spec.pop("method")
    # When
    response = await client.request(method, "/graphql", **spec)
    # Then
    text, logged = response.text, _logged_errors(caplog)
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert response.status_code in expected, f"{response.status_code}: {text[:500]}\n{logged}"
    assert _is_json_or_text(response), response.headers.get("content-type")
    assert not [leak for leak in LEAKS if leak in text], text[:2000]
    assert MASKED not in text, f"masked error; the server logged:\n{logged}"
    assert not logged, logged
    assert case.says.lower() in text.lower(), text[:1000]
    assert await _stored_sources(client) == 0


async def _create_one(client: Any) -> str:
    created = await client.request(**op(CREATE, {"input": source()})(), url="/graphql")
    return str(created.json()["data"]["createSource"]["source"]["id"])


async def _stored_source(client: Any, source_id: str) -> dict[str, Any]:
    query = "query($id: ID!) { source(id: $id) { id title notes content } }"
    stored = await client.post("/graphql", json={"query": query, "variables": {"id": source_id}})
    return stored.json()["data"]["source"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("field", ["title", "notes", "content"])
async def test_lone_surrogate_in_an_update_is_refused_and_the_source_unchanged(
    client: Any, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    # Given
    caplog.set_level(logging.ERROR)
    source_id = await _create_one(client)
    before = await _stored_source(client, source_id)
    # When
    response = await client.request(
        **op(UPDATE, {"input": {"id": source_id, field: "lone \ud800 surrogate"}})(), url="/graphql"
    )
    # Then
    assert response.status_code == 400, response.text
    assert SURROGATE_REFUSED in response.text
    assert not _logged_errors(caplog)
    assert await _stored_source(client, source_id) == before


@pytest.mark.parametrize("field", ["title", "notes", "content"])
async def test_nul_escape_in_an_update_is_refused_before_execution(
    client: Any, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    # Given
    caplog.set_level(logging.ERROR)
    source_id = await _create_one(client)
    before = await _stored_source(client, source_id)
    mutation = (
        "mutation { updateSource(input: {id: "
        + literal(source_id)
        + f", {field}: "
        + literal("x\x00y")
        + "}) { __typename "
        "... on ValidationError { fieldErrors { field message } } } }"
    )
    # When
    response = await client.post("/graphql", json={"query": mutation})
    # Then
    assert MASKED not in response.text, _logged_errors(caplog)
    body = response.json()
    assert body["data"] is None
    assert NUL_LITERAL_REFUSED in body["errors"][0]["message"]
    assert not _logged_errors(caplog)
    assert await _stored_source(client, source_id) == before
