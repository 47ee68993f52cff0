"""Per-request DataLoaders: every relation loads in one statement per batch of keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from api.container import Container
from db.engine import Session
from db.sources import SourceRepository

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

PENDING: Any = object()
"""What `loaded` answers for a key its loader does not hold yet."""


def loaded(loader: DataLoader[Any, Any], key: Any) -> Any:
    """The value `loader` already loaded for `key` in this request, or PENDING.

    Resolvers answer synchronously with it when a parent prefetched the page's keys: no
    coroutine per object, and the page's objects complete without waiting on each other.
    """
    future = loader.cache_map.get(key)
    if future is None or not future.done() or future.cancelled() or future.exception():
        return PENDING
    return future.result()


@asynccontextmanager
async def one_statement_read(runtime: Container) -> AsyncIterator[Session]:
    """A session for a read of one statement, in autocommit: the statement is not wrapped in
    BEGIN and ROLLBACK, two round trips that are each a wait for the event loop (longest when
    other threads of the process, such as in-process workers, hold the interpreter). A lone
    statement sees one snapshot either way."""
    async with runtime.one_statement_sessions() as session:
        yield session


def page_read(runtime: Container, counted: bool) -> AbstractAsyncContextManager[Session]:
    """The session for reading a page: a page with its total count is two statements (one
    snapshot, one transaction), a page without it is one (autocommit)."""
    return runtime.read() if counted else one_statement_read(runtime)


def _keyed(runtime: Container, fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, Any]]],
           one_statement: bool = False) -> Callable[[list[Any]], Awaitable[Sequence[Any]]]:
    def session() -> AbstractAsyncContextManager[Session]:
        return one_statement_read(runtime) if one_statement else runtime.read()

    async def load(keys: list[Any]) -> Sequence[Any]:
        async with session() as opened:
            found = await fetch(opened, list(dict.fromkeys(keys)))
        return [found.get(key) for key in keys]

    return load


class Loaders:
    """Fresh loaders per request (and per subscription event): caches never go stale."""

    def __init__(self, runtime: Container) -> None:
        self.runtime = runtime
        self._extra: dict[str, DataLoader[Any, Any]] = {}
        # GraphQL objects built from loaded rows, shared by every field of the request that
        # refers to the same row (a page of fragments of a few sources builds a few Sources).
        self.objects: dict[Hashable, Any] = {}
        self.source: DataLoader[int, Any] = DataLoader(
            # Without the content column: `Source.content` loads it when selected.
            _keyed(runtime, lambda s, ids: SourceRepository(s).get_many(ids, with_content=False),
                   one_statement=True)
        )

    def get(self, name: str, fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, Any]]],
            *, one_statement: bool = False) -> DataLoader[Any, Any]:
        """A named loader created on first use in this request; `one_statement` when `fetch`
        sends a single statement (it then runs in autocommit, see one_statement_read)."""
        loader = self._extra.get(name)
        if loader is None:
            loader = DataLoader(_keyed(self.runtime, fetch, one_statement))
            self._extra[name] = loader
        return loader
