"""The Starlette application: /graphql (HTTP + graphql-transport-ws), health, GraphiQL assets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET, UnsetType

from api.auth import Unauthenticated, authenticate, bearer_token, keys_required
from api.container import Container, resolve_database_url, start_api
from api.context import Context
from api.errors import PublicError
from api.graphiql import graphiql_response, static_routes
from api.metrics import metrics_endpoint
from api.middleware import RequestContextMiddleware
from api.ratelimit import RateLimited, build_rate_limiter, limiter_of, rate_limited_response
from api.rest import rest_routes
from api.review import review_routes
from api.schema import schema
from api.settings import Settings, get_settings
from api.subscriptions import (
    OVER_HTTP,
    BoundedWebSocketAdapter,
    KeyCheckingTransportWSHandler,
    authenticate_connection,
    is_subscription,
)
from api.uploads import UPLOAD_PATH, upload_source
from db.engine import ping
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
    """Strawberry's ASGI view with our context and an offline GraphiQL page.

    Responses follow GraphQL over HTTP: a client whose `Accept` prefers
    `application/graphql-response+json` gets that media type, a 400 without a `data` entry
    for a request error (document parsing or validation, variable coercion, an operation that
    cannot run), a 403 when its key's role is too low, and 200 whenever execution started.
    Every other client (`application/json`, `*/*`, no `Accept`, or nothing we can produce)
    gets `application/json` exactly as before: 200 with `"data": null` for request errors.
    """

    JSON = "application/json"
    GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
    # WebSockets: frames bounded by MMOS_MAX_REQUEST_BYTES, the key re-checked per operation.
    websocket_adapter_class = BoundedWebSocketAdapter
    graphql_transport_ws_handler_class = KeyCheckingTransportWSHandler

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
        runtime: Container = request.app.state.runtime
        context = Context(runtime=runtime, request=request, response=response,
                          settings=self.settings)
        if isinstance(request, Request):
            # HTTP: the key travels in `Authorization: Bearer`; WebSockets authenticate their
            # `connection_init` payload in on_ws_connect.
            try:
                context.principal = await authenticate(
                    runtime, bearer_token(dict(request.headers)),
                    required=keys_required(self.settings), limiter=limiter_of(request))
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
        return graphiql_response()  # with its own strict Content-Security-Policy

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

    # --- GraphQL over HTTP: media type negotiation and status codes -----------------------

    @classmethod
    def response_media_type(cls, accept: str | None) -> str:
        """The media type to answer with for this `Accept` header.

        Each supported type takes the q-value of the most specific media range matching it
        (a range with a charset other than UTF-8 matches nothing); the higher q wins, then the
        more specific match. On a tie between exact matches graphql-response+json wins; on a
        wildcard tie (`*/*`, `application/*`) application/json does, the spec's default until
        the watershed. No `Accept`, or none we can produce: application/json (the spec lets a
        server disregard the header instead of answering 406).
        """
        if not accept or not accept.strip():
            return cls.JSON
        # media type -> (specificity of the best matching range, its q)
        matches: dict[str, tuple[int, float]] = {}
        for media_range in accept.split(","):
            kind, _, raw_params = media_range.partition(";")
            kind = kind.strip().lower()
            q = 1.0
            usable = "/" in kind
            for param in raw_params.split(";"):
                name, _, value = param.partition("=")
                name, value = name.strip().lower(), value.strip().strip('"').lower()
                if name == "q":
                    try:
                        q = min(max(float(value), 0.0), 1.0)
                    except ValueError:
                        usable = False
                elif name == "charset" and value not in ("utf-8", "utf8"):
                    usable = False
            if not usable:
                continue
            for supported in (cls.JSON, cls.GRAPHQL_RESPONSE_JSON):
                if kind == supported:
                    specificity = 2
                elif kind in ("application/*", "*/*"):
                    specificity = 1 if kind == "application/*" else 0
                else:
                    continue
                if specificity > matches.get(supported, (-1, 0.0))[0]:
                    matches[supported] = (specificity, q)

        def rank(media_type: str) -> tuple[float, int, bool]:
            specificity, q = matches[media_type]
            preferred = cls.GRAPHQL_RESPONSE_JSON if specificity == 2 else cls.JSON
            return q, specificity, media_type == preferred

        acceptable = [media_type for media_type in matches if matches[media_type][1] > 0]
        return max(acceptable, key=rank) if acceptable else cls.JSON

    def _wants_graphql_response(self, request: Request) -> bool:
        return self.response_media_type(
            request.headers.get("accept")) == self.GRAPHQL_RESPONSE_JSON

    @staticmethod
    def is_request_error(result: ExecutionResult) -> bool:
        """No execution started: parsing, validation, variable coercion or a refusal."""
        if isinstance(result, PreExecutionError):
            return True
        # graphql-core reports variable coercion failures as a result without data whose
        # errors have no path; a field error that nulled the root always has a path.
        return (result.data is None and bool(result.errors)
                and all(error.path is None for error in result.errors or ()))

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if isinstance(request, Request) and self._wants_graphql_response(request):
            try:
                return await super().run(request, context, root_value)
            except HTTPException as exc:
                # A malformed request answered as a GraphQL response in the negotiated type.
                return Response(self.encode_json({"errors": [{"message": exc.reason}]}),
                                status_code=exc.status_code,
                                media_type=f"{self.GRAPHQL_RESPONSE_JSON}; charset=utf-8")
        return await super().run(request, context, root_value)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if isinstance(request, Request) and self._wants_graphql_response(request):
            sub_response.media_type = self.GRAPHQL_RESPONSE_JSON
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult
                             ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if self._wants_graphql_response(request) and self.is_request_error(result):
            response.pop("data", None)  # the spec: no `data` entry when execution never began
        return response

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
                        sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type != self.GRAPHQL_RESPONSE_JSON:
            return response
        response.headers["content-type"] = f"{self.GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        if isinstance(response_data, dict) and "data" not in response_data \
                and response.status_code < 400:
            codes = {(error.get("extensions") or {}).get("code")
                     for error in response_data.get("errors") or ()
                     if isinstance(error, dict)}
            response.status_code = 403 if codes == {"FORBIDDEN"} else 400
        return response


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Container | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        async with asyncio.timeout(3):
            await ping(runtime.engine)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"},
                            status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


def metrics_route(settings: Settings) -> Any:
    """/metrics: public unless keys are required (then any valid key, or MMOS_METRICS_PUBLIC)."""

    async def endpoint(request: Request) -> Response:
        if keys_required(settings) and not settings.metrics_public:
            runtime: Container = request.app.state.runtime
            try:
                await authenticate(runtime, bearer_token(dict(request.headers)), required=True)
            except Unauthenticated as exc:
                return JSONResponse({"error": str(exc)}, status_code=401)
        return await metrics_endpoint(request)

    return endpoint


def create_app(settings: Settings | None = None, runtime: Container | None = None,
               database_url: str | None = None) -> Starlette:
    """Build the app; with no `runtime`, one is started (and closed) by the lifespan."""
    settings = settings or get_settings()
    view = GraphQLView(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = runtime is None
        if owned:
            url = database_url or resolve_database_url(settings)
            app.state.runtime = await start_api(settings, url)
        else:
            app.state.runtime = runtime
        try:
            yield
        finally:
            if app.state.rate_limiter is not None:
                await app.state.rate_limiter.aclose()
            if owned:
                await app.state.runtime.close()

    routes: list[BaseRoute] = [
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_route(settings)),
        *static_routes(),
        *review_routes(),  # the review page, /review (api/review.py)
        Route(UPLOAD_PATH, upload_source, methods=["POST"]),  # files (api/uploads.py)
        *rest_routes(),
    ]
    # Over its key's rate limit: 429 with Retry-After (api/ratelimit.py).
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={RateLimited: rate_limited_response})
    app.state.settings = settings
    app.state.rate_limiter = build_rate_limiter(settings)
    if runtime is not None:
        app.state.runtime = runtime
    # Also: security headers on every response; keyless mode stays local (api/middleware.py).
    # An upload's body is its file plus the form around it.
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes,
                       settings=settings,
                       path_limits={UPLOAD_PATH: settings.max_upload_bytes + 1024 * 1024})
    return app
