"""ASGI middleware: request ids, access logs, body size limits, no stack traces to clients."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import structlog

from api.metrics import observe_http

log = structlog.get_logger("mmos.http")
Scope = dict[str, Any]


def _json_response(status: int, body: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    ]


class RequestContextMiddleware:
    """Tags every request with an id, logs it, caps its body, and turns crashes into JSON 500s.

    Parameters:
      app: the wrapped ASGI app.
      max_body_bytes: requests with a larger body get 413 before the app sees them.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            declared = headers.get(b"content-length")
            too_big = (declared is not None and declared.isascii() and declared.isdigit()
                       and int(declared) > self.max_body_bytes)
            if too_big:
                for message in _json_response(
                    413,
                    {
                        "errors": [
                            {"message": (f"request body exceeds {self.max_body_bytes} bytes")}
                        ]
                    },
                    request_id,
                ):
                    await send(message)
                status["code"] = 413
                return
            await self.app(scope, self._limited(receive), self._tagged(send, request_id, status))
        except _BodyTooLarge:
            if status["code"] == 0:
                for message in _json_response(
                    413,
                    {
                        "errors": [
                            {"message": (f"request body exceeds {self.max_body_bytes} bytes")}
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

    def _limited(self, receive: Any) -> Any:
        seen = {"bytes": 0}

        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_body_bytes:
                    raise _BodyTooLarge
            return message  # type: ignore[no-any-return]

        return wrapped

    @staticmethod
    def _tagged(send: Any, request_id: str, status: dict[str, int]) -> Any:
        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        return wrapped


class _BodyTooLarge(Exception):
    pass
