"""Rendering the review page's reader: a 100,000-character source with 1,000 spans of two models,
in headless Chromium, as a ratio to loading the same reader on an empty source, measured in the
same run (the floor: page load, scripts, first render).

    .venv/bin/python -m benchmarks.review_render [--repeat 5] [--chars 100000] [--spans 1000]

The page's own assets are served by a bare Starlette app (api/review.py's routes, no database);
its GraphQL requests are answered by the browser (Playwright routing) from generated data, so
the time is the page's alone. Each figure is the median of `--repeat` fresh page loads, from
navigation start to the last highlighted segment on screen. The acceptance bar is 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import statistics
from typing import Any

import uvicorn
from starlette.applications import Starlette

from api.review import review_routes

MODELS = ("rules-fast", "rules-thorough")
WORDS = ("I", "kept", "every", "calculation", "because", "bridges", "teach", "patience", "and",
         "my", "students", "learn", "to", "check", "twice", "before", "they", "trust", "it")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def generated_source(chars: int, spans: int, seed: int = 7) -> dict[str, Any]:
    """A source of `chars` characters and `spans` fragment spans over it (overlapping)."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS) + ("." if rng.random() < 0.08 else "")
        words.append(word)
        length += len(word) + 1
    content = " ".join(words)[:chars]
    fragment_spans = []
    for i in range(spans):
        start = rng.randrange(0, chars - 400)
        fragment_spans.append({
            "fragmentId": f"F{i}", "runId": f"R{i % 2}", "model": MODELS[i % 2],
            "charStart": start, "charEnd": start + rng.randrange(40, 400),
            "grounding": "EXACT", "verificationStatus": "UNVERIFIED", "category": "COGNITIVE"})
    return {"content": content, "spans": fragment_spans}


def _answers(source: dict[str, Any]) -> dict[str, Any]:
    entries = [{"model": model, "runId": f"R{i}", "batchId": f"B{i}", "qualityScore": 8.0 + i,
                "qualityLow": 7.5 + i, "qualityHigh": 8.5 + i, "provisional": False,
                "isReference": i == 1, "fragmentCount": 500, "groundedFragmentCount": 500,
                "costUsd": "0", "costPerFragment": "0", "latencyMs": 1000, "vsReference": None}
               for i, model in enumerate(MODELS)] if source["spans"] else []
    reader = {"id": "S", "sourceCode": "BENCH", "title": "Benchmark", "sourceType": "INTERVIEW",
              "language": "en", "status": "PROCESSED", "content": source["content"],
              "charCount": len(source["content"]),
              "comparison": {"pendingRuns": 0, "entries": entries,
                             "reference": {"kind": "REFERENCE_MODEL", "model": MODELS[1],
                                           "runId": "R1"}},
              "sweetSpot": {"model": MODELS[0], "qualified": True, "reason": "",
                            "paretoFrontier": []}}
    return {
        "me": {"me": {"name": "local", "role": "operator", "canReview": True, "keyless": True}},
        "Reader": {"source": reader},
        "Spans": {"source": {"fragmentSpans": source["spans"]}},
        "batches": {"batches": {"edges": []}},
    }


async def _time_render(browser: Any, url: str, source: dict[str, Any], marks: int) -> float:
    """Milliseconds from navigation start until `marks` segments (or the reader) are shown."""
    answers = _answers(source)
    page = await browser.new_page()

    async def answer(route: Any) -> None:
        query = json.loads(route.request.post_data or "{}").get("query", "")
        name = next((key for key in ("Reader", "Spans", "batches") if key in query), "me")
        await route.fulfill(status=200, content_type="application/json",
                            body=json.dumps({"data": answers[name]}))

    await page.route("**/graphql", answer)
    await page.goto(f"{url}/review#/source/S")
    done = await page.wait_for_function(
        """marks => (document.querySelectorAll('mark.seg').length >= marks
                     && document.querySelector('h1 .code')) ? performance.now() : false""",
        arg=marks, polling="raf", timeout=60_000)
    elapsed = float(await done.json_value())
    await page.close()
    return elapsed


async def run(repeat: int, chars: int, spans: int) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("review_render needs Debian's chromium (apt-get install chromium)")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=review_routes()), host="127.0.0.1",
                                           port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    big = generated_source(chars, spans)
    empty = {"content": "", "spans": []}
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=["--no-sandbox"])
            await _time_render(browser, url, empty, 0)  # warm the caches once
            floor = [await _time_render(browser, url, empty, 0) for _ in range(repeat)]
            # Segments on screen: at least one per span boundary run, counted by the page.
            loaded = [await _time_render(browser, url, big, spans // 2) for _ in range(repeat)]
            await browser.close()
    finally:
        server.should_exit = True
        await serving
    empty_ms, loaded_ms = statistics.median(floor), statistics.median(loaded)
    print(f"review page reader, {chars:,} characters, {spans:,} spans, headless Chromium, "
          f"median of {repeat}")
    print(f"  empty source (floor)   {empty_ms:8.1f} ms")
    print(f"  {chars // 1000}k chars, {spans} spans {loaded_ms:8.1f} ms   "
          f"ratio {loaded_ms / empty_ms:5.2f}x   render beyond the floor "
          f"{loaded_ms - empty_ms:6.1f} ms   (bar: 1000 ms) "
          f"{'ok' if loaded_ms < 1000 else 'TOO SLOW'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--spans", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(run(args.repeat, args.chars, args.spans))


if __name__ == "__main__":
    main()
