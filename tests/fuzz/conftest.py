"""Fuzz fixtures: an app whose processing requests are held, error-log capture, a seed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.fuzz.discovery import cursor_orders, node_types
from tests.support.fuzz.oracle import FuzzClient, capture_errors
from tests.support.fuzz.scalars import Pools
from tests.support.fuzz.seed import HeldJobs, seed


@pytest.fixture
async def fuzz_runtime(db: Any) -> AsyncIterator[Any]:
    """The clean test runtime with a dispatcher that never lets a fuzzed job run."""
    held = HeldJobs(db)
    view = db.with_dispatcher(held)
    yield view
    await held.cancel_all()


@pytest.fixture
async def fuzz_http(fuzz_runtime: Any, settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    app = create_app(settings, runtime=fuzz_runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def fuzz_client(fuzz_http: httpx.AsyncClient) -> AsyncIterator[FuzzClient]:
    """Sends fuzzed operations; any ERROR logged while serving one fails it."""
    with capture_errors() as log:
        yield FuzzClient(fuzz_http, log)


@pytest.fixture
async def seeded_pools(fuzz_http: httpx.AsyncClient, fuzz_runtime: Any) -> Pools:
    """Sources processed by the offline models, tags, relationships; their IDs and names."""
    pools = await seed(fuzz_http, fuzz_runtime, node_types())
    return dataclasses.replace(pools, cursor_orders=cursor_orders())


@pytest.fixture
def empty_pools() -> Pools:
    """No rows to aim at: IDs are made up, names are the offline models'."""
    return Pools(node_types=node_types(), names=("rules-fast", "rules-thorough"),
                 cursor_orders=cursor_orders())
