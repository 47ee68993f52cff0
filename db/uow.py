"""The unit of work: one transaction with its repositories; after commit, the events its
repositories raised are published and the jobs it was handed are dispatched, here and
nowhere else (docs/ARCHITECTURE.md, "Events and jobs after commit")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from functools import cached_property
from types import TracebackType
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from db.answers import AnswerRepository
from db.budget import BudgetLedger
from db.calibration import CalibrationRepository
from db.catalog import ModelRepository
from db.forecast import ForecastRepository
from db.graph import GraphRepository
from db.jobs import JobQueue
from db.keys import KeyRepository
from db.performance import PerformanceRepository
from db.processing import ProcessingRepository
from db.reference import ReferenceRepository
from db.retry import retry_conflicts
from db.segments import SegmentRepository
from db.settings_store import SettingsStore
from db.sources import SourceRepository
from db.strategies import StrategyRepository
from db.workers import WorkerRepository
from domain.events import EventBus
from domain.ports import JobDispatcher

log = logging.getLogger("mmos.uow")

T = TypeVar("T")
EVENTS_KEY = "mmos_events"  # where repositories leave the (batch id, seq) of events they add


class SqlUnitOfWork:
    """One session in one transaction (or, read-only, a session that never commits).

    Parameters:
      factory: the factory that made it (sessions, budget settings, bus and dispatcher).
      read_only: roll back instead of committing; nothing is published or dispatched.
    """

    def __init__(self, factory: SqlUnitOfWorkFactory, *, read_only: bool = False) -> None:
        self._factory = factory
        self._read_only = read_only
        self._jobs: list[int] = []
        self._session: AsyncSession | None = None
        self.published: list[tuple[int, int]] = []  # the events published after commit

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is used outside its `async with` block")
        return self._session

    async def __aenter__(self) -> SqlUnitOfWork:
        self._session = self._factory.sessions()
        if not self._read_only:
            await self._session.begin()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        session = self.session
        committed = False
        try:
            if self._read_only:
                pass  # closing ends the transaction; loaded rows keep their values
            elif exc_type is None:
                await session.commit()
                committed = True
            else:
                await session.rollback()
        finally:
            events = list(session.info.pop(EVENTS_KEY, []))
            await session.close()
        if committed:
            self.published = events
            await self._factory.after_commit(events, self._jobs)

    def dispatch(self, job_ids: Iterable[int]) -> None:
        """Send a wake-up for these jobs once (and only if) this transaction commits."""
        self._jobs.extend(job_ids)

    @cached_property
    def sources(self) -> SourceRepository:
        return SourceRepository(self.session)

    @cached_property
    def catalog(self) -> ModelRepository:
        return ModelRepository(self.session)

    @cached_property
    def processing(self) -> ProcessingRepository:
        return ProcessingRepository(self.session)

    @cached_property
    def jobs(self) -> JobQueue:
        return JobQueue(self.session)

    @cached_property
    def answers(self) -> AnswerRepository:
        return AnswerRepository(self.session)

    @cached_property
    def budget(self) -> BudgetLedger:
        return self._factory.ledger(self.session)

    @cached_property
    def performance(self) -> PerformanceRepository:
        return PerformanceRepository(self.session)

    @cached_property
    def strategies(self) -> StrategyRepository:
        return StrategyRepository(self.session)

    @cached_property
    def graph(self) -> GraphRepository:
        return GraphRepository(self.session)

    @cached_property
    def reference(self) -> ReferenceRepository:
        return ReferenceRepository(self.session)

    @cached_property
    def segments(self) -> SegmentRepository:
        return SegmentRepository(self.session)

    @cached_property
    def settings_store(self) -> SettingsStore:
        return SettingsStore(self.session)

    @cached_property
    def keys(self) -> KeyRepository:
        return KeyRepository(self.session)

    @cached_property
    def calibration(self) -> CalibrationRepository:
        return CalibrationRepository(self.session)

    @cached_property
    def workers(self) -> WorkerRepository:
        return WorkerRepository(self.session)

    @cached_property
    def forecasts(self) -> ForecastRepository:
        return ForecastRepository(self.session)


class SqlUnitOfWorkFactory:
    """Makes units of work on one engine; owns the after-commit step.

    Parameters:
      engine: the process's (event loop's) engine.
      sessions: its session factory.
      daily_budget_usd / fragment_cost_limit_usd: the environment's defaults for the ledger
        (operator values in the settings table win).
      events: the event bus committed events go to (None: subscribers poll PostgreSQL).
      dispatcher: sends wake-ups for committed jobs (None: the sweeper sends them).
    """

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *,
                 daily_budget_usd: Decimal | None = None,
                 fragment_cost_limit_usd: Decimal | None = None,
                 events: EventBus | None = None,
                 dispatcher: JobDispatcher | None = None) -> None:
        self.engine = engine
        self.sessions = sessions
        self.daily_budget_usd = daily_budget_usd
        self.fragment_cost_limit_usd = fragment_cost_limit_usd
        self.events = events
        self.dispatcher = dispatcher

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self, read_only=read_only)

    def bound(self, session: AsyncSession) -> SqlUnitOfWork:
        """Repositories over a session its owner manages (read-side loaders): never commits,
        publishes nor dispatches."""
        uow = SqlUnitOfWork(self, read_only=True)
        uow._session = session
        return uow

    def ledger(self, executor: AsyncSession | AsyncConnection) -> BudgetLedger:
        """The budget ledger on a session or an autocommit connection."""
        return BudgetLedger(executor, self.daily_budget_usd, self.fragment_cost_limit_usd)

    async def retrying(self, work: Callable[[SqlUnitOfWork], Awaitable[T]]) -> T:
        """Run `work` in a unit of work, again from the start on a deadlock or a
        serialisation failure (each attempt rolls back whole)."""

        async def attempt() -> T:
            async with self() as uow:
                return await work(uow)

        return await retry_conflicts(attempt)

    async def autocommit(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run single-statement work on an autocommit connection (retried like `retrying`):
        a shared row is then held for one statement, not for a transaction's round trips."""

        async def attempt() -> T:
            async with self.engine.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                return await work(connection)

        return await retry_conflicts(attempt)

    async def after_commit(self, events: Sequence[tuple[int, int]],
                           job_ids: Sequence[int]) -> None:
        """Publish committed events, then wake workers for committed jobs."""
        await self.publish(events)
        if job_ids and self.dispatcher is not None:
            await self.dispatcher.send(list(job_ids))

    async def publish(self, events: Sequence[tuple[int, int]]) -> None:
        """Hand committed progress events (batch id, seq) to the bus; a failure is logged,
        never raised: subscribers catch up from PostgreSQL."""
        if not events or self.events is None:
            return
        try:
            await self.events.publish_committed(list(events))
        except Exception:
            log.warning("could not publish %d progress events", len(events), exc_info=True)
