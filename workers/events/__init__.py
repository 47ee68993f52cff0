"""Progress event buses: Redis Streams when REDIS_URL is set, else an in-process broadcaster.

Both read the committed rows of `batch_events` and hand them to followers quickly; Postgres
stays the source of truth (see `domain.events.follow_batch`).
"""

from __future__ import annotations

from typing import Any

from db.events import PostgresEventStore
from domain.events import EventBus
from workers.events.local import Broadcaster, InProcessEventBus

__all__ = ["Broadcaster", "InProcessEventBus", "PostgresEventStore",
           "make_event_bus"]


def make_event_bus(settings: Any, reader: Any, hub: Broadcaster | None = None) -> EventBus:
    """The bus for these settings, reading committed events through `reader` (anything with
    a `read()` session context): one per container, since a Redis client is per event loop.
    In-process buses of one process share `hub`."""
    store = PostgresEventStore(reader)
    if settings.redis_url:
        from workers.events.redis_streams import RedisStreamEventBus

        return RedisStreamEventBus(store, settings.redis_url,
                                   maxlen=settings.progress_stream_maxlen,
                                   ttl_seconds=settings.progress_stream_ttl_seconds)
    return InProcessEventBus(store, hub if hub is not None else Broadcaster())
