"""Access holds on WebSockets: a revoked key's open socket is closed (4403) before its next
operation and while its subscriptions run; frames are bounded by MMOS_MAX_REQUEST_BYTES.

Two real servers over the session's test database, spoken to with real WebSocket clients:

- production: a `mmos serve` child with MMOS_ENV=production (keys required), a 4 KiB request
  limit (uvicorn gets it as `ws_max_size`) and a 1 s key re-check;
- local: uvicorn in this process serving the app in keyless local mode, with uvicorn's own
  frame limit left at its 16 MiB default, so that the bound seen is the one in our code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed

from db.keys import KeyRepository
from tests.support.serve import free_port
from tests.support.serve_process import Served, serve_env, serving

pytestmark = pytest.mark.slow

PROTOCOL = "graphql-transport-ws"
LIMIT = 4096  # MMOS_MAX_REQUEST_BYTES of the production server
RECHECK = 1.0  # MMOS_WS_KEY_RECHECK_SECONDS of the production server
LOCAL_LIMIT = 2048
LOCAL_RECHECK = 0.2
QUEUE = "subscription($interval: Float!) { queueStatus(intervalSeconds: $interval) { waiting } }"


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Production:
    served: Served
    database_url: str
    workdir: Path

    @property
    def ws(self) -> str:
        return self.served.graphql_url.replace("http://", "ws://")


@pytest.fixture(scope="module")
def production(database_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Production]:
    workdir = tmp_path_factory.mktemp("ws-production")
    env = serve_env(database_url, workdir / "data", MMOS_ENV="production",
                    MMOS_MAX_REQUEST_BYTES=str(LIMIT),
                    MMOS_WS_KEY_RECHECK_SECONDS=str(RECHECK))
    with serving(env, workdir) as served:
        served.wait_healthy()
        yield Production(served, database_url, workdir)


@pytest.fixture(scope="module")
async def local(runtime: Any, settings: Any) -> AsyncIterator[str]:
    """The app in keyless local mode (test env, loopback) under uvicorn in this process."""
    from api.app import create_app

    app = create_app(settings.model_copy(update={"max_request_bytes": LOCAL_LIMIT,
                                                 "ws_key_recheck_seconds": LOCAL_RECHECK}),
                     runtime=runtime)
    port = free_port()
    # websockets-sansio: the legacy implementation `mmos serve` uses warns at import (tests
    # turn warnings into errors); ws_max_size stays at uvicorn's default on purpose.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           ws="websockets-sansio", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


# -- keys -------------------------------------------------------------------------------------


async def issue(runtime: Any, role: str) -> tuple[str, str]:
    """A new key: (its unique name, its secret)."""
    name = f"ws-{role}-{uuid.uuid4().hex[:8]}"
    async with runtime.transaction() as session:
        return name, (await KeyRepository(session).create(name, role)).secret


async def revoke(runtime: Any, name: str) -> None:
    async with runtime.transaction() as session:
        assert await KeyRepository(session).revoke(name) == 1


async def revoke_with_the_cli(server: Production, name: str) -> None:
    """`mmos keys revoke <name>`, as an operator would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "keys", "revoke", name,
        env=serve_env(server.database_url, server.workdir / "data", MMOS_ENV="production"),
        cwd=server.workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode(errors="replace")
    assert "revoked 1 key" in out.decode(), out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- a graphql-transport-ws client --------------------------------------------------------------


class Socket:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str, payload: dict[str, Any]) -> Socket:
        # No compression: the frames on the wire are exactly the sizes the tests build.
        connection = await websockets.connect(url, subprotocols=[PROTOCOL],  # type: ignore[list-item]
                                              compression=None, open_timeout=10,
                                              max_size=None, max_queue=None)
        socket = cls(connection)
        await socket.send({"type": "connection_init", "payload": payload})
        return socket

    @classmethod
    async def acknowledged(cls, url: str, payload: dict[str, Any]) -> Socket:
        socket = await cls.open(url, payload)
        assert await socket.receive() == {"type": "connection_ack"}
        return socket

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, within: float = 10.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(
            await asyncio.wait_for(self.connection.recv(), within))
        return message

    async def subscribe(self, op_id: str, interval: float = 60.0) -> None:
        await self.send(subscribe_message(op_id, interval))

    async def first_event(self, op_id: str) -> dict[str, Any]:
        message = await self.receive()
        assert (message["type"], message["id"]) == ("next", op_id), message
        assert "errors" not in message["payload"], message
        assert message["payload"]["data"]["queueStatus"]["waiting"] >= 0
        return message

    async def complete(self, op_id: str) -> None:
        """Complete an operation; the pong proves the server handled it (frames in order)."""
        await self.send({"id": op_id, "type": "complete"})
        await self.send({"type": "ping"})
        while (message := await self.receive())["type"] != "pong":
            assert message.get("id") == op_id, message  # an event sent before `complete`

    async def until_closed(self, within: float) -> tuple[list[dict[str, Any]], int | None, str]:
        """Every message until the server closes: (messages, close code, close reason)."""
        received: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    received.append(json.loads(await self.connection.recv()))
        except ConnectionClosed as closed:
            frame = closed.rcvd
            return received, (frame.code if frame else None), (frame.reason if frame else "")
        except TimeoutError:
            pytest.fail(f"still open after {within}s; received {received}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


def subscribe_message(op_id: str, interval: float = 60.0, pad: str = "") -> dict[str, Any]:
    variables: dict[str, Any] = {"interval": interval}
    if pad:
        variables["pad"] = pad  # not a variable of the operation: ignored by execution
    return {"id": op_id, "type": "subscribe", "payload": {"query": QUEUE, "variables": variables}}


def frame_of(size: int, op_id: str, char: str = "x") -> str:
    """A subscribe frame of exactly `size` UTF-8 bytes (padded with `char`)."""
    base = len(json.dumps(subscribe_message(op_id, pad="."), ensure_ascii=False).encode()) - 1
    width = len(char.encode())
    count, rest = divmod(size - base, width)
    text = json.dumps(subscribe_message(op_id, pad=char * count + "." * rest),
                      ensure_ascii=False)
    assert len(text.encode()) == size
    return text


# -- revocation --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "viewer"])
async def test_in_production_revoking_a_key_closes_its_open_websocket_before_the_next_operation(
        production: Production, runtime: Any, role: str) -> None:
    # Given: a socket opened with the key, one subscription served and completed
    name, key = await issue(runtime, role)
    socket = await Socket.acknowledged(production.ws, bearer(key))
    try:
        await socket.subscribe("1")
        await socket.first_event("1")
        await socket.complete("1")
        # When: the key is revoked, and the re-check interval passes
        await revoke_with_the_cli(production, name)
        await asyncio.sleep(RECHECK + 0.3)
        await socket.subscribe("2")
        # Then: the socket is closed with 4403, and that operation sent nothing
        received, code, reason = await socket.until_closed(10)
    finally:
        await socket.close()
    assert code == 4403, (code, reason, received)
    assert "revoked" in reason
    assert [message for message in received if message.get("id") == "2"] == []


async def test_in_production_a_running_subscription_is_closed_once_its_key_is_revoked(
        production: Production, runtime: Any) -> None:
    # Given: a long-running subscription (its next event is a minute away)
    name, key = await issue(runtime, "viewer")
    socket = await Socket.acknowledged(production.ws, bearer(key))
    try:
        await socket.subscribe("live", interval=60)
        await socket.first_event("live")
        # When
        await revoke(runtime, name)
        revoked_at = time.monotonic()
        # Then: closed with 4403 within the re-check interval (plus the check itself)
        received, code, _ = await socket.until_closed(RECHECK * 2 + 5)
    finally:
        await socket.close()
    assert code == 4403, (code, received)
    assert time.monotonic() - revoked_at < RECHECK * 2 + 5
    assert received == []


async def test_in_production_a_valid_key_keeps_working_across_operations(
        production: Production, runtime: Any) -> None:
    # Given
    _, key = await issue(runtime, "viewer")
    socket = await Socket.acknowledged(production.ws, bearer(key))
    try:
        # When: operations spaced beyond the re-check interval (each one re-checks the key)
        for op_id in ("a", "b", "c"):
            await socket.subscribe(op_id)
            await socket.first_event(op_id)
            await socket.complete(op_id)
            await asyncio.sleep(RECHECK + 0.2)
        # and a subscription that runs across several periodic re-checks
        await socket.subscribe("live", interval=0.5)
        events = []
        started = time.monotonic()
        while time.monotonic() - started < RECHECK * 3:
            events.append(await socket.first_event("live"))
        await socket.complete("live")
        # Then: everything was served, the socket still open
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}
    finally:
        await socket.close()
    assert len(events) >= 4


async def test_in_production_a_socket_without_a_key_is_refused(production: Production) -> None:
    socket = await Socket.open(production.ws, {})
    try:
        received, code, _ = await socket.until_closed(10)
    finally:
        await socket.close()
    assert (code, received) == (4403, [])


# -- frame size --------------------------------------------------------------------------------


async def test_in_production_uvicorn_refuses_a_frame_over_the_limit_and_serves_one_at_it(
        production: Production, runtime: Any) -> None:
    _, key = await issue(runtime, "viewer")
    socket = await Socket.acknowledged(production.ws, bearer(key))
    try:
        # Given: a frame of exactly MMOS_MAX_REQUEST_BYTES is served
        await socket.connection.send(frame_of(LIMIT, "at"))
        await socket.first_event("at")
        # When: one byte more
        await socket.connection.send(frame_of(LIMIT + 1, "over"))
        received, code, reason = await socket.until_closed(10)
    finally:
        await socket.close()
    # Then: closed with 1009, nothing sent for it; the empty reason is uvicorn's (ws_max_size
    # given by `mmos serve`): our own bound would have said "frame larger than …"
    assert code == 1009, (code, reason, received)
    assert reason == ""
    assert [message for message in received if message.get("id") == "over"] == []


@pytest.mark.parametrize("char", ["x", "é"], ids=["ascii", "two-byte-utf8"])
async def test_our_bound_closes_a_frame_over_the_limit_unprocessed(local: str, char: str) -> None:
    socket = await Socket.acknowledged(local, {})
    try:
        # Given: a frame of exactly the limit is served (uvicorn's own limit is 16 MiB here)
        await socket.connection.send(frame_of(LOCAL_LIMIT, "at", char))
        await socket.first_event("at")
        # When: one byte more (for é: fewer characters than the limit, more bytes)
        oversized = frame_of(LOCAL_LIMIT + 1, "over", char)
        assert len(oversized) <= LOCAL_LIMIT or char == "x"
        await socket.connection.send(oversized)
        received, code, reason = await socket.until_closed(10)
    finally:
        await socket.close()
    # Then
    assert (code, reason) == (1009, f"frame larger than {LOCAL_LIMIT} bytes"), received
    assert [message for message in received if message.get("id") == "over"] == []


async def test_our_bound_applies_to_binary_frames_too(local: str) -> None:
    socket = await Socket.acknowledged(local, {})
    try:
        await socket.connection.send(b"{" + b" " * LOCAL_LIMIT + b"}")
        received, code, _ = await socket.until_closed(10)
    finally:
        await socket.close()
    assert (code, received) == (1009, [])  # not 4400 (binary): refused before it is read


async def test_a_frame_our_json_checks_refuse_closes_the_socket_cleanly(local: str) -> None:
    # Given / When: a NUL character, which PostgreSQL cannot store (HTTP answers 400)
    socket = await Socket.acknowledged(local, {})
    try:
        await socket.send(subscribe_message("nul", pad="a\u0000b"))
        received, code, reason = await socket.until_closed(10)
    finally:
        await socket.close()
    # Then: a protocol close (4400) naming the problem, not a dropped connection
    assert (code, received) == (4400, []), reason
    assert "NUL" in reason


# -- keyless local mode ------------------------------------------------------------------------


async def test_keyless_local_mode_keeps_working_across_operations_and_rechecks(
        local: str) -> None:
    # Given: no key at all (the local developer)
    socket = await Socket.acknowledged(local, {})
    try:
        # When: operations spaced beyond the re-check interval, and a running subscription
        for op_id in ("a", "b", "c"):
            await socket.subscribe(op_id)
            await socket.first_event(op_id)
            await socket.complete(op_id)
            await asyncio.sleep(LOCAL_RECHECK * 2)
        await socket.subscribe("live", interval=0.5)
        events = [await socket.first_event("live") for _ in range(3)]  # > 4 re-check periods
        await socket.complete("live")
        # Then: all served, the socket still open
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}
    finally:
        await socket.close()
    assert len(events) == 3


async def test_in_local_mode_a_key_that_was_given_is_still_rechecked(
        local: str, runtime: Any) -> None:
    # Given: keys are optional here, but this socket presented one
    name, key = await issue(runtime, "operator")
    socket = await Socket.acknowledged(local, bearer(key))
    try:
        await socket.subscribe("1")
        await socket.first_event("1")
        await socket.complete("1")
        # When
        await revoke(runtime, name)
        await asyncio.sleep(LOCAL_RECHECK * 2)
        await socket.subscribe("2")
        received, code, _ = await socket.until_closed(10)
    finally:
        await socket.close()
    # Then: a revoked key never falls back to the keyless local developer
    assert code == 4403, (code, received)
    assert [message for message in received if message.get("id") == "2"] == []
