"""The review page's README screenshot of the comparison and the cost–quality plot, reproducible.

A throwaway database on the local PostgreSQL, the app served by uvicorn on a free loopback port
with in-process workers, the optimization scenario's four priced models behind the loopback
fake provider (tests/support/scenarios.py: a dear reference, an equally good cheap model, one
that invents a quote per chunk, one that finds half), one long interview processed by all four,
then Debian's Chromium (Playwright) photographs the comparison table and the plot: four
distinct costs per grounded fragment, the Pareto frontier and the sweet-spot ring. The
reference is priced lower than in the cast (see READABLE_PRICES) so the cheap runs spread out.

    .venv/bin/python -m tests.support.review_screenshots [--out docs/review-plot.png]
        [--cast-prices]

The database is dropped afterwards. docs/review-reader.png (the reader over the demo data) is
not made here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.support.scenarios import MODELS, PRICES, REFERENCE, START

ADMIN_DSN = os.environ.get("MMOS_SCREENSHOT_ADMIN_DSN",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "review-plot.png"
VIEWPORT = {"width": 1400, "height": 900}
COMPARISON = """query($id: ID!) { comparison(sourceId: $id) { pendingRuns
  entries { model costPerFragment } } }"""
# The cheap twin of the reference: hovered, its numbers show under the plot.
HOVERED = "good-small"
# The cast's prices, but the reference at 2.5 times the twin instead of 17 times: the plot's
# cost axis is linear up to the dearest run, and at the cast's prices the three cheap runs,
# the frontier between them and the sweet spot would share its first 6%. `--cast-prices`
# photographs the cast's prices unchanged.
READABLE_PRICES = {**PRICES, REFERENCE: ("1.5", "4.5")}


async def _admin(*statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _process(gql: Any, provider: Any, prices: dict[str, tuple[str, str]]) -> str:
    """Register the four priced models, process one long interview with all of them; returns
    the source's id once every run is measured."""
    from tests.support.processing import CREATE_SOURCE, interview, register_fake_model
    from tests.support.waiting import wait_for

    for name in MODELS:
        await register_fake_model(gql, provider, name=name, litellm_model=f"openai/{name}",
                                  prices=prices[name])
    created = (await gql(CREATE_SOURCE, {"input": {
        "sourceCode": "PRICED_1", "title": "A long interview, four priced models",
        "sourceType": "INTERVIEW", "content": interview("PRICED", 240),
        "language": "en"}}))["data"]["createSource"]
    source_id = str(created["source"]["id"])
    started = (await gql(START, {"input": {"sourceId": source_id, "models": MODELS}}))["data"]
    assert started["startMultiModelProcessing"]["__typename"] == \
        "StartMultiModelProcessingPayload", started

    async def measured() -> dict[str, Any] | None:
        found = (await gql(COMPARISON, {"id": source_id}))["data"]["comparison"]
        done = found["pendingRuns"] == 0 and len(found["entries"]) == len(MODELS)
        return found if done else None

    comparison = await wait_for(measured, timeout=180, interval=0.3)
    costs = {e["model"]: e["costPerFragment"] for e in comparison["entries"]}
    assert len(set(costs.values())) == len(MODELS) and None not in costs.values(), costs
    print("cost per grounded fragment:", costs, flush=True)
    return source_id


async def _photograph(url: str, source_id: str, out: Path) -> None:
    """The comparison table and the plot below it, as one picture of about 1400x900."""
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no system Chromium (apt-get install --no-install-recommends chromium)")
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium,
                                                   args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{url}/review#/source/{source_id}")
            await page.wait_for_selector("mark.seg")
            await page.wait_for_selector("#cost-quality .sweet-spot")
            await page.wait_for_selector("#cost-quality polyline.frontier")
            table = page.locator('section[aria-labelledby="comparison-title"]')
            plot = page.locator('section[aria-labelledby="plot-title"]')
            await table.evaluate("section => section.scrollIntoView({block: 'start'})")
            await page.hover(f'#cost-quality .point[data-model="{HOVERED}"] circle')
            await page.wait_for_function(
                "document.getElementById('plot-tooltip').textContent.startsWith("
                f"'{HOVERED}:')")
            top, bottom = await table.bounding_box(), await plot.bounding_box()
            assert top is not None and bottom is not None
            y = max(0.0, top["y"] - 8)
            height = min(bottom["y"] + bottom["height"] + 8 - y, VIEWPORT["height"] - y)
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out), clip={"x": 0, "y": y,
                                                       "width": VIEWPORT["width"],
                                                       "height": height})
        finally:
            await browser.close()
    assert not errors, errors


async def _run(url: str, out: Path, prices: dict[str, tuple[str, str]]) -> None:
    import httpx

    from api.app import create_app
    from api.container import attach_processing, build_container
    from api.settings import Settings
    from tests.support.browser import live_server
    from tests.support.fake_provider import FakeProvider
    from tests.support.graphql import GraphQLClient
    from tests.support.processing import wait_until_idle
    from tests.support.scenarios import behaviour

    # Chunks of about 300 tokens, as the integration tests use: the long interview spans
    # enough chunks for paired intervals that tell the models apart.
    settings = Settings(env="test", database_url=url, chunk_max_tokens=300,
                        _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url)
    try:
        await attach_processing(runtime, url, in_process_worker=True)
        with FakeProvider(behaviour) as provider:
            async with live_server(create_app(settings, runtime=runtime)) as server, \
                    httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                source_id = await _process(GraphQLClient(http), provider, prices)
                await _photograph(server.url, source_id, out)
            await wait_until_idle(runtime)
    finally:
        worker, runtime.worker = runtime.worker, None
        if worker is not None:
            await worker.aclose()
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"the PNG to write ({OUT})")
    parser.add_argument("--cast-prices", action="store_true",
                        help="the scenario's prices unchanged (the reference 17 times dearer)")
    args = parser.parse_args()
    name = f"mmos_screens_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    try:
        asyncio.run(_run(url, args.out, PRICES if args.cast_prices else READABLE_PRICES))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
