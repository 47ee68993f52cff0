"""The HTTP edge: keyless mode stays on this machine (DNS rebinding, proxies), REST bodies
must be JSON, security headers on every response, bounded metric labels, and `last_used_at`
written at most once a minute per key. On the real app, and on a real keyless `mmos serve`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from db.keys import KeyRepository
from tests.support.serve_process import serve_env, serving

SOURCE = {"source_code": "EDGE_001", "title": "Edge interview", "source_type": "interview",
          "quality": "primary", "extraction_priority": "CRITICAL",
          "content": "I moved to Lisbon in 2019. I still check every calculation twice."}
COUNT = {"query": "{ sources { totalCount } }"}
BATCHES = {"query": "{ batches { totalCount } }"}
JSON = {"content-type": "application/json"}
STANDARD_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


async def _app_client(settings: Any, runtime: Any, base_url: str = "http://testserver"
                      ) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=base_url) as http:
        yield http


@pytest.fixture
async def keyless(db: Any, settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app as `mmos serve` on loopback in development runs it: no keys."""
    async for http in _app_client(settings.model_copy(update={"env": "development"}), db,
                                  base_url="http://127.0.0.1:8000"):
        yield http


@pytest.fixture
async def keyed(db: Any, settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app with keys required (production), and its runtime."""
    async for http in _app_client(settings.model_copy(update={"env": "production"}), db):
        yield http, db


async def _issue(runtime: Any, role: str = "operator", name: str = "edge") -> str:
    async with runtime.transaction() as session:
        return (await KeyRepository(session).create(name, role)).secret


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _message(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["message"])


# --- 1. keyless mode stays local: a real `mmos serve` --------------------------------------


def _ws_handshake(port: int, host: str, extra: str = "") -> str:
    """The status line a raw WebSocket handshake on /graphql gets from 127.0.0.1:`port`."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"
               f"{extra}\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]


@pytest.mark.slow
async def test_a_keyless_mmos_serve_refuses_text_plain_foreign_hosts_and_proxies(
        db: Any, database_url: str, tmp_path: Path) -> None:
    # Given: `mmos serve` on 127.0.0.1 in development, so no key is required
    with serving(serve_env(database_url, tmp_path / "data"), tmp_path) as server:
        await asyncio.to_thread(server.wait_healthy)
        port = int(server.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            created = await http.post("/sources", json=SOURCE)
            assert created.status_code == 201, created.text
            start = {"source_id": created.json()["id"], "models": ["rules-fast"]}

            # A cross-site form can send text/plain without a preflight: 415, nothing started
            plain = await http.post("/process/multi-model", content=_dumps(start),
                                    headers={"content-type": "text/plain"})
            assert plain.status_code == 415, plain.text
            assert plain.json()["error"]["type"] == "unsupported_media_type"
            assert "application/json" in plain.json()["error"]["message"]
            batches = await http.post("/graphql", json=BATCHES)
            assert batches.json()["data"]["batches"]["totalCount"] == 0

            # A DNS rebinding page: the browser sends the attacker's name as Host
            for path in ("/graphql", "/sources", "/metrics", "/static/graphiql/graphiql.min.css"):
                rebound = await http.post(path, json=COUNT, headers={"host": "evil.example"})
                assert rebound.status_code == 403, (path, rebound.text)
            assert "DNS rebinding" in _message(rebound)
            assert "mmos keys create --role operator" in _message(rebound)

            # A proxy in front of a keyless server: refused, with how to run with keys
            proxied = await http.post("/graphql", json=COUNT,
                                      headers={"x-forwarded-for": "203.0.113.9"})
            assert proxied.status_code == 403, proxied.text
            for hint in ("proxy", "mmos keys create --role operator", "MMOS_ENV=production",
                         "beyond loopback"):
                assert hint in _message(proxied), hint

            # WebSockets get the same rules at the handshake
            assert " 403 " in _ws_handshake(port, "evil.example") + " "
            assert " 403 " in _ws_handshake(port, f"127.0.0.1:{port}",
                                            "X-Forwarded-For: 203.0.113.9\r\n") + " "
            assert " 101 " in _ws_handshake(port, f"localhost:{port}") + " "

            # Loopback names work; the probes stay open to anyone
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
                ok = await http.post("/graphql", json=COUNT, headers={"host": host})
                assert ok.status_code == 200, (host, ok.text)
            for probe in ("/healthz", "/readyz"):
                assert (await http.get(probe, headers={"host": "evil.example",
                                                       "x-forwarded-for": "203.0.113.9"})
                        ).status_code == 200, probe


# --- 1. keyless mode stays local: the rules, in process -------------------------------------


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8000", True), ("127.0.0.1", True), ("127.8.9.10:1", True),
    ("localhost:8000", True), ("LOCALHOST", True), ("localhost", True),
    ("[::1]:8000", True), ("[::1]", True),
    ("evil.example", False), ("evil.example:8000", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io", False), ("0.0.0.0:8000", False), ("192.168.1.10:8000", False),
    ("localhost:80x", False), ("[::1", False), ("::1", False), ("", False),
    ("testserver", False),  # only for the in-process test transport with MMOS_ENV=test
])
async def test_keyless_mode_answers_only_loopback_host_names(
        keyless: httpx.AsyncClient, host: str, allowed: bool) -> None:
    response = await keyless.post("/graphql", json=COUNT, headers={"host": host})

    assert response.status_code == (200 if allowed else 403), response.text
    if not allowed:
        assert "DNS rebinding" in _message(response)
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("header", [
    ("forwarded", "for=203.0.113.9;proto=https"), ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-proto", "https"), ("x-forwarded-host", "localhost"),
    ("X-Forwarded-Prefix", "/mmos"), ("x-real-ip", "203.0.113.9"),
])
async def test_keyless_mode_refuses_requests_through_a_proxy(
        keyless: httpx.AsyncClient, header: tuple[str, str]) -> None:
    response = await keyless.post("/sources", json=SOURCE, headers=dict([header]))

    assert response.status_code == 403, response.text
    assert header[0].lower() in _message(response)
    assert "mmos keys create --role operator" in _message(response)
    assert (await keyless.post("/graphql", json=COUNT)).json()["data"]["sources"][
        "totalCount"] == 0  # nothing was stored


async def test_testserver_is_a_loopback_name_only_for_the_test_transport_in_test_env(
        db: Any, settings: Any) -> None:
    from api.middleware import keyless_refusal

    assert settings.env == "test"
    async for http in _app_client(settings, db):  # the suite's own client setup
        assert (await http.post("/graphql", json=COUNT)).status_code == 200
    development = settings.model_copy(update={"env": "development"})
    async for http in _app_client(development, db):
        refused = await http.post("/graphql", json=COUNT)
        assert refused.status_code == 403 and "DNS rebinding" in _message(refused)
    # A real server reports its bound socket in scope["server"], never `testserver`
    scope = {"type": "http", "path": "/graphql", "headers": [(b"host", b"testserver")],
             "server": ("127.0.0.1", 8000)}
    assert keyless_refusal(scope, settings) is not None
    assert keyless_refusal({**scope, "server": ("testserver", 80)}, settings) is None


async def test_keyless_mode_refuses_foreign_websocket_handshakes(db: Any, settings: Any) -> None:
    from api.app import create_app

    app = create_app(settings.model_copy(update={"env": "development"}), runtime=db)

    async def handshake(headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]
                        ) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        incoming: list[dict[str, Any]] = [{"type": "websocket.connect"},
                                          {"type": "websocket.disconnect", "code": 1000}]

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "websocket.disconnect",
                                                     "code": 1000}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
                 "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
                 "headers": headers, "server": ("127.0.0.1", 8000),
                 "client": ("127.0.0.1", 50000), "subprotocols": ["graphql-transport-ws"],
                 "extensions": extensions}
        await asyncio.wait_for(app(scope, receive, send), 10)
        return sent

    http_response: dict[str, Any] = {"websocket.http.response": {}}
    rebound = await handshake([(b"host", b"evil.example")], http_response)
    assert rebound[0]["type"] == "websocket.http.response.start"
    assert rebound[0]["status"] == 403
    assert b"DNS rebinding" in rebound[1]["body"]
    assert (b"x-content-type-options", b"nosniff") in rebound[0]["headers"]
    proxied = await handshake([(b"host", b"localhost:8000"), (b"x-forwarded-for", b"1.2.3.4")],
                              {})
    assert [m["type"] for m in proxied] == ["websocket.close"]
    assert proxied[0]["code"] == 1008
    local = await handshake([(b"host", b"localhost:8000")], http_response)
    assert local[0]["type"] == "websocket.accept"


async def test_with_keys_any_host_and_proxy_headers_are_accepted(
        keyed: tuple[httpx.AsyncClient, Any]) -> None:
    http, runtime = keyed
    key = await _issue(runtime, "viewer")
    headers = {"host": "mmos.example.org", "x-forwarded-for": "203.0.113.9",
               "x-forwarded-proto": "https", "authorization": f"Bearer {key}"}

    response = await http.post("/graphql", json=COUNT, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["data"]["sources"]["totalCount"] == 0


# --- 2. REST bodies must be application/json ------------------------------------------------


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/json; charset=latin-1",
    "application/jsonx", None,
])
async def test_rest_bodies_that_are_not_declared_json_are_415(
        client: httpx.AsyncClient, content_type: str | None) -> None:
    assert (await client.post("/sources", json=SOURCE)).status_code == 201
    start = _dumps({"source_id": 1, "models": ["rules-fast"]})
    headers = {"content-type": content_type} if content_type else {}

    for path, body in (("/process/multi-model", start),
                       ("/sources", _dumps({**SOURCE, "source_code": "EDGE_002"}))):
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 415, (path, response.text)
        error = response.json()["error"]
        assert error["type"] == "unsupported_media_type"
        assert "Content-Type: application/json" in error["message"]
    assert (await client.post("/graphql", json=BATCHES)).json()["data"]["batches"][
        "totalCount"] == 0
    assert (await client.post("/graphql", json=COUNT)).json()["data"]["sources"][
        "totalCount"] == 1


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON",
                                          "application/json; charset=utf-8"])
async def test_rest_bodies_declared_json_are_accepted(client: httpx.AsyncClient,
                                                      content_type: str) -> None:
    response = await client.post("/sources", content=_dumps(SOURCE),
                                 headers={"content-type": content_type})

    assert response.status_code == 201, response.text


async def test_graphql_keeps_its_own_content_type_rules(client: httpx.AsyncClient) -> None:
    # GraphQL is not REST: its GET and non-JSON answers are the GraphQL view's own (a POST
    # that is not JSON is its 400, which a cross-site page cannot get past either).
    get = await client.get("/graphql", params={"query": "{ sources { totalCount } }"})
    assert get.status_code == 200 and get.json()["data"]["sources"]["totalCount"] == 0
    plain = await client.post("/graphql", content=_dumps(COUNT),
                              headers={"content-type": "text/plain"})
    assert plain.status_code == 400 and "Unsupported content type" in plain.text


# --- 3. security headers on every response --------------------------------------------------


def _assert_hardened(response: httpx.Response, *, cache: str = "no-store") -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), where
    assert response.headers.get("cache-control") == cache, where
    assert "strict-transport-security" not in response.headers, where


async def test_graphql_and_rest_answers_and_errors_carry_the_security_headers(
        client: httpx.AsyncClient, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    responses = [
        await client.post("/graphql", json=COUNT),
        await client.get("/graphql", params=COUNT),
        await client.post("/graphql", json={"query": "{ sources { "}),  # syntax error
        await client.post("/graphql", content=b"{nope", headers=JSON),  # 400
        await client.post("/sources", json=SOURCE),  # 201
        await client.post("/sources", content=b"x", headers={"content-type": "text/plain"}),
        await client.get("/reports/optimization/42"),  # 404
        await client.get("/reports/savings"),
        await client.get("/no/such/path"),  # 404 from the router
        await client.request("BREW", "/graphql"),  # 405
        await client.post("/sources", content=b"x" * (settings.max_request_bytes + 1),
                          headers=JSON),  # 413
        await client.get("/healthz"),
        await client.get("/metrics"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 400, 201, 415, 404, 200, 404,
                                                  405, 413, 200, 200]
    from domain.services import reports

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(reports, "savings_report", crash)
    crashed = await client.get("/reports/savings")
    assert crashed.status_code == 500
    for response in [*responses, crashed]:
        _assert_hardened(response)


async def test_errors_with_keys_required_carry_the_security_headers(
        keyed: tuple[httpx.AsyncClient, Any]) -> None:
    http, _ = keyed
    for response in (await http.post("/graphql", json=COUNT), await http.get("/metrics"),
                     await http.post("/sources", json=SOURCE)):
        assert response.status_code == 401
        _assert_hardened(response)


async def test_keyless_refusals_carry_the_security_headers(keyless: httpx.AsyncClient) -> None:
    for headers in ({"host": "evil.example"}, {"x-forwarded-for": "203.0.113.9"}):
        response = await keyless.post("/graphql", json=COUNT, headers=headers)
        assert response.status_code == 403
        _assert_hardened(response)


def _csp(response: httpx.Response) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for directive in response.headers["content-security-policy"].split(";"):
        name, *values = directive.split()
        directives[name] = values
    return directives


async def test_the_graphiql_page_has_a_strict_csp_that_its_page_satisfies(
        client: httpx.AsyncClient) -> None:
    first = await client.get("/graphql", headers={"accept": "text/html"})
    again = await client.get("/graphql", headers={"accept": "text/html"})
    assert first.headers["content-type"].startswith("text/html")
    _assert_hardened(first)

    csp = _csp(first)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["font-src"] == csp["img-src"] == ["'self'", "data:"]
    assert csp["style-src"][0] == "'self'" and len(csp["style-src"]) == 2
    policy = first.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "http:" not in policy and "https:" not in policy and "*" not in policy

    # The inline style carries the nonce of this response's CSP; a fresh one per response
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{20,})'", csp["style-src"][1])
    assert nonce is not None, csp["style-src"]
    assert f'<style nonce="{nonce.group(1)}">' in first.text
    assert f'"styleNonce": "{nonce.group(1)}"' in first.text  # for GraphiQL's own <style>
    assert _csp(again)["style-src"] != csp["style-src"]
    # Every script is an external file of this origin, the config a non-executable block
    for tag in re.findall(r"<script[^>]*>", first.text):
        assert 'src="/static/graphiql/' in tag or 'type="application/json"' in tag, tag
    for src in re.findall(r'src="([^"]+)"', first.text):
        asset = await client.get(src)
        assert asset.status_code == 200, src


async def test_static_assets_keep_revalidated_caching_with_the_other_headers(
        client: httpx.AsyncClient) -> None:
    asset = await client.get("/static/graphiql/mmos-graphiql.js")
    assert asset.status_code == 200
    _assert_hardened(asset, cache="no-cache")
    assert asset.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert "__webpack_nonce__ = config.styleNonce" in asset.text


# --- 4. bounded metric labels --------------------------------------------------------------


def _http_label_values(name: str) -> set[str]:
    return {sample.labels[name] for metric in REGISTRY.collect()
            if metric.name == "mmos_http_requests" for sample in metric.samples}


async def test_odd_methods_and_paths_never_become_metric_labels(
        client: httpx.AsyncClient) -> None:
    def other_count() -> float:
        return sum(REGISTRY.get_sample_value("mmos_http_requests_total",
                                             {"method": "other", "path": path,
                                              "status": status}) or 0.0
                   for path in ("/graphql", "other") for status in ("404", "405"))

    before = other_count()
    odd = ["BREW", *(f"FOO{i}" for i in range(50))]
    for method in odd:
        assert (await client.request(method, "/graphql")).status_code == 405
    paths = [f"/scan/{i}/wp-admin.php" for i in range(50)]
    for i, path in enumerate(paths):
        await client.request(odd[i % len(odd)], path)
    await client.get("/reports/savings")

    exported = (await client.get("/metrics")).text
    methods = set(re.findall(r'mmos_http_requests_total\{[^}]*method="([^"]*)"', exported))
    labelled_paths = set(re.findall(r'mmos_http_requests_total\{[^}]*path="([^"]*)"',
                                    exported))
    assert methods <= STANDARD_METHODS | {"other"}, methods - STANDARD_METHODS
    assert "other" in methods
    assert not set(odd) & (_http_label_values("method") | methods)
    assert not set(paths) & (_http_label_values("path") | labelled_paths)
    assert "/reports/savings" in labelled_paths
    assert other_count() - before == len(odd) + len(paths)


# --- 5. last_used_at at most once a minute -----------------------------------------------


async def _last_used(runtime: Any, name: str) -> Any:
    async with runtime.read() as session:
        return (await session.execute(sa.text(
            "SELECT last_used_at FROM api_keys WHERE name = :name"), {"name": name})).scalar()


async def _set_last_used(runtime: Any, name: str, seconds_ago: int) -> None:
    async with runtime.transaction() as session:
        await session.execute(sa.text(
            "UPDATE api_keys SET last_used_at = now() - make_interval(secs => :ago) "
            "WHERE name = :name"), {"ago": seconds_ago, "name": name})


async def test_last_used_at_is_written_once_a_minute_but_keys_are_checked_every_time(
        keyed: tuple[httpx.AsyncClient, Any]) -> None:
    http, runtime = keyed
    key = await _issue(runtime, "viewer", "busy")
    auth = {"authorization": f"Bearer {key}"}
    assert await _last_used(runtime, "busy") is None

    async def use() -> int:
        return (await http.post("/graphql", json=COUNT, headers=auth)).status_code

    # The first use writes it; many more within the minute leave it (now() differs per
    # transaction, so any rewrite would show)
    assert await use() == 200
    first = await _last_used(runtime, "busy")
    assert first is not None
    for _ in range(25):
        assert await use() == 200
    assert (await http.get("/reports/savings", headers=auth)).status_code == 200
    assert await _last_used(runtime, "busy") == first

    # 30 s old: still fresh enough
    await _set_last_used(runtime, "busy", 30)
    thirty = await _last_used(runtime, "busy")
    assert await use() == 200
    assert await _last_used(runtime, "busy") == thirty

    # Older than a minute: the next use writes it again, once
    await _set_last_used(runtime, "busy", 61)
    stale = await _last_used(runtime, "busy")
    assert await use() == 200
    renewed = await _last_used(runtime, "busy")
    assert renewed > stale and renewed > thirty
    assert await use() == 200
    assert await _last_used(runtime, "busy") == renewed

    # Verification itself still runs on every request: a revocation applies at once
    async with runtime.transaction() as session:
        assert await KeyRepository(session).revoke("busy") == 1
    assert await use() == 401
