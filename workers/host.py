"""The worker side of a process: its own runtime on the actors' event loop, pipeline, sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from db.budget import BudgetLedger
from db.jobs import JobQueue
from db.processing import ProcessingRepository
from db.workers import beat, forget
from domain.llm import ModelClient
from workers.dispatch import Dispatcher
from workers.pipeline import Pipeline, PipelineHooks

log = logging.getLogger("mmos.worker")

RuntimeFactory = Callable[[], Awaitable[Any]]


class WorkerHost:
    """Everything a worker process needs, created lazily on the loop that runs the actors.

    Parameters:
      runtime_factory: builds the database runtime (called on the actors' loop).
      client_factory: builds the model client (LiteLLM gateway in production).
      sweep: run the periodic sweeper in this process.
    """

    def __init__(self, runtime_factory: RuntimeFactory,
                 client_factory: Callable[[], ModelClient], *, sweep: bool = True,
                 hooks: PipelineHooks | None = None) -> None:
        self.runtime_factory = runtime_factory
        self.client_factory = client_factory
        self.sweep = sweep
        self.hooks = hooks or PipelineHooks()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.runtime: Any = None
        self.pipeline: Pipeline | None = None
        self.dispatcher: Dispatcher | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Create the runtime and background tasks once (idempotent)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.runtime is not None:
                return
            self.runtime = await self.runtime_factory()
            self.dispatcher = Dispatcher(self.runtime)
            # Work started from this process (strategy steps, resumes) is sent from here too.
            self.runtime.services.setdefault("dispatcher", self.dispatcher)
            if self.hooks.wake is None:
                self.hooks.wake = self.dispatcher.send
            self.pipeline = Pipeline(self.runtime, self.client_factory(), self.worker_id,
                                     self.hooks)
            self._tasks.append(asyncio.create_task(self._heartbeat()))
            if self.sweep:
                self._tasks.append(asyncio.create_task(self._sweeper()))
            log.info("worker %s ready", self.worker_id)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.runtime is not None:
            with contextlib.suppress(Exception):
                async with self.runtime.transaction() as session:
                    await forget(session, self.worker_id)
            await self.runtime.close()
            self.runtime = None

    async def handle_wakeup(self, job_id: int) -> str | None:
        """Claim the most urgent waiting job and run it; None when there was nothing to do."""
        await self.start()
        assert self.pipeline is not None
        job = None
        for pause in (0.0, 0.1, 0.5):
            # A row briefly locked by another writer is skipped by the claim: look again.
            await asyncio.sleep(pause)
            async with self.runtime.transaction() as session:
                job = await JobQueue(session).claim(self.worker_id,
                                                    self.runtime.settings.job_lease_seconds)
            if job is not None:
                break
        if job is None:
            return None
        log.info("job %s claimed (woken for %s)", job.id, job_id)
        return await self.pipeline.run_job(job)

    async def _heartbeat(self) -> None:
        while True:
            try:
                async with self.runtime.transaction() as session:
                    await beat(session, self.worker_id, socket.gethostname(), os.getpid())
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(10)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.settings.sweep_interval_seconds)
            try:
                await sweep_once(self.runtime, self.dispatcher)
            except Exception:
                log.warning("sweep failed", exc_info=True)


async def sweep_once(runtime: Any, dispatcher: Dispatcher | None) -> dict[str, int]:
    """Recover from crashes and lost messages; resume budget waiters when money is back."""
    settings = runtime.settings
    async with runtime.transaction() as session:
        queue = JobQueue(session)
        dead = await queue.requeue_expired()
        ledger = BudgetLedger(session, settings.daily_budget_usd,
                              settings.fragment_cost_limit_usd)
        released = await ledger.sweep_expired()
        state = await ledger.state()
        resumed = await queue.resume_budget_waiters(state.remaining_usd)
        repository = ProcessingRepository(session)
        for _job_id, run_id in dead:
            if run_id is not None:
                ctx = await repository.run_context(run_id)
                if ctx is not None:
                    await repository.finish_run(ctx, "failed",
                                                "the worker stopped responding on every attempt")
        unsent = await queue.unsent(older_than_seconds=max(60.0, settings.job_lease_seconds))
    events = list(session.info.get("mmos_events", []))
    if events:  # runs the sweeper closed reach subscribers now, not at their next poll
        from workers.pipeline import publish_committed

        await publish_committed(runtime, events)
    if dispatcher is not None and unsent:
        await dispatcher.send(unsent)
    return {"requeued_or_failed": len(dead), "released": released, "resumed": len(resumed),
            "resent": len(unsent)}


_host: WorkerHost | None = None


def install_host(host: WorkerHost) -> WorkerHost:
    """Make `host` the one the actors use in this process."""
    global _host
    _host = host
    return host


def current_host() -> WorkerHost:
    if _host is None:
        raise RuntimeError("no worker host installed in this process")
    return _host


class HostLifecycle:
    """Dramatiq middleware closing the host on the actors' loop once the worker has stopped.

    Closing happens after the worker threads finished their jobs (a graceful stop lets the
    runs in flight end on a live runtime) and before the AsyncIO middleware stops the loop:
    `after_*` hooks run in reverse order, and this middleware is added after AsyncIO.
    """

    def __init__(self, host: WorkerHost) -> None:
        self.host = host

    def __getattr__(self, name: str) -> Any:
        # Dramatiq calls every hook by name; the ones we do not handle do nothing.
        if name.startswith(("before_", "after_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    @property
    def actor_options(self) -> set[str]:
        return set()

    @property
    def forks(self) -> list[Any]:
        return []

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        loop_thread = get_event_loop_thread()
        if loop_thread is not None and self.host.runtime is not None:
            with contextlib.suppress(Exception):
                loop_thread.run_coroutine(self.host.close())
