"""HTTP and GraphQL metrics, and the /metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
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
                "/process/multi-model", "/reports/savings"}
# Clients choose the method token too ("BREW", "FOO1"…): anything else is counted as "other".
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
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


def method_label(method: str) -> str:
    """One of the standard methods, else "other": a bounded label whatever clients send."""
    return method if method in _KNOWN_METHODS else "other"


def observe_http(method: str, path: str, status: int, seconds: float) -> None:
    label, verb = path_label(path), method_label(method)
    HTTP_REQUESTS.labels(verb, label, str(status)).inc()
    HTTP_SECONDS.labels(verb, label).observe(seconds)


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


# --- The internal listener (MMOS_METRICS_PORT) --------------------------------------------

_REFRESH_TIMEOUT_SECONDS = 5.0


class _RefreshedRegistry(Collector):
    """REGISTRY as /metrics renders it: the shared totals are re-read from PostgreSQL first.

    The listener answers in its own threads, which cannot use the server's loop-bound pool:
    each refresh opens one short connection (skipped while the snapshot is fresh)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterable[Metric]:
        self._refresh()
        return REGISTRY.collect()

    def restricted_registry(self, names: Iterable[str]) -> Any:
        self._refresh()
        return REGISTRY.restricted_registry(names)

    def _refresh(self) -> None:
        # Export the process's own metrics even when the database is down.
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(_refresh_over(self.database_url),
                                         _REFRESH_TIMEOUT_SECONDS))


async def _refresh_over(database_url: str) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from db.engine import make_engine

    engine = make_engine(database_url, null_pool=True)
    try:
        async with AsyncSession(engine) as session:
            await _database.refresh(session)
    finally:
        await engine.dispose()


def serve_internal_metrics(port: int, host: str, database_url: str) -> None:
    """Start a plain Prometheus listener (no key) on `host:port`, in daemon threads.

    For a scraper on a private network (compose's Prometheus): never publish this port.
    The public /metrics route keeps its own access rules."""
    start_http_server(port, addr=host, registry=_RefreshedRegistry(database_url))
