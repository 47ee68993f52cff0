"""API fixtures shared by several modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest


@pytest.fixture
async def production(db: Any, settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app with production settings (keys required, GraphiQL and introspection off) over
    the clean test database, and that database's container."""
    from api.app import create_app

    prod = settings.model_copy(update={"env": "production"})
    app = create_app(prod, runtime=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http, db
