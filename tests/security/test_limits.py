"""Limits on what one request may cost: the query cost estimate (MMOS_MAX_QUERY_NODES) and the
per-key request rate limit (MMOS_RATE_LIMIT_PER_MINUTE / _BURST), shared through Redis.

The API runs in process over the session's PostgreSQL; the shared limiter uses the Redis at
127.0.0.1:6379 (a database claimed for this session, as the worker tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import parse, validate

from api.query_cost import estimate_nodes
from api.ratelimit import LocalRateLimiter, RedisRateLimiter, build_rate_limiter
from api.schema import schema
from db.keys import KeyRepository
from tests.support.database import counted_statements
from tests.support.workers import DEFAULT_TEST_REDIS, claimed_redis_database, redis_reachable

# About a million objects: 100 fragments, each with its source's 100 fragments, each with its
# source's 50 fragments (edges and nodes). Depth 12, well under the token and alias limits.
MILLION = """query Million($a: Int = 100, $b: Int = 100, $c: Int = 50) {
  fragments(first: $a) { edges { node { source { fragments(first: $b) { edges { node {
    source { fragments(first: $c) { edges { node { id } } } } } } } } } } } }"""
MILLION_NODES = 1 + 4 * 100 + 4 * 100 * 100 + 2 * 100 * 100 * 50  # 1_040_401

# 201 + 100 × (1 + 25n) objects (each fragment: edge, node, source, batch, run, 10 tags and 10
# verification events): n = 79 is 197_801, under the default 200_000; n = 80 is 200_301.
NEAR_THE_LIMIT = """query Near($n: Int!) { sources(first: 100) { edges { node {
  fragments(first: $n) { edges { node { id source { id } batch { id } run { id }
    tags { name } verificationHistory { decision } } } } } } } }"""

# The same million, its lists behind named fragments, an inline fragment and variables.
HIDDEN = """query Hidden($outer: Int, $inner: Int = 100) { ...Top }
fragment Top on Query { fragments(first: $outer) { edges { node { ...Deep } } } }
fragment Deep on Fragment { source { ... on Source { fragments(first: $inner) {
  edges { node { ...Deeper } } } } } }
fragment Deeper on Fragment { source { fragments(first: 50) { edges { node { id } } } } }"""

ASK = "{ sources(first: 1) { totalCount } }"
RATE_LIMITED = "RATE_LIMITED"


# --- helpers -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(runtime: Any, settings: Any, **overrides: Any
                  ) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client of an app built with these settings (one API replica)."""
    from api.app import create_app

    app = create_app(settings.model_copy(update=overrides), runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http
    finally:
        if app.state.rate_limiter is not None:
            await app.state.rate_limiter.aclose()


async def issue(runtime: Any, role: str = "operator", name: str | None = None) -> str:
    async with runtime.transaction() as session:
        return (await KeyRepository(session).create(name or role, role)).secret


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def post(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
               key: str | None = None) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables or {}},
                           headers=bearer(key))




def estimate(query: str, variables: dict[str, Any] | None = None, **options: Any) -> int:
    """The estimate of a document the schema accepts (validated first: a field the schema
    does not have would be left out of the estimate, and the test would mean nothing)."""
    document = parse(query)
    assert validate(schema._schema, document) == []
    found = estimate_nodes(schema._schema, document, variables, **options)
    assert found is not None
    return found.nodes


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.get("data") is None, body
    error: dict[str, Any] = body["errors"][0]
    return error


def assert_rate_limited(response: httpx.Response) -> int:
    """A clean 429: JSON error, RATE_LIMITED, and a whole-second Retry-After; returns it."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/json")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


class InProcessWebSocket:
    """A graphql-transport-ws client driving the ASGI app directly (same event loop)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcessWebSocket:
        scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
                 "path": "/graphql", "raw_path": b"/graphql", "root_path": "",
                 "query_string": b"", "server": ("testserver", 80),
                 "client": ("127.0.0.1", 50000), "subprotocols": ["graphql-transport-ws"],
                 "headers": [(b"host", b"testserver"),
                             (b"sec-websocket-protocol", b"graphql-transport-ws")]}
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "websocket.connect"})
        accepted = await self._next()
        assert accepted["type"] == "websocket.accept", accepted
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.to_app.put({"type": "websocket.disconnect", "code": 1000})
        assert self.task is not None
        try:
            await asyncio.wait_for(self.task, 10)
        except TimeoutError:
            self.task.cancel()

    async def _next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.from_app.get(), 15)

    async def send(self, message: dict[str, Any]) -> None:
        await self.to_app.put({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive(self) -> dict[str, Any]:
        message = await self._next()
        assert message["type"] == "websocket.send", f"the socket closed: {message}"
        decoded: dict[str, Any] = json.loads(message["text"])
        return decoded

    async def init(self, payload: dict[str, Any]) -> None:
        await self.send({"type": "connection_init", "payload": payload})
        assert (await self.receive())["type"] == "connection_ack"

    async def first_answer(self, op_id: str, query: str) -> dict[str, Any]:
        """Subscribe and return the first `next` or `error` message of this operation."""
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query}})
        while True:
            message = await self.receive()
            if message.get("id") == op_id and message["type"] in ("next", "error"):
                return message


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis database this session holds alone, emptied first."""
    if not redis_reachable(DEFAULT_TEST_REDIS):
        pytest.skip(f"no Redis at {DEFAULT_TEST_REDIS}")
    import redis

    with claimed_redis_database() as url:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        yield url


# --- query cost ----------------------------------------------------------------------------------


async def test_a_query_of_about_a_million_nodes_is_refused_before_it_runs(db: Any,
                                                                         settings: Any) -> None:
    # Given: the default limit, and the proof that this query does reach the database
    assert settings.max_query_nodes == 200_000
    async with serving(db, settings, max_query_nodes=2_000_000) as roomy:
        with counted_statements(db) as ran:
            allowed = await post(roomy, MILLION)
        assert allowed.status_code == 200 and "errors" not in allowed.json(), allowed.text
        assert ran, "the query should read the database when it is allowed to run"
    async with serving(db, settings) as http:
        # When
        with counted_statements(db) as ran:
            refused = await post(http, MILLION)
        # Then: no statement at all, and an error giving the estimate and the limit
        assert ran == []
        assert refused.status_code == 200
        error = error_of(refused)
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
        assert error["extensions"]["estimatedNodes"] == MILLION_NODES
        assert error["extensions"]["maxNodes"] == 200_000
        assert f"about {MILLION_NODES} objects" in error["message"]
        assert "limit of 200000" in error["message"]
        # A GraphQL-over-HTTP client sees a request error: 400 without `data`.
        strict = await http.post("/graphql", json={"query": MILLION},
                                 headers={"accept": "application/graphql-response+json"})
        assert strict.status_code == 400 and "data" not in strict.json()


async def test_a_query_just_under_the_limit_runs_and_one_just_over_is_refused(
        db: Any, settings: Any) -> None:
    assert settings.max_query_nodes == 200_000
    assert estimate(NEAR_THE_LIMIT, {"n": 79}) == 197_801
    assert estimate(NEAR_THE_LIMIT, {"n": 80}) == 200_301
    async with serving(db, settings) as http:
        # When
        under = await post(http, NEAR_THE_LIMIT, {"n": 79})
        over = await post(http, NEAR_THE_LIMIT, {"n": 80})
    # Then
    assert under.status_code == 200 and "errors" not in under.json(), under.text
    assert under.json()["data"]["sources"]["edges"] == []
    assert error_of(over)["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error_of(over)["extensions"]["estimatedNodes"] == 200_301


async def test_the_limit_is_inclusive_and_read_from_the_serving_apps_settings(
        db: Any, settings: Any) -> None:
    query = "{ sources(first: 10) { edges { node { id } } } }"
    assert estimate(query) == 21
    async with serving(db, settings, max_query_nodes=21) as exact:
        assert "errors" not in (await post(exact, query)).json()
    async with serving(db, settings, max_query_nodes=20) as tight:
        error = error_of(await post(tight, query))
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "estimatedNodes": 21,
                                   "maxNodes": 20}


async def test_the_estimate_counts_fragments_inline_fragments_and_variables(
        db: Any, settings: Any) -> None:
    # Given: the million-node query, its lists hidden behind fragments and variables
    assert estimate(HIDDEN, {"outer": 100}) == MILLION_NODES
    assert estimate(HIDDEN, {"outer": 1}) == 1 + 4 + 4 * 100 + 2 * 100 * 50
    async with serving(db, settings) as http:
        with counted_statements(db) as ran:
            refused = await post(http, HIDDEN, {"outer": 100})
        allowed = await post(http, HIDDEN, {"outer": 1})
    # Then
    assert ran == []
    assert error_of(refused)["extensions"]["estimatedNodes"] == MILLION_NODES
    assert "errors" not in allowed.json(), allowed.text


@pytest.mark.parametrize(("query", "variables", "nodes"), [
    # A connection without first/last is one default page (20): 1 + 20 edges + 20 nodes.
    ("{ sources { totalCount edges { cursor node { id title } } } }", None, 41),
    ("{ sources(last: 5) { pageInfo { hasNextPage } edges { node { id } } } }", None, 12),
    # first beyond the pagination maximum is refused by the resolver: counted as 100.
    ("{ sources(first: 5000) { edges { node { id } } } }", None, 201),
    ("query($n: Int) { sources(first: $n) { edges { node { id } } } }", {"n": 3}, 7),
    ("query($n: Int = 4) { sources(first: $n) { edges { node { id } } } }", None, 9),
    # A plain list of objects counts MMOS_QUERY_COST_LIST_SIZE (10); scalars count nothing.
    ("{ fragments(first: 2) { edges { node { tags { name } parseNotes } } } }", None,
     1 + 2 + 2 + 2 * 10),
    # A list with `first` counts that many; `nodes(ids:)` one per id.
    ("{ tags(first: 7) { name } }", None, 7),
    ('{ nodes(ids: ["a", "b", "c"]) { id } }', None, 3),
    ("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a", "b"]}, 2),
    # An abstract field costs its most expensive possible type.
    ('{ node(id: "x") { ... on Source { fragments(first: 3) { edges { node { id } } } } '
     "... on Fragment { tags { id } } } }", None, 1 + 10),
    # @skip / @include, literal or from variables; the same fragment spread twice merges.
    ("query($s: Boolean!) { sources(first: 3) @skip(if: $s) { edges { node { id } } } }",
     {"s": True}, 0),
    ("{ sources(first: 3) @include(if: false) { edges { node { id } } } }", None, 0),
    ("{ ...S ...S } fragment S on Query { sources(first: 3) { edges { node { id } } } }",
     None, 7),
    ("{ __typename }", None, 0),
])
def test_the_estimate_follows_these_rules(query: str, variables: dict[str, Any] | None,
                                          nodes: int) -> None:
    assert estimate(query, variables) == nodes


async def test_a_document_too_intricate_to_weigh_is_refused(
        db: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: an estimator allowed to weigh only 3 distinct selections
    monkeypatch.setattr("api.query_cost.MAX_STEPS", 3)
    query = ("{ sources(first: 1) { edges { node { fragments(first: 1) { edges { node { id } } } } "
             "} } }")
    async with serving(db, settings) as http:
        with counted_statements(db) as ran:
            refused = await post(http, query)
        allowed = await post(http, "{ sources(first: 1) { totalCount } }")
    # Then
    assert ran == []
    assert error_of(refused)["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert "distinct selections" in error_of(refused)["message"]
    assert "errors" not in allowed.json(), allowed.text


def test_the_default_list_size_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    query = "{ fragments(first: 2) { edges { node { tags { name } } } } }"
    assert estimate(query, list_size=10) == 25
    assert estimate(query, list_size=3) == 11
    from api.settings import Settings

    monkeypatch.setenv("MMOS_QUERY_COST_LIST_SIZE", "3")
    monkeypatch.setenv("MMOS_MAX_QUERY_NODES", "1234")
    configured = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (configured.query_cost_list_size, configured.max_query_nodes) == (3, 1234)


async def test_a_subscription_goes_through_the_cost_limit(db: Any, settings: Any) -> None:
    # Given: queueStatus events cost 1 + 10 jobs + 10 workers = 21 objects each
    subscription = ("subscription { queueStatus(intervalSeconds: 60) { at "
                    "jobs { status count } workers { workerId } } }")
    assert estimate(subscription) == 21
    for limit in (20, 21):
        async with serving(db, settings, max_query_nodes=limit) as http, \
                InProcessWebSocket(http.app) as socket:  # type: ignore[attr-defined]
            await socket.init({})
            # When
            first = await socket.first_answer("1", subscription)
            then = await socket.receive() if limit == 20 else None
        # Then: over the limit, one error result and the end of the stream, no event
        if limit == 20:
            assert first["payload"]["data"] is None, first
            error = first["payload"]["errors"][0]
            assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "estimatedNodes": 21,
                                           "maxNodes": 20}
            assert "this subscription could produce about 21 objects" in error["message"]
            assert then == {"id": "1", "type": "complete"}
        else:
            assert first["type"] == "next" and "errors" not in first["payload"], first
            assert first["payload"]["data"]["queueStatus"]["at"]


# --- rate limit ----------------------------------------------------------------------------------


async def test_a_burst_over_the_per_key_limit_gets_429s_with_retry_after(
        db: Any, settings: Any) -> None:
    # Given: production (keys required), 6 requests a minute, at most 5 at once, no Redis
    key = await issue(db)
    async with serving(db, settings, env="production", redis_url=None,
                       rate_limit_per_minute=6, rate_limit_burst=5) as http:
        assert isinstance(http.app.state.rate_limiter, LocalRateLimiter)  # type: ignore[attr-defined]
        # When
        answers = [await post(http, ASK, key=key) for _ in range(8)]
        rest = await http.get("/reports/savings", headers=bearer(key))
    # Then: five go through, the rest are clean 429s (GraphQL and REST alike)
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    for refused in answers[5:]:
        retry_after = assert_rate_limited(refused)
        error = refused.json()["errors"][0]
        assert error["extensions"] == {"code": RATE_LIMITED, "retryAfter": retry_after}
        assert "6 requests per minute per API key" in error["message"]
    assert_rate_limited(rest)
    assert rest.json()["error"]["type"] == "rate_limited"


async def test_the_budget_refills_after_retry_after(db: Any, settings: Any) -> None:
    # Given: 60 a minute (one a second), 2 at once, spent
    key = await issue(db)
    async with serving(db, settings, env="production", redis_url=None,
                       rate_limit_per_minute=60, rate_limit_burst=2) as http:
        answers = [await post(http, ASK, key=key) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        # When: the client waits as long as it was told
        await asyncio.sleep(assert_rate_limited(answers[2]) + 0.05)
        # Then: one more request, and only one
        assert (await post(http, ASK, key=key)).status_code == 200
        assert (await post(http, ASK, key=key)).status_code == 429


async def test_the_limit_is_per_key(db: Any, settings: Any) -> None:
    # Given: one key has spent its budget
    spent, other = await issue(db, name="spent"), await issue(db, "viewer", name="other")
    async with serving(db, settings, env="production", redis_url=None,
                       rate_limit_per_minute=6, rate_limit_burst=3) as http:
        assert [(await post(http, ASK, key=spent)).status_code for _ in range(4)] == [
            200, 200, 200, 429]
        # When / Then: another key still has all of its own
        assert [(await post(http, ASK, key=other)).status_code for _ in range(3)] == [200] * 3
        assert (await post(http, ASK, key=spent)).status_code == 429


async def test_keyless_local_requests_are_not_limited(db: Any, settings: Any) -> None:
    async with serving(db, settings, redis_url=None, rate_limit_per_minute=1,
                       rate_limit_burst=1) as http:
        assert [(await post(http, ASK)).status_code for _ in range(5)] == [200] * 5


async def test_a_rate_of_zero_turns_the_limit_off(db: Any, settings: Any) -> None:
    key = await issue(db)
    async with serving(db, settings, env="production", rate_limit_per_minute=0,
                       rate_limit_burst=1) as http:
        assert http.app.state.rate_limiter is None  # type: ignore[attr-defined]
        assert [(await post(http, ASK, key=key)).status_code for _ in range(5)] == [200] * 5


async def test_two_replicas_sharing_redis_share_one_budget(db: Any, settings: Any,
                                                          redis_url: str) -> None:
    # Given: two API instances with their own limiters on one Redis, a burst of 5
    key = await issue(db)
    shared = {"env": "production", "redis_url": redis_url, "rate_limit_per_minute": 6,
              "rate_limit_burst": 5}
    async with serving(db, settings, **shared) as one, serving(db, settings, **shared) as two:
        assert isinstance(one.app.state.rate_limiter, RedisRateLimiter)  # type: ignore[attr-defined]
        assert one.app.state.rate_limiter is not two.app.state.rate_limiter  # type: ignore[attr-defined]
        # When: three requests through one, two through the other, then one more each
        spent = [(await post(one, ASK, key=key)).status_code for _ in range(3)]
        spent += [(await post(two, ASK, key=key)).status_code for _ in range(2)]
        after = [await post(two, ASK, key=key), await post(one, ASK, key=key)]
    # Then: the sixth and seventh are over the shared budget, whichever replica they reach
    assert spent == [200] * 5
    for refused in after:
        assert 5 <= assert_rate_limited(refused) <= 20  # one request per 10 s on Redis's clock


async def test_without_redis_each_replica_limits_on_its_own(db: Any, settings: Any) -> None:
    # The in-process fallback: the same split as above all goes through (per replica budgets).
    key = await issue(db)
    alone = {"env": "production", "redis_url": None, "rate_limit_per_minute": 6,
             "rate_limit_burst": 5}
    async with serving(db, settings, **alone) as one, serving(db, settings, **alone) as two:
        codes = [(await post(one, ASK, key=key)).status_code for _ in range(3)]
        codes += [(await post(two, ASK, key=key)).status_code for _ in range(3)]
        assert codes == [200] * 6
        assert [(await post(one, ASK, key=key)).status_code for _ in range(3)] == [
            200, 200, 429]


async def test_redis_down_falls_back_to_the_in_process_limit_with_a_warning(
        db: Any, settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given: a REDIS_URL nobody answers on
    caplog.set_level(logging.WARNING, logger="mmos.ratelimit")
    key = await issue(db)
    async with serving(db, settings, env="production", redis_url="redis://127.0.0.1:1/0",
                       rate_limit_per_minute=60, rate_limit_burst=2) as http:
        # When
        codes = [(await post(http, ASK, key=key)).status_code for _ in range(3)]
    # Then: requests are served (never a 500) and still limited, in this process
    assert codes == [200, 200, 429]
    warnings = [r for r in caplog.records if r.name == "mmos.ratelimit"]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    assert "Redis is unavailable" in warnings[0].getMessage()


async def test_operations_over_a_websocket_count_against_the_key(db: Any,
                                                                 settings: Any) -> None:
    # Given: a production app, a key allowed 2 requests at once
    key = await issue(db)
    async with serving(db, settings, env="production", redis_url=None,
                       rate_limit_per_minute=1, rate_limit_burst=2) as http:
        async with InProcessWebSocket(http.app) as socket:  # type: ignore[attr-defined]
            await socket.init({"apiKey": key})
            # When
            answers = [await socket.first_answer(str(i), "{ __typename }") for i in range(3)]
        # ... and the budget is the key's, over HTTP too
        over_http = await post(http, ASK, key=key)
    # Then
    assert [a["type"] for a in answers] == ["next", "next", "error"]
    error = answers[2]["payload"][0]
    assert error["extensions"]["code"] == RATE_LIMITED
    assert 1 <= error["extensions"]["retryAfter"] <= 60
    assert_rate_limited(over_http)


async def test_the_gcra_allows_the_burst_then_one_per_interval() -> None:
    now = [1000.0]
    limiter = LocalRateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [(await limiter.hit("k")).allowed for _ in range(4)] == [True] * 3 + [False]
    assert (await limiter.hit("k")).retry_after == pytest.approx(1.0)
    now[0] += 0.5
    refused = await limiter.hit("k")
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5)
    now[0] += 0.5
    assert (await limiter.hit("k")).allowed
    assert not (await limiter.hit("k")).allowed
    now[0] += 60  # idle: the whole burst again
    assert [(await limiter.hit("k")).allowed for _ in range(4)] == [True] * 3 + [False]


def test_the_limiter_follows_the_settings(settings: Any) -> None:
    assert isinstance(build_rate_limiter(settings.model_copy(update={"redis_url": None})),
                      LocalRateLimiter)
    assert isinstance(build_rate_limiter(settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:6379/0"})), RedisRateLimiter)
    assert build_rate_limiter(settings.model_copy(update={"rate_limit_per_minute": 0})) is None
    assert (settings.rate_limit_per_minute, settings.rate_limit_burst) == (600, 60)
