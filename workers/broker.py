"""The Dramatiq broker: Redis when REDIS_URL is set, else the in-process stub broker."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, AsyncIO, Callbacks, Pipelines, Retries, TimeLimit

from workers.queues import JOB_TIME_LIMIT_MS, QUEUE

__all__ = ["JOB_TIME_LIMIT_MS", "QUEUE", "current_broker", "setup_broker"]


def setup_broker(redis_url: str | None) -> dramatiq.Broker:
    """Create the broker once per process, register it as Dramatiq's global broker (actors
    bind to it when declared), then declare the actors. Later calls return that broker."""
    existing = current_broker()
    if existing is not None:
        return existing
    middleware = [
        AgeLimit(),  # ordered as Dramatiq's defaults, minus Prometheus (we export our own)
        TimeLimit(time_limit=JOB_TIME_LIMIT_MS),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=0),
        AsyncIO(),
    ]
    broker: dramatiq.Broker
    if redis_url:
        broker = RedisBroker(url=redis_url, namespace="mmos", middleware=middleware)
    else:
        broker = StubBroker(middleware=middleware)
        broker.emit_after("process_boot")  # otherwise TimeLimit never arms in process
    dramatiq.set_broker(broker)
    import workers.actors  # noqa: F401  (actors bind to the global broker when declared)

    return broker


def current_broker() -> dramatiq.Broker | None:
    """The broker `setup_broker` made in this process: Dramatiq's global one, once our actors
    are declared on it (never Dramatiq's implicit default, which it would create on asking)."""
    from dramatiq import broker as registry

    found = registry.global_broker
    if found is not None and "process_job" in found.actors:
        return found
    return None
