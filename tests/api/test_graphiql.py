"""The GraphiQL page loads only assets served by the app itself."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api.graphiql import STATIC_DIR, graphiql_html, static_routes

with warnings.catch_warnings():
    # Starlette 1.10's TestClient warns on import that it prefers httpx2 over httpx.
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with", category=StarletteDeprecationWarning
    )
    from starlette.testclient import TestClient

JS_TYPES = ("text/javascript", "application/javascript")
ASSET_BUDGET_BYTES = 3 * 1024 * 1024


class _AssetCollector(HTMLParser):
    """Collects asset URLs and the inline JSON config from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_config = False
        self.config_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"] or "")
        elif tag == "script":
            self._in_config = attributes.get("id") == "graphiql-config"
            if attributes.get("type") != "application/json":
                self.inline_scripts.append(attributes.get("id") or "")
        elif tag == "link":
            self.stylesheets.append(attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_config = False

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self.config_text += data


def _parse(page: str) -> _AssetCollector:
    collector = _AssetCollector()
    collector.feed(page)
    return collector


@pytest.fixture
def client() -> Iterator[TestClient]:
    async def explorer(request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html())

    app = Starlette(routes=[Route("/graphql", explorer), *static_routes()])
    with TestClient(app) as test_client:
        yield test_client


def test_page_names_no_remote_url() -> None:
    page = graphiql_html()

    assert "http://" not in page
    assert "https://" not in page
    assert "//unpkg" not in page and "//cdn" not in page


def test_page_loads_react_before_graphiql_and_the_starter_last() -> None:
    scripts = _parse(graphiql_html()).scripts

    assert [src.rsplit("/", 1)[-1] for src in scripts] == [
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "mmos-graphiql.js",
    ]


def test_page_runs_no_inline_script_so_a_strict_csp_allows_it() -> None:
    assert _parse(graphiql_html()).inline_scripts == []


def test_every_script_is_served_locally_as_javascript(client: TestClient) -> None:
    page = client.get("/graphql").text
    scripts = _parse(page).scripts

    assert scripts
    for src in scripts:
        assert src.startswith("/static/graphiql/"), src
        response = client.get(src)
        assert response.status_code == 200, src
        assert response.headers["content-type"].startswith(JS_TYPES), src
        assert len(response.content) > 0


def test_every_stylesheet_is_served_locally_as_css(client: TestClient) -> None:
    stylesheets = _parse(client.get("/graphql").text).stylesheets

    assert stylesheets
    for href in stylesheets:
        assert href.startswith("/static/graphiql/"), href
        response = client.get(href)
        assert response.status_code == 200, href
        assert response.headers["content-type"].startswith("text/css"), href


def test_assets_are_revalidated_with_an_etag(client: TestClient) -> None:
    first = client.get("/static/graphiql/graphiql.min.js")
    again = client.get(
        "/static/graphiql/graphiql.min.js", headers={"if-none-match": first.headers["etag"]}
    )

    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304


def test_unknown_asset_is_not_found(client: TestClient) -> None:
    assert client.get("/static/graphiql/missing.js").status_code == 404


def test_config_carries_endpoint_and_a_paged_sources_query() -> None:
    config = json.loads(_parse(graphiql_html(endpoint="/api/graphql")).config_text)

    assert config["endpoint"] == "/api/graphql"
    assert "sources(first: $first, after: $after)" in config["defaultQuery"]
    assert "endCursor" in config["defaultQuery"]


def test_custom_static_prefix_is_used_for_every_asset() -> None:
    collector = _parse(graphiql_html(static_prefix="/assets/gql/"))

    for url in [*collector.scripts, *collector.stylesheets]:
        assert url.startswith("/assets/gql/") and "//" not in url, url


def test_endpoint_cannot_close_the_config_block() -> None:
    hostile = "/graphql</script><script>alert(1)</script>"
    collector = _parse(graphiql_html(endpoint=hostile))

    assert json.loads(collector.config_text)["endpoint"] == hostile
    assert collector.inline_scripts == []


def test_starter_script_derives_a_same_origin_websocket_url() -> None:
    starter = (STATIC_DIR / "mmos-graphiql.js").read_text()

    assert "window.location" in starter
    assert '"wss:" : "ws:"' in starter
    assert "subscriptionUrl" in starter
    assert "isHeadersEditorEnabled: true" in starter


def test_vendored_bundles_match_their_recorded_checksums() -> None:
    lines = (STATIC_DIR / "SHA256SUMS").read_text().splitlines()

    assert len(lines) == 4
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == digest, name


def test_vendored_bundles_ship_with_their_licenses() -> None:
    for package in ("react", "react-dom", "graphiql"):
        assert "MIT License" in (STATIC_DIR / f"LICENSE.{package}.txt").read_text()


def test_assets_stay_within_the_size_budget() -> None:
    total = sum(path.stat().st_size for path in STATIC_DIR.iterdir() if path.is_file())

    assert total < ASSET_BUDGET_BYTES
