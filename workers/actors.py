"""Dramatiq actors: one-liners into the worker host. Declared by `workers.broker.setup_broker`
(the broker comes first); callers dispatch them by name, never by import."""

from __future__ import annotations

import dramatiq

from workers.host import host_of
from workers.queues import JOB_TIME_LIMIT_MS, QUEUE


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS)
async def process_job(job_id: int) -> None:
    """Wake-up for job `job_id`: claim the most urgent waiting job (maybe another) and run it."""
    await host_of(dramatiq.get_broker()).handle_wakeup(job_id)
