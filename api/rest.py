"""REST compatibility with the original MMOS README: thin adapters over the same use cases.

`POST /sources`, `POST /sources/{source_id}/reference`, `POST /process/multi-model`,
`GET /reports/optimization/{source_id}` and `GET /reports/savings`. Bodies use the original
snake_case names; validation and errors are the GraphQL mutations' own, rendered as JSON with
field paths: `{"error": {"type", "message", "fields": [{"path", "field", "message"}]}}` with
400 (not JSON), 415 (a body not sent as `application/json`), 401/403 (keys), 404, 409, 422 or 429
(over the key's rate limit, with Retry-After) — never a 500 for anything a client sent.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api.container import Container
from api.ids import parse_id, to_global
from domain import model as m
from domain.errors import (
    Conflict,
    DomainError,
    FieldIssue,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from domain.optimizer import Candidate
from domain.performance import PerformanceRecord
from domain.quality import PairedDelta
from domain.services import processing, reference, reports, sources
from domain.sources import is_valid_unicode

log = logging.getLogger("mmos.rest")

SOURCE_FIELDS = ("source_code", "title", "source_type", "quality", "extraction_priority",
                 "content", "language", "author", "url", "source_date", "notes",
                 "content_format", "subject")
ENUM_FIELDS = {"source_type": m.SourceType, "quality": m.SourceQuality,
               "extraction_priority": m.ExtractionPriority}
# GraphQL argument names that differ from the REST body's beyond camelCase.
RENAMED = {"sourceIds": "source_id", "sourceId": "source_id"}


class BadRequest(Exception):
    """The body is not a JSON object of the expected shape."""


# --- rendering --------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return RENAMED.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_response(exc: Exception) -> JSONResponse:
    """A domain error (or a malformed body) as the JSON error of its HTTP status."""
    if isinstance(exc, BadRequest):
        return _error(400, "bad_request", str(exc))
    if isinstance(exc, InvalidInput):
        fields = [{"path": [_snake(p) for p in issue.path],
                   "field": ".".join(_snake(p) for p in issue.path), "message": issue.message}
                  for issue in exc.issues]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(422, "validation_error", message, fields)
    if isinstance(exc, NotFound):
        return _error(404, "not_found", exc.message, _path_fields(exc.path, exc.message))
    if isinstance(exc, Conflict):
        return _error(409, "conflict", exc.message, _path_fields(exc.path, exc.message))
    if isinstance(exc, PermissionDenied):
        return _error(403, "forbidden", exc.message)
    if isinstance(exc, DomainError):
        return _error(422, "error", exc.message)
    raise exc


def _path_fields(path: tuple[str, ...], message: str) -> list[dict[str, Any]]:
    if not path:
        return []
    names = [_snake(p) for p in path]
    return [{"path": names, "field": ".".join(names), "message": message}]


def _error(status: int, kind: str, message: str,
           fields: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "fields": fields or []}},
                        status_code=status)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def source_json(row: Any) -> dict[str, Any]:
    """A stored source as the REST routes return it (numeric id plus the GraphQL global id)."""
    return {"id": row.id, "global_id": to_global("Source", row.id or 0),
            "source_code": row.source_code, "title": row.title,
            "source_type": row.source_type, "quality": row.quality,
            "extraction_priority": row.extraction_priority, "status": row.status,
            "language": row.language, "author": row.author, "url": row.url,
            "source_date": row.source_date.isoformat() if row.source_date else None,
            "word_count": row.word_count, "char_count": row.char_count,
            "content_sha256": row.content_sha256,
            "created_at": row.created_at.isoformat() if row.created_at else None}


def _entry(r: PerformanceRecord) -> dict[str, Any]:
    return {"model": r.model, "run_id": r.run_id, "batch_id": r.batch_id,
            "quality_score": r.quality_score, "quality_low": r.quality_low,
            "quality_high": r.quality_high, "provisional": r.provisional,
            "reference": {"kind": r.reference_kind, "model": r.reference_model},
            "grounded_rate": r.grounded_rate, "miu_rate": r.miu_rate,
            "precision": r.precision, "recall": r.recall, "f1": r.f1,
            "coverage": r.coverage,
            "coverage_ratio": r.metrics.get("quality", {}).get("coverageRatio"),
            "mean_relevance": r.mean_relevance, "fragment_count": r.fragment_count,
            "grounded_fragment_count": r.grounded_fragment_count,
            "cost_usd": _money(r.cost_usd), "cost_per_fragment": _money(r.cost_per_fragment),
            "cost_per_1k_chars": _money(r.cost_per_1k_chars), "latency_ms": r.latency_ms,
            "is_reference": r.is_reference,
            "vs_reference": _paired(r.vs_reference),
            "span_metrics": r.span_metrics or None}


def _paired(d: PairedDelta | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"reference_model": d.baseline_model, "reference_run_id": d.baseline_run_id,
            "reference_quality": d.baseline_score, "quality_delta": d.delta, "low": d.low,
            "high": d.high, "quality_delta_pct": d.pct, "low_pct": d.pct_low,
            "high_pct": d.pct_high, "significant": d.significant, "verdict": d.verdict,
            "margin": d.margin, "chunks": d.chunks, "sources": d.sources,
            "chunks_needed": d.chunks_needed, "summary": d.claim()}


def _candidate(c: Candidate) -> dict[str, Any]:
    return {"model": c.model, "quality": c.quality, "quality_low": c.quality_low,
            "quality_high": c.quality_high, "provisional": c.provisional,
            "cost_usd": _money(c.cost_usd), "cost_per_fragment": _money(c.cost_per_fragment),
            "cost_per_1k_chars": _money(c.cost_per_1k_chars),
            "grounded_fragment_count": c.grounded_fragments, "samples": c.samples,
            "vs_reference": _paired(c.paired)}


def sweet_spot_json(s: reports.SweetSpotReport) -> dict[str, Any]:
    r = s.result
    return {"model": r.model, "qualified": r.qualified, "reason": r.reason,
            "threshold": s.threshold, "budget_per_fragment": _money(s.budget_per_fragment),
            "reference_model": s.reference_model,
            "savings_vs_reference": _money(r.savings_vs_reference),
            "pareto_frontier": [_candidate(c) for c in r.frontier],
            "candidates": [_candidate(c) for c in s.candidates]}


def savings_json(line: reports.SavingsLine) -> dict[str, Any]:
    row = line.row
    return {"source_type": line.source_type, "threshold": line.threshold,
            "qualified": line.qualified, "reason": line.reason,
            "original_model": line.reference.model if line.reference else None,
            "optimized_model": row.optimized_model if row else None,
            "original_quality": line.reference.quality if line.reference else None,
            "optimized_quality": row.optimized_quality if row else None,
            "quality_change_pct": row.quality_change_pct if row else None,
            "quality_change": row.quality_change_text if row else None,
            "vs_reference": _paired(row.paired) if row else None,
            "cost_saving_pct": _money(row.cost_saving_pct) if row else None,
            "spend_saving_pct": _money(row.spend_saving_pct) if row else None,
            "samples": row.samples if row else (line.reference.samples if line.reference
                                                else 0),
            "interval": list(row.interval) if row else None,
            "cache_saved_usd": _money(row.cache_saved_usd) if row else None,
            "batch_saved_usd": _money(row.batch_saved_usd) if row else None}


def _mode(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput.single(("mode",), "must be \"interactive\" or \"batch\"")


def report_json(report: reports.OptimizationReport) -> dict[str, Any]:
    """The optimization report of one source as JSON."""
    c = report.comparison
    return {"source": source_json(report.source),
            "reference": {"kind": c.reference.kind, "model": c.reference.model,
                          "run_id": c.reference.run_id},
            "pending_runs": c.pending_runs,
            "comparison": [_entry(r) for r in c.entries],
            "sweet_spot": sweet_spot_json(report.sweet_spot),
            "savings": savings_json(report.savings) if report.savings else None,
            "recommendation": report.recommendation}


# --- parsing ------------------------------------------------------------------------------------

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Endpoint = Callable[[Request], Awaitable[Response]]


def is_json_media_type(value: str | None) -> bool:
    """`application/json`, with no charset or UTF-8 (the only encoding JSON may use)."""
    kind, _, params = (value or "").partition(";")
    if kind.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, given = param.partition("=")
        if name.strip().lower() == "charset" \
                and given.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def json_bodies_only(endpoint: Endpoint) -> Endpoint:
    """415 for a POST/PUT/PATCH whose body is not declared `application/json`.

    Browsers send `text/plain`, form and multipart bodies cross-site without a CORS
    preflight; requiring JSON keeps another site's page from starting runs (and spending
    money) through a local server. Checked before the key and before the body is read."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        declared = request.headers.get("content-type")
        if request.method in BODY_METHODS and not is_json_media_type(declared):
            shown = f"`{declared[:100]}`" if declared else "none"
            return _error(415, "unsupported_media_type",
                          "the body must be JSON sent with `Content-Type: application/json` "
                          f"(this request's content type: {shown})")
        return await endpoint(request)

    return wrapped


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    _refuse_bad_text(body)
    return body


def _refuse_bad_text(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and ("\x00" in item or not is_valid_unicode(item)):
            raise BadRequest("the body contains a NUL character or a lone surrogate")
        if isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            stack.extend(item)


def _source_raw(body: dict[str, Any]) -> dict[str, Any]:
    issues: list[FieldIssue] = []
    unknown = sorted(set(body) - set(SOURCE_FIELDS))
    for name in unknown:
        issues.append(FieldIssue((str(name)[:64],), f"is not a field of a source; use "
                                 f"{', '.join(SOURCE_FIELDS)}"))
    raw: dict[str, Any] = {}
    for name in SOURCE_FIELDS:
        value = body.get(name)
        if name == "subject":
            # {"name": "...", "aliases": [...]}: validated by the use case, field by field.
            if value is not None:
                raw[name] = value
            continue
        if value is not None and not isinstance(value, str):
            issues.append(FieldIssue((name,), "must be a string"))
            continue
        if name in ENUM_FIELDS and value is not None:
            enum_cls = ENUM_FIELDS[name]
            allowed = [e.value for e in enum_cls]
            if value.strip().lower() not in allowed:
                issues.append(FieldIssue((name,), f"must be one of {', '.join(allowed)}"))
                continue
            value = enum_cls(value.strip().lower())
        if name == "source_date" and value is not None:
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                issues.append(FieldIssue((name,), "must be a date as YYYY-MM-DD"))
                continue
        raw[name] = value
    if issues:
        raise InvalidInput(issues)
    return raw


def _source_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput.single(("source_id",), "must be a source id (number or global id)")
    return parse_id(str(value), "Source", ("source_id",))


def _models(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput.single(("models",), "must be a list of model names")
    return value


def _budget(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput.single(("budget_usd",), "must be a decimal amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput.single(("budget_usd",), "must be a decimal amount") from None
    if not amount.is_finite():
        raise InvalidInput.single(("budget_usd",), "must be a decimal amount")
    return amount


# --- access -------------------------------------------------------------------------------------


async def _allow(request: Request, role: str) -> JSONResponse | None:
    """The same API keys and roles as GraphQL; None when the caller may go on."""
    from api.auth import Unauthenticated, authenticate, bearer_token, keys_required
    from api.ratelimit import RateLimited, limiter_of, retry_after_headers

    runtime = _runtime(request)
    try:
        settings = getattr(request.app.state, "settings", runtime.settings)
        principal = await authenticate(runtime, bearer_token(dict(request.headers)),
                                       required=keys_required(settings),
                                       limiter=limiter_of(request))
    except Unauthenticated as exc:
        return _error(401, "unauthenticated", str(exc))
    except RateLimited as exc:
        response = _error(429, "rate_limited", str(exc))
        response.headers.update(retry_after_headers(exc))
        return response
    if not principal.allows(role):
        return _error(403, "forbidden", f"this needs the {role} role; your key has "
                                        f"{principal.role}")
    return None


def _runtime(request: Request) -> Container:
    runtime: Container = request.app.state.runtime
    return runtime


# --- routes ------------------------------------------------------------------------------------


async def create_source(request: Request) -> Response:
    """`POST /sources`: the createSource mutation."""
    if (denied := await _allow(request, "editor")) is not None:
        return denied
    runtime = _runtime(request)
    try:
        raw = _source_raw(await _body(request))
        row = await sources.create_source(runtime.ports, raw, prefix=())
        return JSONResponse(source_json(row), status_code=201)
    except (DomainError, BadRequest) as exc:
        return error_response(exc)


async def process_multi_model(request: Request) -> Response:
    """`POST /process/multi-model`: the startMultiModelProcessing mutation."""
    if (denied := await _allow(request, "operator")) is not None:
        return denied
    runtime = _runtime(request)
    try:
        body = await _body(request)
        issues = [FieldIssue((name,), "is required") for name in ("source_id", "models")
                  if body.get(name) is None]
        issues += [FieldIssue((str(name)[:64],), "is not a field of this request")
                   for name in sorted(set(body) - {"source_id", "models", "budget_usd",
                                                    "mode"})]
        if issues:
            raise InvalidInput(issues)
        source_id = _source_id(body["source_id"])
        started = await processing.start_processing(
            runtime.ports, source_ids=[source_id], model_names=_models(body["models"]),
            strategy=None, budget_usd=_budget(body.get("budget_usd")), path=(),
            mode=_mode(body.get("mode")))
        batches = await processing.batches(runtime.ports, started.batch_ids)
        return JSONResponse({
            "group_id": started.group_id, "source_id": source_id,
            "batches": [{"id": b.id, "global_id": to_global("Batch", b.id or 0),
                         "model": b.model_name, "status": b.status}
                        for b in batches if b is not None],
            "report_url": f"/reports/optimization/{source_id}"}, status_code=202)
    except (DomainError, BadRequest) as exc:
        return error_response(exc)


async def optimization_report(request: Request) -> Response:
    """`GET /reports/optimization/{source_id}`: the optimizationReport query."""
    if (denied := await _allow(request, "viewer")) is not None:
        return denied
    try:
        source_id = parse_id(request.path_params["source_id"], "Source", ("source_id",))
        report = await reports.optimization_report(_runtime(request).ports, source_id,
                                                   ("source_id",))
        return JSONResponse(report_json(report))
    except DomainError as exc:
        return error_response(exc)


async def savings(request: Request) -> Response:
    """`GET /reports/savings`: the savingsReport query (rows plus the Markdown table)."""
    if (denied := await _allow(request, "viewer")) is not None:
        return denied
    lines = await reports.savings_report(_runtime(request).ports)
    return JSONResponse({"rows": [savings_json(line) for line in lines],
                         "table": reports.savings_table(lines)})


REFERENCE_FIELDS = ("format", "data", "reviewer", "file_name")


def reference_json(result: reference.ImportResult) -> dict[str, Any]:
    """An import's outcome as the REST route returns it."""
    return {
        "source_id": result.source_id,
        "created": result.created, "updated": result.updated, "unchanged": result.unchanged,
        "grounded_count": len(result.grounded), "ungrounded_count": len(result.ungrounded),
        "grounded": [{"id": row.id, "global_id": to_global("ReferenceFragment", row.id or 0),
                      "external_id": row.external_id, "char_start": row.char_start,
                      "char_end": row.char_end, "grounding": row.grounding,
                      "grounding_score": row.grounding_score, "category": row.category,
                      "fragment_type": row.fragment_type,
                      "verification_status": row.verification_status}
                     for row in result.grounded],
        "ungrounded": [{"external_id": item.external_id, "content": item.content,
                        "closest_start": item.closest_start, "closest_end": item.closest_end,
                        "closest_text": item.closest_text, "score": item.score,
                        "line": item.line} for item in result.ungrounded],
    }


async def import_reference(request: Request) -> Response:
    """`POST /sources/{source_id}/reference`: the importReferenceFragments mutation."""
    if (denied := await _allow(request, "editor")) is not None:
        return denied
    runtime = _runtime(request)
    try:
        source_id = parse_id(request.path_params["source_id"], "Source", ("source_id",))
        body = await _body(request)
        if "fileName" in body and "file_name" not in body:
            body["file_name"] = body.pop("fileName")
        issues = [FieldIssue((str(name)[:64],), "is not a field of this request; use "
                                                f"{', '.join(REFERENCE_FIELDS)}")
                  for name in sorted(set(body) - set(REFERENCE_FIELDS))]
        issues += [FieldIssue((name,), "is required") for name in ("format", "data", "reviewer")
                   if body.get(name) is None]
        issues += [FieldIssue((name,), "must be a string") for name in REFERENCE_FIELDS
                   if body.get(name) is not None and not isinstance(body[name], str)]
        if issues:
            raise InvalidInput(issues)
        result = await reference.import_reference_fragments(
            runtime.ports, source_id, body["format"], body["data"], body["reviewer"],
            body.get("file_name"), prefix=())
        return JSONResponse(reference_json(result), status_code=201)
    except (DomainError, BadRequest) as exc:
        return error_response(exc)


def rest_routes() -> list[BaseRoute]:
    """The REST compatibility routes, to mount next to /graphql."""
    return [
        Route("/sources", json_bodies_only(create_source), methods=["POST"]),
        Route("/sources/{source_id}/reference", json_bodies_only(import_reference),
              methods=["POST"]),
        Route("/process/multi-model", json_bodies_only(process_multi_model), methods=["POST"]),
        Route("/reports/optimization/{source_id}", json_bodies_only(optimization_report),
              methods=["GET"]),
        Route("/reports/savings", json_bodies_only(savings), methods=["GET"]),
    ]
