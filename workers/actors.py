"""Dramatiq actors. Import only through `workers.broker.setup_broker` (the broker comes first)."""

from __future__ import annotations

import dramatiq

from workers.broker import JOB_TIME_LIMIT_MS, QUEUE
from workers.host import current_host


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=JOB_TIME_LIMIT_MS)
async def process_job(job_id: int) -> None:
    """Wake-up for job `job_id`: claim the most urgent waiting job (maybe another) and run it."""
    await current_host().handle_wakeup(job_id)
