"""Batch progress over graphql-transport-ws against real servers, on both transports.

in-process: one `mmos serve` child with no REDIS_URL (stub broker, worker threads and the
in-process broadcaster inside it). redis: `mmos serve` with REDIS_URL (it only dispatches) and a
separate `mmos worker` child; events cross processes on Redis Streams. Both use the session's
test database. Clients are real WebSocket connections (`websockets`) and the reference
JavaScript client (`graphql-ws` on Node).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from api.demo_data import load_samples
from tests.support.database import reset_database
from tests.support.workers import flush_redis, redis_reachable

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_CLIENT = REPO_ROOT / "scripts" / "js-subscription-client"
REDIS_URL = os.environ.get("MMOS_TEST_SUBSCRIPTIONS_REDIS_URL", "redis://127.0.0.1:6379/8")
PROTOCOL = "graphql-transport-ws"
SUBSCRIPTION_CAP = 3
WAIT = 60.0  # seconds any one batch may take end to end
_INHERITED = ("DATABASE_URL", "MMOS_DATABASE_URL", "REDIS_URL", "MMOS_REDIS_URL",
              "MMOS_TEST_DATABASE_URL", "MMOS_PORT", "MMOS_HOST")
# Small chunks make the demo interview a long source; one call at a time spreads its events.
# The lease outlasts a worker's first job (it imports LiteLLM on the actors' loop): a run taken
# over after a lost lease would start twice, which is correct but not what these tests compare.
FAST = {"MMOS_ENV": "test", "MMOS_LOG_JSON": "true", "MMOS_CHUNK_MAX_TOKENS": "300",
        "MMOS_LLM_CONCURRENCY": "1", "MMOS_WORKER_THREADS": "2", "MMOS_JOB_LEASE_SECONDS": "30",
        "MMOS_SWEEP_INTERVAL_SECONDS": "2", "MMOS_PROGRESS_POLL_SECONDS": "2",
        "MMOS_MAX_SUBSCRIPTIONS_PER_CONNECTION": str(SUBSCRIPTION_CAP),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}

PROGRESS = """subscription($batch: ID!, $after: String) {
  batchProgress(batchId: $batch, after: $after) {
    cursor seq kind runId model fragments costUsd progress at message } }"""
CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id } }
  ... on ValidationError { message } ... on Conflict { message } } }"""
START = """mutation($input: StartMultiModelProcessingInput!) { startMultiModelProcessing(
  input: $input) { __typename ... on StartMultiModelProcessingPayload { batches { id } } } }"""
BATCH = """query($id: ID!) { batch(id: $id) { status runs { chunkCount fragmentCount } } }"""


# -- the servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A `python -m api.cli ...` child process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def spawn(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Child:
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        # cwd is a scratch dir so that no developer `.env` reaches the child.
        process = subprocess.Popen([sys.executable, "-m", "api.cli", *args], env=env,
                                   cwd=workdir, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return Child(name, process, log)


def wait_until(ready: Any, child: Child, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            pytest.fail(f"{child.name} exited with {child.process.returncode}:\n{child.tail()}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.1)
    pytest.fail(f"{child.name} not {what} within {timeout}s:\n{child.tail()}")


@dataclass
class Stack:
    """A running server (and worker) on one transport."""

    transport: str
    port: int
    children: list[Child] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.tail()}" for c in self.children)


@pytest.fixture(scope="module")
async def quiet_database(runtime: Any, database_url: str) -> AsyncIterator[None]:
    """A clean database, and no in-process worker of this test process sweeping it."""
    worker, runtime.worker = runtime.worker, None
    if worker is not None:
        await worker.aclose()
    await reset_database(runtime)
    try:
        yield
    finally:
        if worker is not None:
            from api.container import attach_processing

            await attach_processing(runtime, database_url, in_process_worker=True)


@pytest.fixture(scope="module", params=["in-process", "redis"])
def stack(request: pytest.FixtureRequest, database_url: str, quiet_database: None,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    transport = request.param
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    env.update(FAST, DATABASE_URL=database_url, PYTHONPATH=str(REPO_ROOT))
    if transport == "redis":
        if not redis_reachable(REDIS_URL):
            pytest.skip(f"no Redis answers at {REDIS_URL}")
        flush_redis(REDIS_URL)
        env["REDIS_URL"] = REDIS_URL
    workdir = tmp_path_factory.mktemp(f"stack-{transport}")
    running = Stack(transport, free_port())
    try:
        server = spawn("serve", ["serve", "--port", str(running.port)], env, workdir)
        running.children.append(server)
        if transport == "redis":
            worker = spawn("worker", ["worker"], env, workdir)
            running.children.append(worker)
        wait_until(lambda: httpx.get(f"{running.http}/readyz", timeout=1).status_code == 200,
                   server, "ready")
        if transport == "redis":
            wait_until(lambda: "consuming with" in worker.log.read_text(errors="replace"),
                       worker, "consuming")
        yield running
    finally:
        for child in running.children:
            child.terminate()
        for child in running.children:
            child.wait()


# -- clients --------------------------------------------------------------------------------------


def graphql(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{stack.http}/graphql", json={"query": query,
                                                       "variables": variables or {}}, timeout=30)
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def start_long_batch(stack: Stack) -> str:
    """A new long source (the demo interview, about 15 chunks) and one batch of rules-fast."""
    sample = load_samples()[0]
    tag = uuid.uuid4().hex[:10].upper()
    created = graphql(stack, CREATE, {"input": {
        "sourceCode": f"LIVE_{tag}", "title": sample["title"], "sourceType": "INTERVIEW",
        "content": f"{sample['content']}\nSession {tag} ended here.\n", "language": "en"}})
    assert created["createSource"]["__typename"] == "CreateSourcePayload", created
    source_id = created["createSource"]["source"]["id"]
    started = graphql(stack, START, {"input": {"sourceId": source_id, "models": ["rules-fast"]}})
    payload = started["startMultiModelProcessing"]
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    return str(payload["batches"][0]["id"])


class Connection:
    """One graphql-transport-ws connection."""

    def __init__(self, socket_: Any) -> None:
        self.socket = socket_

    @classmethod
    async def open(cls, stack: Stack, payload: dict[str, Any] | None = None) -> Connection:
        socket_ = await websockets.connect(stack.ws, subprotocols=[PROTOCOL],  # type: ignore[list-item]
                                           open_timeout=10, max_queue=None)
        connection = cls(socket_)
        await connection.send({"type": "connection_init", "payload": payload or {}})
        assert await connection.receive() == {"type": "connection_ack"}
        return connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, within: float = WAIT) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.socket.recv(), within))
        return message

    async def subscribe(self, op_id: str, query: str, **variables: Any) -> None:
        await self.send({"id": op_id, "type": "subscribe",
                         "payload": {"query": query, "variables": variables}})

    async def events(self, op_id: str, *, limit: int | None = None,
                     within: float = WAIT) -> list[dict[str, Any]]:
        """`next` payloads of one operation until it completes (or `limit` were received)."""
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(within):
            while limit is None or len(received) < limit:
                message = await self.receive()
                assert message.get("id") == op_id, message
                if message["type"] == "complete":
                    return received
                assert message["type"] == "next", message
                assert "errors" not in message["payload"], message
                received.append(message["payload"]["data"])
        return received

    async def close(self) -> None:
        await self.socket.close()


async def follow(stack: Stack, batch_id: str, after: str | None = None) -> list[dict[str, Any]]:
    """Every batchProgress event of a fresh connection until the subscription completes."""
    connection = await Connection.open(stack)
    try:
        await connection.subscribe("1", PROGRESS, batch=batch_id, after=after)
        return [data["batchProgress"] for data in await connection.events("1")]
    finally:
        await connection.close()


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


# -- acceptance -----------------------------------------------------------------------------------


async def test_a_subscriber_right_after_start_gets_every_event_in_order(stack: Stack) -> None:
    # Given
    batch_id = start_long_batch(stack)
    # When
    events = await follow(stack, batch_id)
    # Then
    kinds = [event["kind"] for event in events]
    assert seqs(events) == list(range(1, len(events) + 1)), stack.logs()
    assert kinds[0] == "QUEUED" and kinds[1] == "STARTED" and kinds[-1] == "BATCH_DONE"
    assert kinds[-2] == "RUN_DONE"
    assert set(kinds[2:-2]) == {"CHUNK_DONE"}, (kinds, events, stack.logs())
    batch = graphql(stack, BATCH, {"id": batch_id})["batch"]
    run = batch["runs"][0]
    assert batch["status"] == "COMPLETED"
    assert kinds.count("CHUNK_DONE") == run["chunkCount"] >= 8
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress) and progress[-1] == 1.0 and 0 < progress[5] < 1
    assert events[-1]["fragments"] == run["fragmentCount"] > 0
    assert {event["model"] for event in events} == {"rules-fast"}
    assert [event["cursor"] for event in events] == [f"{seq}-0" for seq in seqs(events)]


async def test_resubscribing_after_the_last_cursor_gets_exactly_the_missed_events(
        stack: Stack) -> None:
    # Given: a client that saw three events, then lost its connection
    batch_id = start_long_batch(stack)
    connection = await Connection.open(stack)
    await connection.subscribe("1", PROGRESS, batch=batch_id)
    seen = [data["batchProgress"] for data in await connection.events("1", limit=3)]
    await connection.close()  # no `complete`: the connection just goes away
    # When
    missed = await follow(stack, batch_id, after=seen[-1]["cursor"])
    # Then: none repeated, none lost
    everything = await follow(stack, batch_id)
    assert seqs(seen) == [1, 2, 3]
    assert seqs(missed) == list(range(4, len(everything) + 1))
    assert seen + missed == everything
    assert missed[-1]["kind"] == "BATCH_DONE"


async def test_a_hundred_concurrent_subscribers_each_get_every_event(stack: Stack) -> None:
    # Given
    batch_id = start_long_batch(stack)
    # When
    received = await asyncio.gather(*(follow(stack, batch_id) for _ in range(100)))
    # Then
    reference = received[0]
    assert seqs(reference) == list(range(1, len(reference) + 1))
    assert reference[-1]["kind"] == "BATCH_DONE"
    assert sum(1 for event in reference if event["kind"] == "CHUNK_DONE") >= 8
    for events in received:
        assert events == reference


# -- WebSocket behaviour --------------------------------------------------------------------------

QUEUE = """subscription($interval: Float!) { queueStatus(intervalSeconds: $interval) {
  at workersAlive waiting } }"""
WATCH = """subscription($batch: ID!) { batchProgress(batchId: $batch) {
  seq kind batch { status } } }"""
CANCEL = """mutation($id: ID!) { cancelBatch(input: {batchId: $id}) { __typename } }"""


async def test_connection_init_is_acknowledged_and_ping_gets_pong(stack: Stack) -> None:
    # Given: a local development server needs no key in connection_init
    connection = await Connection.open(stack, {})
    try:
        # When
        await connection.send({"type": "ping"})
        # Then
        assert await connection.receive(5) == {"type": "pong"}
    finally:
        await connection.close()


async def test_connection_init_with_a_wrong_key_is_refused(stack: Stack) -> None:
    # Given / When: credentials that are no valid key, even where keys are optional
    with pytest.raises(Exception) as refused:
        connection = await Connection.open(stack, {"authorization": "Bearer anything"})
        await connection.receive(5)
    # Then: the server closes with 4403 (Forbidden)
    assert "4403" in str(refused.value)


async def test_subscriptions_beyond_the_cap_are_refused_until_one_is_completed(
        stack: Stack) -> None:
    connection = await Connection.open(stack)
    try:
        # Given: as many subscriptions as a connection may hold
        for op_id in ("a", "b", "c")[:SUBSCRIPTION_CAP]:
            await connection.subscribe(op_id, QUEUE, interval=60)
            assert (await connection.receive())["type"] == "next"
        # When: one more
        await connection.subscribe("d", QUEUE, interval=60)
        refused = await connection.receive()
        # Then
        assert refused["type"] == "error" and refused["id"] == "d"
        assert "limit" in refused["payload"][0]["message"].lower()
        # And when the client completes one, a new one fits
        await connection.send({"id": "a", "type": "complete"})
        await connection.subscribe("e", QUEUE, interval=60)
        accepted = await connection.receive()
        assert (accepted["type"], accepted["id"]) == ("next", "e")
    finally:
        await connection.close()


async def test_a_completed_subscription_sends_nothing_more(stack: Stack) -> None:
    connection = await Connection.open(stack)
    try:
        # Given: a queue status every half second
        await connection.subscribe("q", QUEUE, interval=0.5)
        first, second = await connection.events("q", limit=2)
        assert first["queueStatus"]["at"] < second["queueStatus"]["at"]
        assert second["queueStatus"]["workersAlive"] >= 1
        # When
        await connection.send({"id": "q", "type": "complete"})
        # Then: only the answer to a ping arrives (a `next` sent before `complete` landed aside)
        await asyncio.sleep(1.2)
        await connection.send({"type": "ping"})
        while (message := await connection.receive(5))["type"] != "pong":
            assert message["id"] == "q" and message["type"] == "next"
        with pytest.raises(TimeoutError):
            await connection.receive(1.0)
    finally:
        await connection.close()


async def test_every_event_reads_the_batch_afresh_and_completion_is_clean(stack: Stack) -> None:
    # Given: a client watching the batch itself on each event
    batch_id = start_long_batch(stack)
    connection = await Connection.open(stack)
    try:
        await connection.subscribe("w", WATCH, batch=batch_id)
        first = (await connection.events("w", limit=1))[0]["batchProgress"]
        # When: the batch is cancelled while it runs
        cancelled = graphql(stack, CANCEL, {"id": batch_id})["cancelBatch"]
        rest = [data["batchProgress"] for data in await connection.events("w")]
        # Then: the last event shows the batch as it is now, not as the first one cached it
        assert cancelled["__typename"] == "CancelBatchPayload", cancelled
        assert first["batch"]["status"] in ("QUEUED", "RUNNING")
        assert rest[-1]["kind"] == "CANCELLED"
        assert rest[-1]["batch"]["status"] == "CANCELLED"
        assert seqs([first, *rest]) == list(range(1, len(rest) + 2))
        # And the connection outlives the completed subscription
        await connection.send({"type": "ping"})
        assert await connection.receive(5) == {"type": "pong"}
    finally:
        await connection.close()


@pytest.mark.parametrize(("batch", "after", "expected"), [
    ("999999", None, "not found"),
    ("1", "not-a-cursor", "progress cursor"),
    ("1", "999999-0", "ahead"),
])
async def test_a_bad_batch_or_cursor_is_an_error_then_the_subscription_ends(
        stack: Stack, batch: str, after: str | None, expected: str) -> None:
    connection = await Connection.open(stack)
    try:
        await connection.subscribe("x", PROGRESS, batch=batch, after=after)
        message = await connection.receive(10)
        errors = message["payload"] if message["type"] == "error" else \
            message["payload"]["errors"]
        assert expected in errors[0]["message"], message
    finally:
        await connection.close()


async def test_queue_status_shows_jobs_workers_and_budget(stack: Stack) -> None:
    # Given
    start_long_batch(stack)
    # When
    status = graphql(stack, """{ queueStatus { at waiting running waitingBudget
        oldestWaitingSeconds workersAlive workers { workerId alive secondsSinceSeen }
        jobs { priority priorityRank status count oldestSeconds }
        budget { spentUsd remainingUsd } } }""")["queueStatus"]
    # Then
    assert status["workersAlive"] >= 1
    assert all(worker["alive"] for worker in status["workers"][:status["workersAlive"]])
    assert sum(job["count"] for job in status["jobs"]) >= 1
    assert {job["priority"] for job in status["jobs"]} == {"MEDIUM"}
    assert status["budget"]["spentUsd"] is not None
    waiting = [job for job in status["jobs"] if job["status"] == "WAITING"]
    assert (status["oldestWaitingSeconds"] is None) == (not waiting)


@pytest.mark.skipif(shutil.which("node") is None or not (JS_CLIENT / "node_modules").is_dir(),
                    reason="needs node and `npm ci --prefix scripts/js-subscription-client`")
async def test_the_javascript_graphql_ws_client_follows_a_batch_to_completion(
        stack: Stack) -> None:
    # Given
    batch_id = start_long_batch(stack)
    # When
    process = await asyncio.create_subprocess_exec(
        "node", str(JS_CLIENT / "subscribe.mjs"), "--url", stack.ws, "--batch", batch_id,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    # Then
    assert process.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert seqs(events) == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "QUEUED" and events[-1]["kind"] == "BATCH_DONE"
