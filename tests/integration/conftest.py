"""Integration fixtures: in-process workers on the stub broker, the fake provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.fake_provider import FakeProvider


@pytest.fixture(scope="session")
async def processing(runtime: Any, database_url: str) -> AsyncIterator[Any]:
    """The runtime with a dispatcher and Dramatiq worker threads in this process."""
    from api.wiring import attach_processing

    await attach_processing(runtime, database_url, in_process_worker=True)
    yield runtime
    worker = runtime.services.pop("worker", None)
    if worker is not None:
        await worker.aclose()


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset()
    return fake_provider


async def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)
