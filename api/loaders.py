"""Per-request DataLoaders: every relation loads in one statement per batch of keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from api.bootstrap import Runtime
from db.sources import SourceRepository

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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
