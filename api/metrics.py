"""HTTP and GraphQL metrics, and the /metrics endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from workers.metrics import DatabaseCollector

HTTP_REQUESTS = Counter("mmos_http_requests_total", "HTTP requests", ["method", "path", "status"])
HTTP_SECONDS = Histogram("mmos_http_request_seconds", "HTTP request latency", ["method", "path"])
GRAPHQL_OPERATIONS = Counter("mmos_graphql_operations_total", "GraphQL operations",
                             ["operation", "type", "outcome"])
GRAPHQL_SECONDS = Histogram("mmos_graphql_operation_seconds", "GraphQL operation latency",
                            ["operation", "type"])

_KNOWN_PATHS = {"/graphql", "/healthz", "/readyz", "/metrics", "/sources",
                "/process/multi-model"}
_MAX_OPERATION_NAMES = 200
_operation_names: set[str] = set()
_database = DatabaseCollector()
REGISTRY.register(_database)


def path_label(path: str) -> str:
    """Bounded label values: unknown paths collapse so scanners cannot explode the series."""
    if path in _KNOWN_PATHS:
        return path
    if path.startswith("/reports/optimization/"):
        return "/reports/optimization/{source_id}"
    if path.startswith("/static/"):
        return "/static"
    return "other"


def observe_http(method: str, path: str, status: int, seconds: float) -> None:
    label = path_label(path)
    HTTP_REQUESTS.labels(method, label, str(status)).inc()
    HTTP_SECONDS.labels(method, label).observe(seconds)


class OperationMetrics(SchemaExtension):
    """Counts and times each GraphQL operation by name and type."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        name = _bounded_name(context.operation_name)
        try:
            kind = context.operation_type.value
        except Exception:  # the document did not parse
            kind = "invalid"
        result = context.result
        outcome = "error" if result is not None and getattr(result, "errors", None) else "ok"
        GRAPHQL_OPERATIONS.labels(name, kind, outcome).inc()
        GRAPHQL_SECONDS.labels(name, kind).observe(time.perf_counter() - started)


def _bounded_name(name: str | None) -> str:
    # Operation names are chosen by clients: cap the number of distinct label values.
    if not name:
        return "anonymous"
    name = name[:64]
    if name in _operation_names:
        return name
    if len(_operation_names) < _MAX_OPERATION_NAMES:
        _operation_names.add(name)
        return name
    return "other"


async def metrics_endpoint(request: Request) -> Response:
    runtime: Any = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        try:
            async with runtime.read() as session:
                await _database.refresh(session)
        except Exception:  # export the process's own metrics even when the database is down
            pass
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
