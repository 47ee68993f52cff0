"""Worker → client latency of batch progress events, on both transports, measured in one run.

    python -m benchmarks.progress_latency [--batches 3] [--subscribers 10] [--chunk-tokens 200]

For each transport it starts real processes on a scratch database (created on the PostgreSQL
of MMOS_BENCH_ADMIN_DSN, dropped afterwards):

- in-process: `mmos serve` without REDIS_URL (worker threads and broadcaster in the server);
- redis: `mmos serve` with REDIS_URL (dispatch only) and one `mmos worker` process; events
  cross processes on Redis Streams (MMOS_BENCH_REDIS_URL, a database it flushes).

Each batch runs the offline model `rules-fast` over the demo interview cut in small chunks,
one call at a time, followed by `--subscribers` WebSocket clients. The latency of an event is
the time a client received it minus the event's `at` (the start of the transaction that wrote
it, on the same machine's clock): it covers the rest of that transaction, the commit, reading
the row back, publishing and delivery. Only events written after the client was attached are
counted (earlier ones come from the Postgres snapshot and measure nothing live).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets

REPO_ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("MMOS_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MMOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
_INHERITED = ("DATABASE_URL", "MMOS_DATABASE_URL", "REDIS_URL", "MMOS_REDIS_URL", "MMOS_PORT",
              "MMOS_HOST")

PROGRESS = """subscription($batch: ID!) { batchProgress(batchId: $batch) { seq kind at } }"""
CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  ... on CreateSourcePayload { source { id } } } }"""
START = """mutation($input: StartMultiModelProcessingInput!) { startMultiModelProcessing(
  input: $input) { ... on StartMultiModelProcessingPayload { batches { id } } } }"""


@dataclass
class Sample:
    """One event received by one client."""

    seq: int
    kind: str
    latency_ms: float


# -- processes ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "api.cli", *args], env=env,
                                cwd=log.parent, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _wait(check: Any, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what}: exited early\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise SystemExit(f"{what}: not ready in time\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def running_stack(transport: str, database_url: str, chunk_tokens: int,
                  workdir: Path) -> Iterator[int]:
    """Start the server (and worker) of `transport`; yields the server's port."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    env.update(DATABASE_URL=database_url, PYTHONPATH=str(REPO_ROOT), MMOS_ENV="test",
               MMOS_LOG_LEVEL="WARNING", MMOS_CHUNK_MAX_TOKENS=str(chunk_tokens),
               MMOS_LLM_CONCURRENCY="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    if transport == "redis":
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        env["REDIS_URL"] = REDIS_URL
    port = _free_port()
    processes = []
    try:
        server_log = workdir / f"serve-{transport}.log"
        server = _spawn(["serve", "--port", str(port)], env, server_log)
        processes.append(server)
        if transport == "redis":
            worker_log = workdir / "worker.log"
            worker = _spawn(["worker", "--threads", "2"], {**env, "MMOS_LOG_LEVEL": "INFO"},
                            worker_log)
            processes.append(worker)
            _wait(lambda: "consuming with" in worker_log.read_text(errors="replace"), worker,
                  worker_log, "mmos worker")
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200,
              server, server_log, "mmos serve")
        yield port
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A migrated database of its own, dropped afterwards; yields its asyncpg URL."""
    import asyncpg

    from db.migrate import upgrade_sync

    name = f"mmos_bench_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{url}/{name}"
    try:
        upgrade_sync(url)
        yield url
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# -- clients --------------------------------------------------------------------------------------


def _graphql(port: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql",
                          json={"query": query, "variables": variables}, timeout=30)
    body: dict[str, Any] = response.json()
    if "errors" in body:
        raise SystemExit(f"GraphQL error: {body['errors']}")
    return body["data"]  # type: ignore[no-any-return]


def start_batch(port: int) -> str:
    """A new copy of the demo interview and one batch of rules-fast over it."""
    from api.demo_data import load_samples

    sample = load_samples()[0]
    tag = uuid.uuid4().hex[:10].upper()
    source = _graphql(port, CREATE, {"input": {
        "sourceCode": f"BENCH_{tag}", "title": sample["title"], "sourceType": "INTERVIEW",
        "content": f"{sample['content']}\nRun {tag}.\n", "language": "en"}})
    source_id = source["createSource"]["source"]["id"]
    started = _graphql(port, START, {"input": {"sourceId": source_id, "models": ["rules-fast"]}})
    return str(started["startMultiModelProcessing"]["batches"][0]["id"])


async def follow(port: int, batch_id: str) -> list[Sample]:
    """One client until the subscription completes; the samples of events written after it
    was attached (its first message proves it was)."""
    samples: list[Sample] = []
    attached: float | None = None
    async with websockets.connect(f"ws://127.0.0.1:{port}/graphql",
                                  subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                  max_queue=None) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        json.loads(await ws.recv())
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": PROGRESS, "variables": {"batch": batch_id}}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            received = time.time()
            if message["type"] != "next":
                return samples
            event = message["payload"]["data"]["batchProgress"]
            at = dt.datetime.fromisoformat(event["at"]).timestamp()
            if attached is None:
                attached = received
            elif at > attached:
                samples.append(Sample(event["seq"], event["kind"], (received - at) * 1000))


async def measure(port: int, batches: int, subscribers: int) -> list[Sample]:
    """Warm the worker up with one batch, then measure `batches` batches."""
    await asyncio.gather(*(follow(port, start_batch(port)) for _ in range(1)))
    samples: list[Sample] = []
    for _ in range(batches):
        batch_id = start_batch(port)
        for received in await asyncio.gather(*(follow(port, batch_id)
                                               for _ in range(subscribers))):
            samples += received
    return samples


# -- report ---------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(results: dict[str, list[Sample]], subscribers: int) -> str:
    lines = [f"batch progress latency, worker commit -> client ({subscribers} subscribers "
             "per batch)", "",
             f"{'transport':<12}{'events':>8}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"
             f"{'mean ms':>10}"]
    for transport, samples in results.items():
        values = [sample.latency_ms for sample in samples]
        if not values:
            lines.append(f"{transport:<12}{0:>8}")
            continue
        lines.append(f"{transport:<12}{len(values):>8}{percentile(values, 0.5):>10.1f}"
                     f"{percentile(values, 0.95):>10.1f}{max(values):>10.1f}"
                     f"{statistics.fmean(values):>10.1f}")
    if all(results.values()):
        local, redis = (percentile([s.latency_ms for s in results[t]], 0.5)
                        for t in ("in-process", "redis"))
        lines += ["", f"p50 ratio redis / in-process: {redis / local:.2f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--chunk-tokens", type=int, default=200)
    args = parser.parse_args(argv)
    results: dict[str, list[Sample]] = {}
    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        for transport in ("in-process", "redis"):
            with running_stack(transport, url, args.chunk_tokens, Path(tmp)) as port:
                results[transport] = asyncio.run(measure(port, args.batches, args.subscribers))
    print(report(results, args.subscribers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
