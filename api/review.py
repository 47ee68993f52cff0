"""The review page (/review): a client of the public GraphQL API, served from local assets.

Preact and htm are vendored UMD builds (scripts/vendor-review); the page's own modules sit
beside them in api/static/review/. Nothing is loaded from another origin and no inline script
or style runs, so the Content-Security-Policy is `'self'` only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route

from api.graphiql import RevalidatedStaticFiles

STATIC_DIR = Path(__file__).parent / "static" / "review"
STATIC_PREFIX = "/review/static"

# Classic scripts first (they define the preact, preactHooks and htm globals), then the app.
VENDOR_SCRIPTS = ("vendor/preact.min.umd.js", "vendor/hooks.umd.js", "vendor/htm.umd.js")
APP_MODULE = "app.js"
STYLESHEET = "review.css"

CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))


def review_html(static_prefix: str = STATIC_PREFIX) -> str:
    """The page shell: a heading shown until the app has loaded, then the app's modules."""
    scripts = "\n".join(f'    <script src="{static_prefix}/{name}" defer></script>'
                        for name in VENDOR_SCRIPTS)
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>MMOS review</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{static_prefix}/{STYLESHEET}">
{scripts}
    <script type="module" src="{static_prefix}/{APP_MODULE}"></script>
  </head>
  <body>
    <div id="app"><main><h1>MMOS review</h1>
      <p id="boot-message">Loading the review page… It needs JavaScript.</p></main></div>
  </body>
</html>
"""


async def review_page(request: Request) -> HTMLResponse:
    """GET /review: the page, with its strict Content-Security-Policy."""
    return HTMLResponse(review_html(), headers={"Content-Security-Policy": CSP})


def review_routes() -> list[BaseRoute]:
    """The page and its static assets (revalidated caching, like GraphiQL's)."""
    return [
        Route("/review", review_page, methods=["GET"]),
        Mount(STATIC_PREFIX, app=RevalidatedStaticFiles(directory=STATIC_DIR), name="review"),
    ]
