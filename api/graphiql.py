"""The GraphiQL explorer page, served entirely from vendored assets (no CDN, works offline)."""

from __future__ import annotations

import html
import json
import os
import secrets
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
STATIC_PREFIX = "/static/graphiql"

# Shown on a first visit (GraphiQL then keeps the user's own tabs in localStorage).
DEFAULT_QUERY = """\
# MMOS GraphQL explorer
#
# Sources come in pages: run this query, then pass `pageInfo.endCursor` as the
# `after` variable to fetch the next page (`first` is at most 100).
#
# With API keys enabled, open the Headers tab below and add:
#   {"Authorization": "Bearer <your API key>"}
# The same headers authorise subscriptions over the WebSocket.
#
# Run: Ctrl-Enter   Autocomplete: Ctrl-Space   Docs: the book icon on the left

query SourcesPage($first: Int = 10, $after: String) {
  sources(first: $first, after: $after) {
    totalCount
    pageInfo {
      hasNextPage
      endCursor
    }
    edges {
      cursor
      node {
        id
        title
      }
    }
  }
}
"""

_STYLESHEETS = ("graphiql.min.css",)
# Order matters: the GraphiQL UMD bundle reads the React and ReactDOM globals when it loads.
_SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "mmos-graphiql.js",
)

_PAGE = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>MMOS GraphiQL</title>
    <style{nonce_attribute}>
      body {{ height: 100%; margin: 0; width: 100%; overflow: hidden; }}
      #graphiql {{ height: 100vh; }}
    </style>
{stylesheets}
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script id="graphiql-config" type="application/json">{config}</script>
{scripts}
  </body>
</html>
"""


def graphiql_csp(nonce: str) -> str:
    """The page's Content-Security-Policy: scripts, styles and connections from this origin
    only (WebSockets included: CSP Level 3 `'self'` matches ws:/wss: of the same host).

    GraphiQL needs `data:` for the fonts and icons inlined in its stylesheet, and `nonce` for
    the page's own <style> and the one react-remove-scroll-bar injects when a dialog opens.
    No inline script runs: the config is a JSON data block, the starter a static file.
    """
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'self' 'nonce-{nonce}'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ))


def graphiql_response(endpoint: str = "/graphql",
                      static_prefix: str = STATIC_PREFIX) -> HTMLResponse:
    """The GraphiQL page with a fresh style nonce and the strict CSP that names it."""
    nonce = secrets.token_urlsafe(18)
    return HTMLResponse(graphiql_html(endpoint, static_prefix, nonce=nonce),
                        headers={"Content-Security-Policy": graphiql_csp(nonce)})


def graphiql_html(endpoint: str = "/graphql", static_prefix: str = STATIC_PREFIX,
                  nonce: str | None = None) -> str:
    """Return the GraphiQL page for `endpoint`, loading its assets from `static_prefix` only;
    with `nonce`, its inline style (and the ones GraphiQL injects) carry it for the CSP."""
    prefix = static_prefix.rstrip("/")
    stylesheets = "\n".join(
        f'    <link rel="stylesheet" href="{_asset_url(prefix, name)}">' for name in _STYLESHEETS
    )
    scripts = "\n".join(
        f'    <script src="{_asset_url(prefix, name)}"></script>' for name in _SCRIPTS
    )
    config: dict[str, str] = {"endpoint": endpoint, "defaultQuery": DEFAULT_QUERY}
    nonce_attribute = ""
    if nonce is not None:
        config["styleNonce"] = nonce
        nonce_attribute = f' nonce="{html.escape(nonce, quote=True)}"'
    return _PAGE.format(stylesheets=stylesheets, scripts=scripts, config=_script_json(config),
                        nonce_attribute=nonce_attribute)


def static_routes(prefix: str = STATIC_PREFIX) -> list[BaseRoute]:
    """Return the route serving the vendored GraphiQL assets under `prefix`."""
    return [Mount(prefix, app=RevalidatedStaticFiles(directory=STATIC_DIR), name="graphiql")]


class RevalidatedStaticFiles(StaticFiles):
    """StaticFiles whose responses are cached but revalidated (ETag) on every use."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """Serve the file with `Cache-Control: no-cache`."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        # File names carry no version: revalidation (a cheap 304) keeps browsers from running
        # stale bundles after scripts/vendor-graphiql refreshes them.
        response.headers["Cache-Control"] = "no-cache"
        return response


def _asset_url(prefix: str, name: str) -> str:
    return html.escape(f"{prefix}/{name}", quote=True)


def _script_json(value: object) -> str:
    # Inside <script> the HTML parser ends the block at "</script"; escaping <, > and &
    # keeps any endpoint or query text from closing it early. JSON.parse restores them.
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
