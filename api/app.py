"""The Starlette application: /graphql (HTTP + graphql-transport-ws), health, GraphiQL assets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.bootstrap import Runtime, start_runtime
from api.context import Context
from api.graphiql import graphiql_html, static_routes
from api.middleware import RequestContextMiddleware
from api.schema import schema, use_settings
from api.settings import Settings, get_settings


def _check_strings(value: Any, where: str = "request") -> None:
    """Refuse NUL characters and lone surrogates anywhere: PostgreSQL cannot store them."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise HTTPException(400, f"the {where} contains a NUL character (\\u0000), "
                                         "which is not allowed in any string")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise HTTPException(400, f"the {where} contains a lone UTF-16 surrogate; "
                                         "send valid Unicode text") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class GraphQLView(GraphQL):  # type: ignore[type-arg]
    """Strawberry's ASGI view with our context and an offline GraphiQL page."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            **kwargs,
        )
        self.settings = settings

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        runtime: Runtime = request.app.state.runtime
        return Context(runtime=runtime, request=request, response=response)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html())

    def decode_json(self, data: str | bytes) -> object:
        decoded = super().decode_json(data)
        if isinstance(decoded, list):
            if not decoded or not all(isinstance(item, dict) for item in decoded):
                raise HTTPException(400, "a batched request must be a non-empty JSON array of "
                                         "operation objects")
        elif not isinstance(decoded, dict):
            raise HTTPException(400, "the request body must be a JSON object with a `query`")
        _check_strings(decoded)
        return decoded

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        parsed = super().parse_query_params(params)
        _check_strings(parsed, "query string")
        return parsed


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        async with asyncio.timeout(3):
            async with runtime.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"},
                            status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None,
               database_url: str | None = None) -> Starlette:
    """Build the app; with no `runtime`, one is started (and closed) by the lifespan."""
    settings = settings or get_settings()
    use_settings(settings)
    view = GraphQLView(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = runtime is None
        if owned:
            from api.bootstrap import resolve_database_url
            from api.wiring import attach_processing

            url = database_url or resolve_database_url(settings)
            app.state.runtime = await start_runtime(settings, database_url=url)
            await attach_processing(app.state.runtime, url)
        else:
            app.state.runtime = runtime
        try:
            yield
        finally:
            if owned:
                await app.state.runtime.close()

    routes: list[BaseRoute] = [
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *static_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    if runtime is not None:
        app.state.runtime = runtime
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    return app
