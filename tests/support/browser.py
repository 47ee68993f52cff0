"""The review page under a real browser: the app served over loopback HTTP, Chromium.

The server is uvicorn on the test session's event loop, bound to the session's processing
runtime (in-process workers, the fake provider), so the page and the test see one database.
Playwright drives Debian's `chromium` (no browser download).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.support.serve import free_port

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def chromium_or_skip() -> str:
    """The system Chromium; a skip when absent, a failure where it is required (CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "no system Chromium (apt-get install --no-install-recommends chromium)"
    if os.environ.get("MMOS_BROWSER_TESTS") == "required" or os.environ.get("CI"):
        pytest.fail(f"browser tests are required here but there is {reason}")
    pytest.skip(reason)


class LiveServer:
    """The ASGI app served by uvicorn on a free loopback port, on the running loop; no
    lifespan: the app is built on a runtime the test session owns."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> LiveServer:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        """Stop accepting and close open connections (WebSockets included)."""
        if self.task is None:
            return
        self.server.should_exit = True
        self.server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)
        self.task = None


@contextlib.asynccontextmanager
async def live_server(app: Any) -> AsyncIterator[LiveServer]:
    server = await LiveServer(app).start()
    try:
        yield server
    finally:
        await server.stop()


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    # evaluate() runs through DevTools, outside the page's CSP (which refuses inline scripts).
    await page.evaluate(AXE.read_text() + "\n;true")
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
