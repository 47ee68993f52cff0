"""The Dramatiq broker: Redis when REDIS_URL is set, else the in-process stub broker."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, AsyncIO, Callbacks, Pipelines, Retries, TimeLimit

QUEUE = "mmos-jobs"
# A message is only a wake-up: the job row carries attempts, and the sweeper re-sends lost
# messages. Dramatiq's own retries stay off so a failure is never retried twice.
JOB_TIME_LIMIT_MS = 6 * 60 * 60 * 1000

_broker: dramatiq.Broker | None = None


def setup_broker(redis_url: str | None) -> dramatiq.Broker:
    """Create the broker once per process, register it globally, then declare the actors."""
    global _broker
    if _broker is not None:
        return _broker
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

    _broker = broker
    return broker


def current_broker() -> dramatiq.Broker | None:
    return _broker
