"""`mmos serve` as a process: embedded PostgreSQL, health, GraphQL, data kept across restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import INHERITED_SETTINGS, free_port

pytestmark = pytest.mark.slow

HEALTHY_WITHIN_SECONDS = 90.0  # a cold start includes initdb and the migrations
STOP_WITHIN_SECONDS = 20.0

CREATE = """
mutation Create($input: CreateSourceInput!) {
  createSource(input: $input) {
    __typename
    ... on CreateSourcePayload { source { id sourceCode } }
  }
}
"""
LIST = "{ sources { totalCount edges { node { id sourceCode title } } } }"


def child_env(data_dir: Path) -> dict[str, str]:
    """The test's environment without database settings, pointed at a private data dir."""
    env = {key: value for key, value in os.environ.items() if key not in INHERITED_SETTINGS}
    env.update(MMOS_DATA_DIR=str(data_dir), MMOS_ENV="development", MMOS_LOG_JSON="true",
               PYTHONUNBUFFERED="1")
    return env


class Served:
    """A running `mmos serve` child and its base URL."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, logs: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.logs = logs
        self.seconds_to_healthy = 0.0

    def log_tail(self) -> str:
        return self.logs.read_text(errors="replace")[-4000:]

    def wait_healthy(self) -> float:
        """Poll /healthz; returns the seconds it took, fails early if the child died."""
        started = time.monotonic()
        while time.monotonic() - started < HEALTHY_WITHIN_SECONDS:
            if self.process.poll() is not None:
                pytest.fail(f"mmos serve exited with {self.process.returncode}:\n"
                            f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    self.seconds_to_healthy = time.monotonic() - started
                    return self.seconds_to_healthy
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"not healthy within {HEALTHY_WITHIN_SECONDS}s:\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/graphql",
                              json={"query": query, "variables": variables or {}}, timeout=30)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if the graceful shutdown hangs. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_WITHIN_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def embedded_postgres_pid(data_dir: Path) -> int | None:
    """The pid of the PostgreSQL serving `data_dir`, when one is running."""
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"postgres" in cmdline and str(data_dir.resolve()).encode() in cmdline else None


def stop_embedded_postgres(data_dir: Path) -> None:
    """Fast-shutdown the PostgreSQL our child started, if it outlived the child."""
    pid = embedded_postgres_pid(data_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    deadline = time.monotonic() + 15
    while embedded_postgres_pid(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


@contextmanager
def serving(data_dir: Path, workdir: Path) -> Iterator[Served]:
    """Start `mmos serve` on a free port; always stop it (and only it) afterwards."""
    port = free_port()
    logs = workdir / f"serve-{port}.log"
    with logs.open("wb") as sink:
        # cwd is a scratch dir so no stray `.env` of a developer reaches the child.
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=child_env(data_dir), cwd=workdir, stdout=sink, stderr=subprocess.STDOUT,
        )
        served = Served(process, port, logs)
        try:
            yield served
        finally:
            served.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "data"
    try:
        yield directory
    finally:
        stop_embedded_postgres(directory)


def test_served_app_is_healthy_ready_and_keeps_sources_across_restarts(
    data_dir: Path, tmp_path: Path, record_property: Any
) -> None:
    # Given: a first start on an empty data dir
    with serving(data_dir, tmp_path) as first:
        cold = first.wait_healthy()
        record_property("seconds_to_healthy_cold", round(cold, 2))
        print(f"\nmmos serve healthy after {cold:.2f}s (cold: initdb + migrations)")
        ready = httpx.get(f"{first.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        # When
        created = first.graphql(CREATE, {"input": {
            "sourceCode": "PERSIST_001", "title": "Kept across restarts",
            "sourceType": "INTERVIEW", "content": "I moved to Lisbon in 2019."}})
        assert created["createSource"]["__typename"] == "CreateSourcePayload"
        source_id = created["createSource"]["source"]["id"]
        listed = first.graphql(LIST)["sources"]
        assert listed["totalCount"] == 1
        assert listed["edges"][0]["node"]["id"] == source_id
        code = first.stop()
        assert code == 0, f"mmos serve exited with {code} after SIGTERM:\n{first.log_tail()}"
    # Then: a second start on the same data dir sees the source
    with serving(data_dir, tmp_path) as second:
        warm = second.wait_healthy()
        record_property("seconds_to_healthy_warm", round(warm, 2))
        print(f"mmos serve healthy after {warm:.2f}s (warm restart)")
        listed = second.graphql(LIST)["sources"]
        assert listed["totalCount"] == 1
        assert listed["edges"][0]["node"] == {"id": source_id, "sourceCode": "PERSIST_001",
                                              "title": "Kept across restarts"}


def test_served_graphiql_page_is_html_with_no_cdn_assets(data_dir: Path, tmp_path: Path) -> None:
    # Given
    with serving(data_dir, tmp_path) as server:
        server.wait_healthy()
        # When
        page = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    # Then
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()
    assert "unpkg" not in page.text.lower()
    assert "cdn" not in page.text.lower()


def test_sigterm_stops_the_embedded_postgres_with_the_server(
    data_dir: Path, tmp_path: Path
) -> None:
    # Given
    with serving(data_dir, tmp_path) as server:
        server.wait_healthy()
        assert embedded_postgres_pid(data_dir) is not None
        # When
        code = server.stop()
    # Then: a normal exit, so the embedded PostgreSQL is stopped by its exit hook
    assert code == 0, f"mmos serve exited with {code} after SIGTERM:\n{server.log_tail()}"
    deadline = time.monotonic() + 5
    while embedded_postgres_pid(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert embedded_postgres_pid(data_dir) is None, "embedded PostgreSQL outlived mmos serve"
