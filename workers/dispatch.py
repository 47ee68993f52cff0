"""Sending wake-up messages after commit, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("mmos.dispatch")


class Dispatcher:
    """Sends one message per job id through the broker, then records that it was sent.

    Parameters:
      runtime: the database runtime whose transaction marks jobs as sent.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def send(self, job_ids: Sequence[int]) -> None:
        """Wake workers for these committed jobs; a lost message is re-sent by the sweeper."""
        if not job_ids:
            return
        from db.jobs import JobQueue
        from workers.actors import process_job

        ids = list(job_ids)
        # Mark first, in its own short transaction: a worker claiming with SKIP LOCKED must
        # never find these rows locked by our bookkeeping (it would drop the wake-up).
        async with self.runtime.transaction() as session:
            await JobQueue(session).mark_sent(ids)

        def _send() -> None:
            for job_id in ids:
                process_job.send(job_id)

        try:
            await asyncio.to_thread(_send)  # a Redis round trip must not block the loop
        except Exception:
            log.warning("could not send %d wake-up messages; the sweeper will", len(ids),
                        exc_info=True)
