"""Per-request DataLoaders: every relation loads in one statement per batch of keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from api.bootstrap import Runtime
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


def _keyed(runtime: Runtime, fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, Any]]]
           ) -> Callable[[list[Any]], Awaitable[Sequence[Any]]]:
    async def load(keys: list[Any]) -> Sequence[Any]:
        async with runtime.read() as session:
            found = await fetch(session, list(dict.fromkeys(keys)))
        return [found.get(key) for key in keys]

    return load


class Loaders:
    """Fresh loaders per request (and per subscription event): caches never go stale."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._extra: dict[str, DataLoader[Any, Any]] = {}
        # GraphQL objects built from loaded rows, shared by every field of the request that
        # refers to the same row (a page of fragments of a few sources builds a few Sources).
        self.objects: dict[Hashable, Any] = {}
        self.source: DataLoader[int, Any] = DataLoader(
            _keyed(runtime, lambda s, ids: SourceRepository(s).get_many(ids))
        )

    def get(self, name: str, fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, Any]]]
            ) -> DataLoader[Any, Any]:
        """A named loader created on first use in this request."""
        loader = self._extra.get(name)
        if loader is None:
            loader = DataLoader(_keyed(self.runtime, fetch))
            self._extra[name] = loader
        return loader
