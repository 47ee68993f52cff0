"""ASGI middleware: request ids, access logs, body size limits, no stack traces to clients,
security headers on every response, and keyless mode kept on the local machine."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import uuid
from typing import Any

import structlog

from api.auth import keys_required
from api.metrics import observe_http

log = structlog.get_logger("mmos.http")
Scope = dict[str, Any]
Headers = list[tuple[bytes, bytes]]

# Added to every response that does not set them itself. A page with its own CSP (GraphiQL,
# api/graphiql.py) keeps it; it carries `frame-ancestors 'none'` too. Static assets set their
# own Cache-Control (revalidated caching); everything else, API data first, is `no-store`.
# HSTS is not sent: MMOS may run on plain HTTP locally; the TLS proxy adds it (SECURITY.md).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)

# Answered even in keyless mode whatever the Host or proxy headers: probes reveal nothing.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})

# The in-process test transports (httpx.ASGITransport, Starlette's TestClient) address the
# app as http://testserver and put that name in scope["server"]; a real server puts its bound
# socket address there. `testserver` is a loopback name only then, and only with MMOS_ENV=test.
TEST_HOST = "testserver"

HOW_TO_USE_KEYS = (
    "create a key with `mmos keys create --role operator`, run with keys required "
    "(MMOS_ENV=production, or bind beyond loopback, e.g. `mmos serve --host 0.0.0.0`) and "
    "send `Authorization: Bearer <key>`"
)


def with_security_headers(headers: Any) -> Headers:
    """`headers` plus each security header the response does not already set."""
    present = {bytes(name).lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in SECURITY_HEADERS
                        if name not in present)]


def _json_response(status: int, body: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
    payload = json.dumps(body).encode()
    headers = with_security_headers([
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()),
    ])
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    ]


def host_name(value: str) -> str | None:
    """The name of a `Host` header value without its port (`[::1]:8000` -> `::1`); None when
    it is not a well-formed host[:port]."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return None
    else:
        name, colon, port = value.partition(":")
        rest = f":{port}" if colon else ""
    if rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit()):
        return None
    return name or None


def is_loopback_name(name: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name or "").is_loopback
    except ValueError:
        return False


def keyless_refusal(scope: Scope, settings: Any) -> str | None:
    """Why a keyless server refuses this request (HTTP or WebSocket), None when it may go on.

    Without keys every caller is the local developer (an operator), which is only true for a
    request that reached the loopback interface directly: a proxy in front (Forwarded,
    X-Forwarded-*, X-Real-IP) or a Host that is not a loopback name (a DNS rebinding page in
    the developer's browser) means someone else may be calling.
    """
    if scope.get("path") in OPEN_PATHS:
        return None
    raw: Headers = list(scope.get("headers") or [])
    proxied = sorted({name.decode("latin-1").lower() for name, _ in raw
                      if name.lower() in (b"forwarded", b"x-real-ip")
                      or name.lower().startswith(b"x-forwarded-")})
    if proxied:
        return (f"refused: this request came through a proxy (it carries {', '.join(proxied)}) "
                "but MMOS runs without API keys, which is safe only for requests made on this "
                f"machine. Behind a proxy keys are required: {HOW_TO_USE_KEYS}.")
    hosts = [value.decode("latin-1") for name, value in raw if name.lower() == b"host"]
    server = scope.get("server") or (None,)
    testing = settings.env == "test" and server[0] == TEST_HOST
    for value in hosts or [""]:
        name = host_name(value)
        if is_loopback_name(name) or (testing and name == TEST_HOST):
            continue
        shown = value[:100] if value else "(none)"
        return (f"refused by DNS rebinding protection: without API keys MMOS answers only "
                f"requests addressed to localhost, 127.0.0.1 or [::1], not Host {shown!r}. "
                f"To serve other host names, {HOW_TO_USE_KEYS}.")
    return None


class RequestContextMiddleware:
    """Tags every request with an id, logs it, caps its body, turns crashes into JSON 500s,
    adds the security headers to every response and, in keyless mode, refuses requests that
    did not come straight from this machine (see keyless_refusal).

    Parameters:
      app: the wrapped ASGI app.
      max_body_bytes: requests with a larger body get 413 before the app sees them.
      path_limits: other limits for some paths (the file upload's is larger).
      settings: the app's settings; keyless mode (api/auth.py keys_required false) turns the
        Host and proxy-header checks on. None: no such checks.
    """

    def __init__(self, app: Any, max_body_bytes: int, settings: Any = None,
                 path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})
        self.settings = settings
        self.keyless = settings is not None and not keys_required(settings)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = incoming if incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = {"code": 0}
        try:
            refusal = keyless_refusal(scope, self.settings) if self.keyless else None
            if scope["type"] == "websocket":
                if refusal is not None:
                    await _refuse_websocket(scope, send, refusal, request_id)
                    return
                await self.app(scope, receive, self._tagged_websocket(send))
                return
            if refusal is not None:
                for message in _json_response(
                        403, {"errors": [{"message": refusal,
                                          "extensions": {"code": "FORBIDDEN"}}]}, request_id):
                    await send(message)
                status["code"] = 403
                return
            limit = self.path_limits.get(scope.get("path", ""), self.max_body_bytes)
            declared = headers.get(b"content-length")
            too_big = (declared is not None and declared.isascii() and declared.isdigit()
                       and int(declared) > limit)
            if too_big:
                for message in _json_response(
                    413,
                    {
                        "errors": [
                            {"message": (f"request body exceeds {limit} bytes")}
                        ]
                    },
                    request_id,
                ):
                    await send(message)
                status["code"] = 413
                return
            await self.app(scope, self._limited(receive, limit),
                           self._tagged(send, request_id, status))
        except _BodyTooLarge as exc:
            if status["code"] == 0:
                for message in _json_response(
                    413,
                    {
                        "errors": [
                            {"message": (f"request body exceeds {exc.limit} bytes")}
                        ]
                    },
                    request_id,
                ):
                    await send(message)
                status["code"] = 413
        except Exception:
            logging.getLogger("mmos.http").exception("unhandled error")
            if status["code"] == 0:
                for message in _json_response(
                    500,
                    {"errors": [{"message": ("Internal error; it has been logged.")}]},
                    request_id,
                ):
                    await send(message)
                status["code"] = 500
        finally:
            if scope["type"] == "http":
                observe_http(scope.get("method", ""), scope.get("path", ""), status["code"],
                             time.perf_counter() - started)
            if scope["type"] == "http" and scope.get("path") not in ("/healthz", "/metrics"):
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status["code"],
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")

    @staticmethod
    def _limited(receive: Any, limit: int) -> Any:
        seen = {"bytes": 0}

        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    raise _BodyTooLarge(limit)
            return message  # type: ignore[no-any-return]

        return wrapped

    @staticmethod
    def _tagged(send: Any, request_id: str, status: dict[str, int]) -> Any:
        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = with_security_headers(
                    [*message["headers"], (b"x-request-id", request_id.encode())])
            await send(message)

        return wrapped

    @staticmethod
    def _tagged_websocket(send: Any) -> Any:
        """A handshake refused with an HTTP response gets the security headers too."""
        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.http.response.start":
                message["headers"] = with_security_headers(message.get("headers") or [])
            await send(message)

        return wrapped


async def _refuse_websocket(scope: Scope, send: Any, reason: str, request_id: str) -> None:
    """Refuse the handshake: a 403 with the JSON reason where the server can send an HTTP
    response (the websocket.http.response extension), else a close (HTTP 403 as well)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        start, body = _json_response(
            403, {"errors": [{"message": reason, "extensions": {"code": "FORBIDDEN"}}]},
            request_id)
        await send({**start, "type": "websocket.http.response.start"})
        await send({**body, "type": "websocket.http.response.body"})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit
