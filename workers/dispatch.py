"""Sending wake-up messages for committed jobs, by actor name, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import dramatiq

log = logging.getLogger("mmos.dispatch")


class Dispatcher:
    """Sends one message per job id to the named actor, then records that it was sent
    (`domain.ports.JobDispatcher`).

    Parameters:
      broker: the process's Dramatiq broker (its actors are declared).
      uow: the unit of work factory whose transaction marks jobs as sent.
    """

    def __init__(self, broker: dramatiq.Broker, uow: Any) -> None:
        self.broker = broker
        self.uow = uow

    async def send(self, job_ids: Sequence[int], actor: str = "process_job",
                   delay_ms: int = 0) -> None:
        """Wake workers for these committed jobs, after `delay_ms` when given (the broker
        holds the message back); a lost message is re-sent by the sweeper."""
        if not job_ids:
            return
        ids = list(job_ids)
        target = self.broker.get_actor(actor)
        # Mark first, in its own short transaction: a worker claiming with SKIP LOCKED must
        # never find these rows locked by our bookkeeping (it would drop the wake-up).
        async with self.uow() as uow:
            await uow.jobs.mark_sent(ids)

        def _send() -> None:
            for job_id in ids:
                if delay_ms > 0:
                    target.send_with_options(args=(job_id,), delay=delay_ms)
                else:
                    target.send(job_id)

        try:
            await asyncio.to_thread(_send)  # a Redis round trip must not block the loop
        except Exception:
            log.warning("could not send %d wake-up messages; the sweeper will", len(ids),
                        exc_info=True)
