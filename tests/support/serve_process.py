"""`mmos serve` as a child process pointed at an existing database (the session's test DB).

The start/health/stop logic is copied from tests/integration/test_serve_subprocess.py (test
modules never import each other); unlike that test, the child uses the test session's
`database_url` instead of an embedded PostgreSQL of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.serve import INHERITED_SETTINGS, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTHY_WITHIN_SECONDS = 90.0
STOP_WITHIN_SECONDS = 20.0


class ServeFailed(RuntimeError):
    """The child died or never became healthy; the message carries its log tail."""


def serve_env(database_url: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The test's environment pointed at `database_url`, without Redis (jobs in process)."""
    env = {key: value for key, value in os.environ.items() if key not in INHERITED_SETTINGS}
    env.update(DATABASE_URL=database_url, MMOS_DATA_DIR=str(data_dir), MMOS_ENV="development",
               MMOS_LOG_FORMAT="json", LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    env.update(overrides)
    return env


class Served:
    """A running `mmos serve` child and its base URL."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, logs: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.graphql_url = f"{self.url}/graphql"
        self.logs = logs

    def log_tail(self, chars: int = 4000) -> str:
        return self.logs.read_text(errors="replace")[-chars:]

    def wait_healthy(self, within: float = HEALTHY_WITHIN_SECONDS) -> float:
        """Poll /healthz; returns the seconds it took, raises ServeFailed if the child died."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            if self.process.poll() is not None:
                raise ServeFailed(f"mmos serve exited with {self.process.returncode}:\n"
                                  f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise ServeFailed(f"not healthy within {within}s:\n{self.log_tail()}")

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


@contextmanager
def serving(env: Mapping[str, str], workdir: Path) -> Iterator[Served]:
    """Start `mmos serve` on a free port with `env`; always stop it (and only it) afterwards.

    cwd is `workdir`, a scratch directory, so no stray `.env` of a developer reaches the child.
    """
    port = free_port()
    logs = workdir / f"serve-{port}.log"
    with logs.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=dict(env), cwd=workdir, stdout=sink, stderr=subprocess.STDOUT,
        )
        served = Served(process, port, logs)
        try:
            yield served
        finally:
            served.stop()
