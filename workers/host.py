"""The worker side of a process: its container on the actors' event loop, pipeline, sweeper,
heartbeat. The actors find their host through the broker's `HostLifecycle` middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from db.workers import beat, connection_limits, forget
from domain.connections import API_POOL_SIZE, ConnectionBudget
from domain.llm import ModelClient
from domain.preflight import ALIVE_SECONDS, HEARTBEAT_SECONDS, WorkerReach
from workers.batch_api import batch_client_for
from workers.pipeline import Pipeline, PipelineHooks
from workers.providers import worker_reach

log = logging.getLogger("mmos.worker")

ContainerFactory = Callable[[], Awaitable[Any]]


class WorkerHost:
    """Everything a worker process needs, created lazily on the loop that runs the actors.

    Parameters:
      container_factory: builds the worker's container (called on the actors' loop): its
        `settings`, `uow` (unit of work factory, with the dispatcher), `ports` and `close()`.
      client_factory: builds the model client (LiteLLM gateway in production).
      sweep: run the periodic sweeper in this process.
    """

    def __init__(self, container_factory: ContainerFactory,
                 client_factory: Callable[[], ModelClient], *, sweep: bool = True,
                 hooks: PipelineHooks | None = None) -> None:
        self.container_factory = container_factory
        self.client_factory = client_factory
        self.sweep = sweep
        self.hooks = hooks or PipelineHooks()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.runtime: Any = None
        self.pipeline: Pipeline | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Job slots (`idle_poll`): jobs running here, woken or polled, never exceed `slots`.
        self.slots = 0
        self.idle_poll_seconds = 0.0
        self.active = 0
        self.stopping = False
        self._poller: asyncio.Task[None] | None = None
        self._connections_checked = False
        self._polled: set[asyncio.Task[None]] = set()

    def idle_poll(self, slots: int, every_seconds: float) -> None:
        """Run at most `slots` jobs at once (the worker's threads) and, while a slot is free,
        claim waiting jobs every `every_seconds` without waiting for a message: a doorbell
        buffered by a busy worker (or lost) never keeps a job from an idle one. A message that
        finds every slot busy is dropped (the job stays in PostgreSQL for the next free slot
        of any worker, or the sweeper's re-send with `every_seconds` 0). Call before `start`."""
        self.slots = slots
        self.idle_poll_seconds = every_seconds

    async def start(self) -> None:
        """Create the container and background tasks once (idempotent)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.runtime is not None:
                return
            self.runtime = await self.container_factory()
            dispatcher = self.runtime.uow.dispatcher
            if self.hooks.wake is None and dispatcher is not None:
                self.hooks.wake = dispatcher.send
            client = self.client_factory()
            self.pipeline = Pipeline(self.runtime, client, self.worker_id, self.hooks,
                                     batch_client=batch_client_for(client))
            self._tasks.append(asyncio.create_task(self._heartbeat()))
            if self.slots and self.idle_poll_seconds > 0:
                self._poller = asyncio.create_task(self._idle_poll())
            if self.sweep:
                self._tasks.append(asyncio.create_task(self._sweeper()))
            log.info("worker %s ready", self.worker_id)

    async def close(self) -> None:
        # The poller claims nothing more; the jobs it started finish on a live runtime (as the
        # worker threads' jobs did before the host is closed).
        self.stopping = True
        if self._poller is not None:
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await asyncio.gather(*self._polled, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        closing = getattr(self.pipeline.client if self.pipeline else None, "aclose", None)
        if closing is not None:
            with contextlib.suppress(Exception):
                await closing()
        if self.runtime is not None:
            with contextlib.suppress(Exception):
                async with self.runtime.uow() as uow:
                    await forget(uow.session, self.worker_id)
            await self.runtime.close()
            self.runtime = None

    async def handle_wakeup(self, job_id: int) -> str | None:
        """Claim the most urgent waiting job and run it; None when there was nothing to do."""
        await self.start()
        assert self.pipeline is not None
        if self.slots and self.active >= self.slots:
            log.debug("woken for %s with every slot busy: left to a free slot", job_id)
            return None
        self.active += 1
        try:
            job = None
            for pause in (0.0, 0.1, 0.5):
                # A row briefly locked by another writer is skipped by the claim: look again.
                await asyncio.sleep(pause)
                job = await self._claim()
                if job is not None:
                    break
            if job is None:
                return None
            log.info("job %s claimed (woken for %s)", job.id, job_id)
            return await self.pipeline.run_job(job)
        finally:
            self.active -= 1

    async def _claim(self) -> Any:
        async with self.runtime.uow() as uow:
            return await uow.jobs.claim(self.worker_id, self.runtime.settings.job_lease_seconds)

    async def _idle_poll(self) -> None:
        """While a slot is free, claim the most urgent waiting job and run it here."""
        while not self.stopping:
            await asyncio.sleep(self.idle_poll_seconds)
            while not self.stopping and self.active < self.slots:
                self.active += 1  # taken before the claim: a wake-up meanwhile sees it
                try:
                    job = await self._claim()
                except Exception:
                    job = None
                    log.warning("idle poll failed", exc_info=True)
                if job is None:
                    self.active -= 1
                    break
                log.info("job %s claimed (idle poll)", job.id)
                task = asyncio.create_task(self._run_polled(job))
                self._polled.add(task)
                task.add_done_callback(self._polled.discard)

    async def _run_polled(self, job: Any) -> None:
        assert self.pipeline is not None
        try:
            await self.pipeline.run_job(job)
        except Exception:  # as a woken job's would be, by Dramatiq: logged, lease left to expire
            log.exception("job %s raised", job.id)
        finally:
            self.active -= 1

    async def _heartbeat(self) -> None:
        reach: WorkerReach | None = None
        while True:
            try:
                if reach is None:
                    # What this process can call: its environment does not change while it
                    # runs, so once (off the loop: LiteLLM may still be importing).
                    reach = await asyncio.to_thread(worker_reach, self.worker_id)
                    log.info("worker %s can call %s", self.worker_id,
                             ", ".join(sorted(reach.providers)) or "no keyed provider")
            except Exception:
                log.warning("provider check failed", exc_info=True)
            try:
                async with self.runtime.uow() as uow:
                    await beat(uow.session, self.worker_id, socket.gethostname(), os.getpid(),
                               reach)
                if not self._connections_checked:
                    self._connections_checked = True
                    await self.check_connections()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def check_connections(self) -> ConnectionBudget:
        """Warn (once, at start) when the pools of the live workers and the API pass what
        PostgreSQL allows: they would fail with "too many clients"."""
        assert self.runtime is not None
        async with self.runtime.read() as session:
            limit, alive = await connection_limits(session, ALIVE_SECONDS, self.worker_id)
        size = getattr(self.runtime.engine.pool, "size", None)
        budget = ConnectionBudget(limit, alive, size() if callable(size) else 0,
                                  self.runtime.settings.db_pool_size or API_POOL_SIZE)
        if (warning := budget.warning()) is not None:
            log.warning("worker %s: %s", self.worker_id, warning)
        else:
            log.info("worker %s: %s", self.worker_id, budget.note())
        return budget

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.settings.sweep_interval_seconds)
            try:
                await sweep_once(self.runtime)
            except Exception:
                log.warning("sweep failed", exc_info=True)


async def sweep_once(runtime: Any) -> dict[str, int]:
    """Recover from crashes and lost messages; resume budget waiters when money is back.

    Its events (runs the sweeper closed) reach subscribers at once, and unsent jobs are sent
    again, both after the commit by the unit of work."""
    settings = runtime.settings
    async with runtime.uow() as uow:
        dead = await uow.jobs.requeue_expired()
        released = await uow.budget.sweep_expired()
        state = await uow.budget.state()
        resumed = await uow.jobs.resume_budget_waiters(state.remaining_usd)
        for _job_id, run_id in dead:
            if run_id is not None:
                ctx = await uow.processing.run_context(run_id)
                if ctx is not None:
                    await uow.processing.finish_run(
                        ctx, "failed", "the worker stopped responding on every attempt")
        unsent = await uow.jobs.unsent(older_than_seconds=max(60.0, settings.job_lease_seconds))
        uow.dispatch(unsent)
    # Raw answers past their retention (MMOS_ANSWER_RETENTION_DAYS): a bounded batch per sweep,
    # in a transaction of its own so the recovery above never waits on it.
    async with runtime.uow() as uow:
        expired = await uow.answers.sweep(settings.answer_retention_days)
    return {"requeued_or_failed": len(dead), "released": released, "resumed": len(resumed),
            "resent": len(unsent), "answers_expired": expired}


def host_of(broker: dramatiq.Broker) -> WorkerHost:
    """The host whose `HostLifecycle` middleware this broker carries (the newest one)."""
    for middleware in reversed(broker.middleware):
        if isinstance(middleware, HostLifecycle):
            return middleware.host
    raise RuntimeError("no worker host is attached to this broker")


class HostLifecycle(dramatiq.Middleware):
    """Dramatiq middleware closing the host on the actors' loop once the worker has stopped.

    Closing happens after the worker threads finished their jobs (a graceful stop lets the
    runs in flight end on a live runtime) and before the AsyncIO middleware stops the loop:
    `after_*` hooks run in reverse order, and this middleware is added after AsyncIO.
    """

    def __init__(self, host: WorkerHost) -> None:
        self.host = host

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.host.stopping = True  # the idle poll claims nothing more while threads drain

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        loop_thread = get_event_loop_thread()
        if loop_thread is not None and self.host.runtime is not None:
            with contextlib.suppress(Exception):
                loop_thread.run_coroutine(self.host.close())
