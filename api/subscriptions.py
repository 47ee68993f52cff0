"""Subscriptions over graphql-transport-ws: batch progress (resumable) and queue status.

Strawberry builds the context once per WebSocket connection, so every event renews its
DataLoaders (`Context.refresh_loaders`): fields resolved for an event never see an earlier
event's cache. `authenticate_connection` is the hook that receives `connection_init`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncGenerator, Mapping
from decimal import Decimal
from typing import Any, cast

import strawberry
from graphql import GraphQLError, OperationType, get_operation_ast, parse

from api.auth import Principal
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
    from api.auth import Unauthenticated, authenticate, keys_required, token_from_payload

    try:
        return await authenticate(runtime, token_from_payload(params),
                                  required=keys_required(runtime.settings))
    except Unauthenticated as exc:
        raise PermissionDenied(str(exc)) from None


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
