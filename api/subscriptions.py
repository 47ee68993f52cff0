"""Subscriptions over graphql-transport-ws: batch progress (resumable) and queue status.

Strawberry builds the context once per WebSocket connection, so every event renews its
DataLoaders (`Context.refresh_loaders`): fields resolved for an event never see an earlier
event's cache. `authenticate_connection` is the hook that receives `connection_init`.

Access holds for as long as a socket is open (`KeyCheckingTransportWSHandler`): the key of
`connection_init` is verified again before a `subscribe` once the last verification is older
than `MMOS_WS_KEY_RECHECK_SECONDS` (30 s at most), and every that many seconds while
operations run; a key that no longer verifies closes the socket with 4403 (Forbidden).
Frames are bounded by `MMOS_MAX_REQUEST_BYTES` (`BoundedWebSocketAdapter`, close 1009).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from decimal import Decimal
from json import JSONDecodeError
from typing import Any, cast

import strawberry
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)

from api.auth import Principal, Unauthenticated, authenticate, token_from_payload
from api.errors import public
from api.ids import parse_id, to_global
from api.queries.queue import QueueStatus, read_queue_status
from api.types.processing import Batch
from db.events import PostgresEventStore
from db.lookups import batches_by_id
from domain.errors import DomainError, PermissionDenied
from domain.events import EventKind, ProgressUpdate, follow_batch, parse_cursor

# Registers the domain enum itself as the GraphQL enum (so fields can be typed EventKind).
strawberry.enum(EventKind, name="BatchEventKind",
                description="What happened to a batch or one of its runs.")

QUEUE_STATUS_INTERVAL = (0.5, 60.0)

log = logging.getLogger("mmos.ws")

# Close codes. 4403 is graphql-transport-ws's "Forbidden" (a refused connection_init closes
# with it too); 1009 is RFC 6455's "Message Too Big", the code uvicorn's own `ws_max_size`
# refusal uses, so a client sees one code whichever layer refused the frame; 1011 (internal
# error, which clients retry) when a key cannot be checked at all (the database is down); 4400
# (the protocol's bad message) for a frame our JSON checks refuse (a NUL character…).
CLOSE_BAD_MESSAGE = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_BIG = 1009
CLOSE_UNVERIFIABLE = 1011
FORBIDDEN_REASON = "Forbidden: the API key is not valid or has been revoked"


OVER_HTTP = ("subscription operation is not supported over HTTP: subscribe over WebSocket "
             "(graphql-transport-ws) at /graphql")


def is_subscription(query: str | None, operation_name: str | None, max_tokens: int) -> bool:
    """True when the operation a request would run is a subscription (HTTP cannot serve it)."""
    if not query or "subscription" not in query:
        return False
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLError:
        return False  # the normal path reports the syntax error
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation == OperationType.SUBSCRIPTION


async def authenticate_connection(params: Mapping[str, Any], runtime: Any) -> Principal:
    """Who opens a WebSocket, from its `connection_init` payload ({"Authorization": "Bearer
    <key>"} or {"apiKey": "<key>"}); raises PermissionDenied to refuse it (close 4403)."""
    from api.auth import keys_required

    try:
        return await authenticate(runtime, token_from_payload(params),
                                  required=keys_required(runtime.settings))
    except Unauthenticated as exc:
        raise PermissionDenied(str(exc)) from None


def frame_too_big(text: str | None, data: bytes | None, limit: int) -> bool:
    """True when a received frame's payload (text in UTF-8) exceeds `limit` bytes."""
    if text is not None:
        if len(text) > limit:
            return True  # every character is at least one byte
        if len(text) * 4 <= limit:
            return False  # every character is at most four bytes
        return len(text.encode("utf-8", "surrogatepass")) > limit
    return data is not None and len(data) > limit


class BoundedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's ASGI adapter with a size bound on every frame: one larger than
    `MMOS_MAX_REQUEST_BYTES` closes the socket (1009) and is never decoded or handled.

    `mmos serve` also passes the limit to uvicorn (`ws_max_size`), which refuses such a frame
    from its header before buffering it; this check holds on any ASGI server or test client.
    """

    async def iter_json(self, *, ignore_parsing_errors: bool = False
                        ) -> AsyncGenerator[object, None]:
        limit = int(cast(Any, self.view).settings.max_request_bytes)
        ws = self.ws
        try:
            while ws.application_state != WebSocketState.DISCONNECTED:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect" \
                        or ws.application_state == WebSocketState.DISCONNECTED:
                    return  # the client left, or we closed while this frame was in flight
                text, data = message.get("text"), message.get("bytes")
                if frame_too_big(text, data, limit):
                    await ws.close(code=CLOSE_TOO_BIG,
                                   reason=f"frame larger than {limit} bytes")
                    return
                if text is None:
                    raise NonTextMessageReceived
                try:
                    decoded = self.view.decode_json(text)
                except JSONDecodeError as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
                    continue
                except HTTPException as exc:  # our checks (NUL, lone surrogates, shape)
                    reason = exc.reason.encode()[:120].decode(errors="ignore")
                    await ws.close(code=CLOSE_BAD_MESSAGE, reason=reason)
                    return
                yield decoded
        except WebSocketDisconnect:
            pass


class KeyCheckingTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with the connection's key verified again while the socket lives.

    Verified at `connection_init` (`on_ws_connect`), again before a `subscribe` when that is
    older than `ws_key_recheck_seconds` (a per-connection cache), and every that many seconds
    while operations run (the watchdog, which always asks the database). A key that no longer
    verifies (revoked) cancels the connection's operations and closes the socket with 4403
    before the refused operation sends anything. A connection without a key (keyless local
    mode: the local developer) has nothing to revoke and is never re-checked.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verified_at = 0.0  # time.monotonic() of the last successful verification
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._refuser: asyncio.Task[Any] | None = None  # the task closing the socket

    @property
    def recheck_seconds(self) -> float:
        return float(cast(Any, self.view).settings.ws_key_recheck_seconds)

    def _token(self) -> str | None:
        return token_from_payload(getattr(self.context, "connection_params", None))

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        started = time.monotonic()
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._watchdog is None \
                and self._token() is not None:
            self._verified_at = started  # on_ws_connect verified the key just now
            self._watchdog = asyncio.create_task(self._watch())
            self._watchdog.add_done_callback(self._task_done)

    async def handle_message(self, message: Message) -> None:
        if not self._closing:  # frames already in flight when we closed are dropped
            await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and not await self.key_still_valid(fresh=False):
            return
        await super().handle_subscribe(message)

    async def key_still_valid(self, *, fresh: bool) -> bool:
        """Verify the connection's key (from the cache unless `fresh` or expired); close the
        socket (4403 revoked, 1011 unverifiable) and return False when it does not hold."""
        if self._closing:
            return False
        token = self._token()
        if token is None:
            return True
        if not fresh and time.monotonic() - self._verified_at < self.recheck_seconds:
            return True
        started = time.monotonic()
        try:
            principal = await authenticate(self.context.runtime, token, required=True)
        except Unauthenticated:
            log.info("websocket closed: its API key no longer verifies")
            await self.refuse(CLOSE_FORBIDDEN, FORBIDDEN_REASON)
            return False
        except Exception:
            log.exception("websocket closed: its API key could not be verified")
            await self.refuse(CLOSE_UNVERIFIABLE, "the API key could not be verified")
            return False
        self._verified_at = max(self._verified_at, started)
        self.context.principal = principal
        return not self._closing

    async def _watch(self) -> None:
        """While operations run, verify the key afresh every `recheck_seconds`."""
        while not self._closing:
            await asyncio.sleep(self.recheck_seconds)
            if self.operations:
                await self.key_still_valid(fresh=True)

    async def refuse(self, code: int, reason: str) -> None:
        """Cancel every operation (nothing more is sent), then close the socket once."""
        if self._closing:
            return
        self._closing = True
        self._refuser = asyncio.current_task()
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def shutdown(self) -> None:
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task() \
                and not watchdog.done():
            if watchdog is not self._refuser:
                watchdog.cancel()  # one that is closing the socket finishes doing so
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await watchdog
        await super().shutdown()


@strawberry.type(description="One progress event of a batch, with the batch's totals as of it.")
class BatchProgressEvent:
    cursor: str = strawberry.field(description=(
        "Pass as `after` to resume right after this event. The event's Redis Stream entry id, "
        "`<seq>-0`, on every transport."))
    seq: int = strawberry.field(description="1, 2, 3 … per batch: strictly increasing, no gaps.")
    kind: EventKind
    batch_id: strawberry.ID
    run_id: strawberry.ID | None = strawberry.field(description="The run it concerns, if one.")
    model: str
    fragments: int = strawberry.field(description=(
        "Fragments of the batch so far (each run's final count once it has ended)."))
    cost_usd: Decimal = strawberry.field(description="Spend of the batch so far.")
    progress: float = strawberry.field(description="Share of the batch's chunks done, 0..1.")
    at: dt.datetime = strawberry.field(description="When the change was committed.")
    message: str | None = strawberry.field(description="Why a run failed or paused, if it did.")
    details: strawberry.scalars.JSON = strawberry.field(description="The event's own figures.")
    batch_pk: strawberry.Private[int]

    @classmethod
    def from_update(cls, update: ProgressUpdate) -> BatchProgressEvent:
        event = update.event
        message = event.payload.get("message")
        return cls(cursor=event.cursor, seq=event.seq, kind=event.kind,
                   batch_id=strawberry.ID(to_global("Batch", event.batch_id)),
                   run_id=strawberry.ID(to_global("Run", event.run_id))
                   if event.run_id is not None else None,
                   model=update.model, fragments=update.fragments, cost_usd=update.cost_usd,
                   progress=update.progress, at=event.at,
                   message=str(message) if message is not None else None,
                   details=cast(Any, dict(event.payload)), batch_pk=event.batch_id)

    @strawberry.field(description="The batch as it is now (read fresh for every event).")
    async def batch(self, info: strawberry.Info) -> Batch | None:
        row = await info.context.loaders.get("batch", batches_by_id).load(self.batch_pk)
        return Batch.from_row(row) if row is not None else None


@strawberry.type
class Subscription:
    @strawberry.subscription(description=(
        "A batch's progress: first every event so far (or after `after`), then live events; "
        "completes once the batch has ended (BATCH_DONE, BATCH_FAILED or CANCELLED)."))
    async def batch_progress(self, info: strawberry.Info, batch_id: strawberry.ID,
                             after: str | None = None
                             ) -> AsyncGenerator[BatchProgressEvent, None]:
        runtime = info.context.runtime
        try:
            batch_pk = parse_id(batch_id, "Batch", ("batchId",))
            after_seq = parse_cursor(after, ("after",))
            updates = follow_batch(PostgresEventStore(runtime), runtime.events,
                                   batch_pk, after_seq,
                                   poll_seconds=runtime.settings.progress_poll_seconds)
            async with contextlib.aclosing(updates):  # unsubscribes even when cut short
                async for update in updates:
                    info.context.refresh_loaders()
                    yield BatchProgressEvent.from_update(update)
        except DomainError as exc:
            raise public(exc) from None

    @strawberry.subscription(description=(
        "The queue status now, then again every `intervalSeconds` (0.5 to 60)."))
    async def queue_status(self, info: strawberry.Info, interval_seconds: float = 2.0
                           ) -> AsyncGenerator[QueueStatus, None]:
        low, high = QUEUE_STATUS_INTERVAL
        interval = min(max(interval_seconds, low), high)
        while True:
            info.context.refresh_loaders()
            yield await read_queue_status(info)
            await asyncio.sleep(interval)
