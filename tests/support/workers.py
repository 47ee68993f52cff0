"""`mmos worker` processes for cross-process tests, and a wake-up sender for their Redis broker.

Each worker is a real `python -m api.cli worker` child with its own environment and log file.
The test process never registers a Dramatiq broker of its own (the in-process fixtures may have
set the stub broker already): `RedisWakeups` sends the same messages the dispatcher sends, through
a private `RedisBroker` instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379"
READY_WITHIN_SECONDS = 60.0
STOP_WITHIN_SECONDS = 20.0

# Databases a test session may hold (0 keeps the claims; 7 and 8 belong to the event-bus tests).
_CLAIMABLE_DATABASES = (5, 9, 10, 11, 12, 13, 14, 15)
_CLAIM_SECONDS = 1800
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"

# Anything inherited that could point a child at another database or broker is dropped.
_INHERITED_SETTINGS = ("DATABASE_URL", "MMOS_DATABASE_URL", "REDIS_URL", "MMOS_REDIS_URL",
                       "MMOS_TEST_DATABASE_URL")

# Leases, sweeps and threads small enough for recovery to happen within a test.
FAST_SETTINGS = {
    "MMOS_JOB_LEASE_SECONDS": "6",
    "MMOS_SWEEP_INTERVAL_SECONDS": "1",
    "MMOS_WORKER_THREADS": "2",
    "MMOS_LOG_JSON": "true",
}


@contextlib.contextmanager
def claimed_redis_database(server_url: str = DEFAULT_TEST_REDIS) -> Iterator[str]:
    """A Redis database no other test session uses while this one holds it; yields its URL.

    Worker processes of two sessions on one Redis would otherwise take each other's wake-ups
    (and a flush by one would drop the other's messages). `MMOS_TEST_REDIS_URL` overrides.
    """
    import redis

    explicit = os.environ.get("MMOS_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    server = server_url.rstrip("/")
    claims = redis.Redis.from_url(f"{server}/0")
    token = uuid.uuid4().hex
    try:
        for number in _CLAIMABLE_DATABASES:
            key = f"mmos-test:redis-db:{number}"
            if claims.set(key, token, nx=True, ex=_CLAIM_SECONDS):
                try:
                    yield f"{server}/{number}"
                finally:
                    claims.eval(_RELEASE, 1, key, token)
                return
        raise RuntimeError(f"every test database of {server} is held by another session")
    finally:
        claims.close()


def redis_reachable(url: str) -> bool:
    """True when Redis answers PING at `url`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def flush_redis(url: str) -> None:
    """Empty the test's Redis database: no queued or unacknowledged message survives a test."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def worker_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """The test's environment pointed at one database and one Redis, with fast settings."""
    env = {key: value for key, value in os.environ.items() if key not in _INHERITED_SETTINGS}
    env.update(FAST_SETTINGS)
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, MMOS_ENV="test",
               LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


@dataclass
class WorkerProcess:
    """One running `mmos worker` child and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """Log lines as JSON objects; a line that is not JSON becomes {"event": line}."""
        records = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            records.append(record if isinstance(record, dict) else {"event": line})
        return records

    def claimed_job_ids(self) -> list[int]:
        """Ids of the jobs this worker claimed, in order (from its "job N claimed" lines)."""
        claimed = []
        for record in self.log_records():
            words = str(record.get("event", "")).split()
            if len(words) >= 3 and words[0] == "job" and words[2] == "claimed":
                with contextlib.suppress(ValueError):
                    claimed.append(int(words[1]))
        return claimed

    def wait_ready(self, timeout: float = READY_WITHIN_SECONDS) -> float:
        """Block until the worker consumes from Redis; returns seconds since it was spawned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("consuming with" in str(r.get("event", "")) for r in self.log_records()):
                return time.monotonic() - self.spawned_at
            if not self.alive:
                raise AssertionError(f"worker {self.name} exited with "
                                     f"{self.process.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"worker {self.name} not ready within {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work, with no chance to release anything."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_WITHIN_SECONDS)

    def terminate(self) -> None:
        """SIGTERM, without waiting: the worker finishes its jobs, then exits."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_WITHIN_SECONDS) -> int:
        """SIGTERM and wait for a clean exit; SIGKILL when it takes longer than `timeout`."""
        if self.alive:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_WITHIN_SECONDS)
        return int(self.process.returncode)

    def tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]


class WorkerFleet:
    """Spawns workers with a shared environment; `close` stops every one it started.

    Parameters:
      env: the environment of every worker (see `worker_env`).
      log_dir: where each worker's combined stdout and stderr are written.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def spawn(self, name: str | None = None, **env_overrides: str) -> WorkerProcess:
        """Start one `python -m api.cli worker` child (not waiting for it to be ready)."""
        name = name or f"worker-{len(self.workers) + 1}"
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker"], cwd=REPO_ROOT,
                env={**self.env, **env_overrides}, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        worker = WorkerProcess(name, process, log_path)
        self.workers.append(worker)
        return worker

    def start(self, count: int, **env_overrides: str) -> list[WorkerProcess]:
        """Spawn `count` workers at once, then wait until each one consumes."""
        started = [self.spawn(**env_overrides) for _ in range(count)]
        for worker in started:
            worker.wait_ready()
        return started

    def claims(self) -> dict[str, list[int]]:
        """Job ids claimed by each worker, by worker name."""
        return {worker.name: worker.claimed_job_ids() for worker in self.workers}

    def logs(self, chars: int = 3000) -> str:
        """The end of every worker's log, for assertion messages."""
        return "\n".join(f"--- {w.name} (pid {w.pid}, exit {w.process.returncode})\n"
                         f"{w.tail(chars)}" for w in self.workers)

    def close(self) -> None:
        """Stop every worker this fleet started that is still running."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop()


class RedisWakeups:
    """Sends the dispatcher's wake-up messages (`process_job(job_id)` on the job queue) through
    a private Redis broker, after marking the jobs sent like `workers.dispatch.Dispatcher`.

    Parameters:
      runtime: the database runtime whose transaction marks jobs as sent.
      redis_url: the Redis the workers consume from.
    """

    def __init__(self, runtime: Any, redis_url: str) -> None:
        from dramatiq.brokers.redis import RedisBroker

        from workers.broker import QUEUE

        self.runtime = runtime
        self.queue = QUEUE
        # No middleware: a plain message, exactly what the actor's `send` puts on the queue.
        self.broker = RedisBroker(url=redis_url, namespace="mmos", middleware=[])
        self.sent: list[int] = []

    async def send(self, job_ids: Sequence[int], actor: str = "process_job",
                   delay_ms: int = 0) -> None:
        """Wake workers for these committed jobs (a delayed wake-up is sent at once: the
        claim still waits for the job's available_at)."""
        from dramatiq import Message

        from db.jobs import JobQueue

        ids = list(job_ids)
        if not ids:
            return
        async with self.runtime.transaction() as session:
            await JobQueue(session).mark_sent(ids)

        def enqueue() -> None:
            for job_id in ids:
                self.broker.enqueue(Message(queue_name=self.queue, actor_name="process_job",
                                            args=(job_id,), kwargs={}, options={}))

        await asyncio.to_thread(enqueue)
        self.sent.extend(ids)

    def close(self) -> None:
        self.broker.close()


class NoWakeups:
    """A dispatcher that sends nothing, as if every message were lost."""

    async def send(self, job_ids: Sequence[int], actor: str = "process_job",
                   delay_ms: int = 0) -> None:
        return None
