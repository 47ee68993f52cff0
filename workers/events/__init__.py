"""Progress event buses: Redis Streams when REDIS_URL is set, else an in-process broadcaster.

Both read the committed rows of `batch_events` and hand them to followers quickly; Postgres
stays the source of truth (see `domain.events.follow_batch`).
"""

from __future__ import annotations

from typing import Any

from domain.events import EventBus
from workers.events.local import BROADCASTER, Broadcaster, InProcessEventBus
from workers.events.store import PostgresEventStore

__all__ = ["BROADCASTER", "Broadcaster", "InProcessEventBus", "PostgresEventStore",
           "make_event_bus"]


def make_event_bus(runtime: Any) -> EventBus:
    """The bus for this runtime's settings (one per runtime: a Redis client is per event loop)."""
    settings = runtime.settings
    store = PostgresEventStore(runtime)
    if settings.redis_url:
        from workers.events.redis_streams import RedisStreamEventBus

        return RedisStreamEventBus(store, settings.redis_url,
                                   maxlen=settings.progress_stream_maxlen,
                                   ttl_seconds=settings.progress_stream_ttl_seconds)
    return InProcessEventBus(store)
