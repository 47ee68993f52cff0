"""The Starlette application: /graphql (HTTP + graphql-transport-ws), health, GraphiQL assets."""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from api.auth import Unauthenticated, authenticate, bearer_token, keys_required
from api.bootstrap import Runtime, start_runtime
from api.context import Context
from api.errors import PublicError
from api.graphiql import graphiql_html, static_routes
from api.metrics import metrics_endpoint
from api.middleware import RequestContextMiddleware
from api.rest import rest_routes
from api.schema import schema, use_settings
from api.settings import Settings, get_settings
from api.subscriptions import OVER_HTTP, authenticate_connection, is_subscription
from domain.errors import PermissionDenied


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
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            **kwargs,
        )
        self.settings = settings

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        runtime: Runtime = request.app.state.runtime
        context = Context(runtime=runtime, request=request, response=response)
        if isinstance(request, Request):
            # HTTP: the key travels in `Authorization: Bearer`; WebSockets authenticate their
            # `connection_init` payload in on_ws_connect.
            try:
                context.principal = await authenticate(
                    runtime, bearer_token(dict(request.headers)),
                    required=keys_required(self.settings))
            except Unauthenticated as exc:
                raise HTTPException(401, str(exc)) from None
        return context

    async def on_ws_connect(  # type: ignore[override]
            self, context: Context) -> UnsetType | dict[str, object] | None:
        """`connection_init`: Strawberry stored its payload on the context; authenticate it."""
        try:
            context.principal = await authenticate_connection(context.connection_params,
                                                              context.runtime)
        except PermissionDenied as exc:
            raise ConnectionRejectionError({"message": exc.message}) from None
        return UNSET

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any,
                             context: Any, root_value: Any, request_data: Any
                             ) -> ExecutionResult:
        # Subscriptions stream over WebSocket only: over HTTP they are a client error.
        if is_subscription(request_data.query, request_data.operation_name,
                           self.settings.max_query_tokens):
            return ExecutionResult(data=None, errors=[PublicError(OVER_HTTP)])
        return await super().execute_single(
            request=request, request_adapter=request_adapter, sub_response=sub_response,
            context=context, root_value=root_value, request_data=request_data)

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
        # GET `variables`/`extensions` are JSON objects in a query string, not request bodies.
        parsed = dict(params)
        for name in ("variables", "extensions"):
            if parsed.get(name):
                try:
                    value = json.loads(parsed[name])
                except ValueError:
                    raise HTTPException(400, f"Unable to parse `{name}` in the query string "
                                             "as JSON") from None
                if not isinstance(value, dict):
                    raise HTTPException(400, f"The GraphQL operation's `{name}` must be an "
                                             "object or null, if provided.")
                parsed[name] = value
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


def metrics_route(settings: Settings) -> Any:
    """/metrics: public unless keys are required (then any valid key, or MMOS_METRICS_PUBLIC)."""

    async def endpoint(request: Request) -> Response:
        if keys_required(settings) and not settings.metrics_public:
            runtime: Runtime = request.app.state.runtime
            try:
                await authenticate(runtime, bearer_token(dict(request.headers)), required=True)
            except Unauthenticated as exc:
                return JSONResponse({"error": str(exc)}, status_code=401)
        return await metrics_endpoint(request)

    return endpoint


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
        Route("/metrics", metrics_route(settings)),
        *static_routes(),
        *rest_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    if runtime is not None:
        app.state.runtime = runtime
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    return app
