"""The composition root: one typed container per process role, built once from settings.

- API server: `start_api(settings, url)` (its own workers in process when there is no Redis);
- worker process: `worker_host(settings, url)`, whose container is built on the actors' loop;
- CLI commands: `cli_container(settings)`.

Start-up order is this file's code, top to bottom in `build_container`: engine, migrations,
event bus, broker and dispatcher, unit of work factory, seed catalog, quality catch-up (so
the catch-up's events reach a bus that exists). See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import gc
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.settings import Settings
from db.engine import make_engine, make_sessionmaker, one_statement_sessions
from db.uow import SqlUnitOfWorkFactory
from domain.connections import API_POOL_SIZE
from domain.documents import ConversionLimits
from domain.events import EventBus
from domain.ports import FileConverter, Forecaster, JobDispatcher, Ports, PriceCatalog
from domain.services import catalog, quality

log = logging.getLogger("mmos.container")


class SystemClock:
    """`domain.ports.Clock` on the system's UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded PostgreSQL in MMOS_DATA_DIR (started here)."""
    if settings.database_url:
        return settings.database_url
    from db.embedded import start_embedded

    url = start_embedded(settings.data_dir)
    log.info("embedded PostgreSQL ready in %s", settings.data_dir.resolve())
    return url


def price_catalog() -> PriceCatalog:
    """LiteLLM's prices and limits (LiteLLM itself is imported on the first lookup)."""
    from workers.prices import LiteLLMPrices

    return LiteLLMPrices()


@dataclass
class Container:
    """Everything a request, a command or a job needs, built once per process (per loop).

    Parameters:
      settings: the process's settings.
      engine / sessions: the database engine of this event loop and its session factory.
      uow: the unit of work factory (it holds the event bus and the dispatcher).
      prices / clock: the price catalog and the clock the use cases read.
      broker: the Dramatiq broker when this process sends or runs jobs.
      worker: the in-process worker threads (embedded mode), when this process runs them.
    """

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    uow: SqlUnitOfWorkFactory
    prices: PriceCatalog
    clock: SystemClock = field(default_factory=SystemClock)
    broker: Any = None
    worker: InProcessWorker | None = None
    hub: Any = None  # the in-process broadcaster its bus shares with in-process workers

    @functools.cached_property
    def one_statement_sessions(self) -> async_sessionmaker[AsyncSession]:
        """Autocommit sessions for reads of one statement (per-request loaders)."""
        return one_statement_sessions(self.engine)

    @functools.cached_property
    def forecaster(self) -> Forecaster:
        """Counts and prices what a request would send (LiteLLM imported on the first count)."""
        from workers.forecast import LiteLLMForecaster

        return LiteLLMForecaster(self.settings)

    @functools.cached_property
    def converter(self) -> FileConverter:
        """Reads files and formatted text into a normalised text and its segment map."""
        from workers.converters import Converters

        return Converters(ConversionLimits(max_file_bytes=self.settings.max_upload_bytes))

    @property
    def ports(self) -> Ports:
        """What the use cases of `domain/services` are given."""
        return Ports(uow=self.uow, settings=self.settings, clock=self.clock,
                     prices=self.prices, forecaster=self.forecaster, converter=self.converter)

    @property
    def events(self) -> EventBus | None:
        return self.uow.events

    @events.setter
    def events(self, bus: EventBus | None) -> None:
        self.uow.events = bus

    @property
    def dispatcher(self) -> JobDispatcher | None:
        return self.uow.dispatcher

    @dispatcher.setter
    def dispatcher(self, dispatcher: JobDispatcher | None) -> None:
        self.uow.dispatcher = dispatcher

    def with_dispatcher(self, dispatcher: JobDispatcher | None) -> Container:
        """A view sharing this container's engine and bus that sends the jobs it commits
        through `dispatcher` (and runs no workers of its own)."""
        uow = copy.copy(self.uow)
        uow.dispatcher = dispatcher
        return dataclasses.replace(self, uow=uow, worker=None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction (read-side helpers and tests)."""
        async with self.sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A short-lived session for reads (GraphQL resolvers and loaders)."""
        async with self.sessions() as session:
            yield session

    async def close(self) -> None:
        """Stop in-process workers, close the bus, dispose of the engine."""
        if self.worker is not None:
            await self.worker.aclose()
            self.worker = None
        if self.events is not None:
            await self.events.aclose()
        await self.engine.dispose()


def _event_bus(settings: Settings, container: Container) -> EventBus:
    """Redis Streams with REDIS_URL, else the in-process broadcaster."""
    from workers.events import Broadcaster, make_event_bus

    if not settings.redis_url and container.hub is None:
        container.hub = Broadcaster()
    return make_event_bus(settings, container, container.hub)


async def build_container(settings: Settings, *, database_url: str | None = None,
                          migrate: bool = True, pool_size: int = API_POOL_SIZE,
                          broker: Any = None,
                          catch_up: bool = True, hub: Any = None) -> Container:
    """Connect, migrate, wire the bus and the dispatcher, seed, catch up: in that order."""
    url = database_url or resolve_database_url(settings)
    engine = make_engine(url, pool_size=settings.db_pool_size or pool_size)
    if migrate:
        from db.migrate import upgrade

        await upgrade(engine)
    sessions = make_sessionmaker(engine)
    uow = SqlUnitOfWorkFactory(engine, sessions, daily_budget_usd=settings.daily_budget_usd,
                               fragment_cost_limit_usd=settings.fragment_cost_limit_usd)
    container = Container(settings=settings, engine=engine, sessions=sessions, uow=uow,
                          prices=price_catalog(), broker=broker, hub=hub)
    container.events = _event_bus(settings, container)
    if broker is not None:
        from workers.dispatch import Dispatcher

        container.dispatcher = Dispatcher(broker, uow)
    await start_up(container, catch_up=catch_up)
    return container


async def start_up(container: Container, *, catch_up: bool = True) -> None:
    """What every start does once the container is wired: seed the catalog's missing models,
    then finish what a crash may have left undone (measurements, plan steps)."""
    await catalog.seed_catalog(container.ports)
    if catch_up:
        try:
            await quality.catch_up(container.ports)
        except Exception:  # never block a start; the next run end measures again
            log.warning("quality catch-up failed", exc_info=True)


# --- processing: broker, worker hosts, in-process workers -----------------------------------


def model_client() -> Any:
    """The production model client (LiteLLM is imported on the first call, not here)."""
    from api.settings import get_settings
    from workers.gateway import LiteLLMClient

    return LiteLLMClient(batch_discounts=get_settings().batch_discount_map)


def warm_up_model_client() -> None:
    """Load LiteLLM and its tokenizer (seconds of CPU) before the first job needs them: left
    to the first job, the import freezes the actors' event loop and its lease renewals."""
    from domain.llm import ModelSpec
    from workers.litellm_loader import preload_provider_sdk

    model_client().count_tokens(ModelSpec(name="warm-up", litellm_model="gpt-4o-mini"),
                                "warm-up")
    preload_provider_sdk()
    # What the imports built (LiteLLM alone is about a million objects) lives as long as the
    # process: moved out of the collector's reach, full collections stop walking it, which
    # otherwise stalls the event loop for a quarter of a second every few hundred chunks.
    gc.freeze()


def worker_pool_size(settings: Settings) -> int:
    """Connections a worker host keeps open. A chunk in flight holds at most two at once (a
    call's cost settlement runs while the answer is parsed, and a repair call may reserve
    meanwhile), plus lease renewals, the sweeper and run bookkeeping. A pool smaller than
    that opens and closes connections all the time under load, and every new connection
    pays for a handshake and for preparing its statements. MMOS_DB_POOL_SIZE overrides it."""
    return settings.db_pool_size or 2 * settings.llm_concurrency + 4


def worker_host(settings: Settings, database_url: str, *, broker: Any, sweep: bool = True,
                client_factory: Any = None, hub: Any = None) -> Any:
    """The worker role: a host whose container is built on the actors' loop (one engine per
    loop), without migrations (the server applies them). In process, `hub` is the API
    container's broadcaster, so subscribers there hear this host's events at once."""
    from workers.host import WorkerHost

    async def container_factory() -> Container:
        return await build_container(settings, database_url=database_url, migrate=False,
                                     pool_size=worker_pool_size(settings), broker=broker,
                                     hub=hub)

    return WorkerHost(container_factory, client_factory or model_client, sweep=sweep)


class InProcessWorker:
    """Dramatiq's worker threads inside this process (the embedded default, no Redis)."""

    def __init__(self, broker: Any, host: Any, threads: int, *,
                 idle_poll_seconds: float = 0.0) -> None:
        import dramatiq

        from workers.host import HostLifecycle

        self.broker = broker
        self.lifecycle = HostLifecycle(host)
        broker.add_middleware(self.lifecycle)
        self.host = host
        self.worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=200)
        # Fetch no more wake-ups than there are threads (Dramatiq's default is twice as
        # many): a buffered one would wait here while another worker idles. The
        # `dramatiq_queue_prefetch` environment variable still overrides.
        if not os.environ.get("dramatiq_queue_prefetch"):  # noqa: SIM112 (Dramatiq's name)
            self.worker.queue_prefetch = threads
        if idle_poll_seconds > 0:
            host.idle_poll(threads, idle_poll_seconds)

    def start(self) -> None:
        """Start the threads, then the host (container, sweeper, heartbeat) on the actors'
        loop."""
        from dramatiq.asyncio import get_event_loop_thread

        self.worker.start()
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        loop_thread.run_coroutine(self.host.start())

    def stop(self) -> None:
        """Stop the threads (the host closes on the way), then detach the host."""
        self.worker.stop()
        with contextlib.suppress(ValueError):
            self.broker.middleware.remove(self.lifecycle)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)


async def attach_processing(container: Container, database_url: str, *,
                            in_process_worker: bool | None = None,
                            client_factory: Any = None) -> None:
    """Give the container a broker and a dispatcher; run workers in process when there is
    no Redis."""
    from workers.broker import setup_broker
    from workers.dispatch import Dispatcher

    settings = container.settings
    broker = container.broker or setup_broker(settings.redis_url)
    container.broker = broker
    if container.dispatcher is None:
        container.dispatcher = Dispatcher(broker, container.uow)
    if in_process_worker is None:
        in_process_worker = not settings.redis_url
    if in_process_worker:
        host = worker_host(settings, database_url, broker=broker, client_factory=client_factory,
                           hub=container.hub)
        worker = InProcessWorker(broker, host, settings.worker_threads)
        # In a background thread: the server answers at once, the workers get a warm client.
        threading.Thread(target=warm_up_model_client, name="mmos-warm-up", daemon=True).start()
        worker.start()
        container.worker = worker
        log.info("processing in process with %d worker threads", settings.worker_threads)


async def start_api(settings: Settings, database_url: str) -> Container:
    """The API server role: broker first (the start-up catch-up may queue jobs), then the
    container, then the in-process workers when there is no Redis."""
    from workers.broker import setup_broker

    broker = setup_broker(settings.redis_url)
    container = await build_container(settings, database_url=database_url, broker=broker)
    await attach_processing(container, database_url)
    return container


async def cli_container(settings: Settings, database_url: str) -> Container:
    """The CLI role: migrated and seeded, no broker (the server's sweeper sends what a
    command queues)."""
    return await build_container(settings, database_url=database_url, catch_up=False)
