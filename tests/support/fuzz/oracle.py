"""Sending a fuzzed operation and judging the answer: handled, clean, and nothing logged."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.fuzz.operations import Operation

MASKED = "Internal error; it has been logged."
# What an unmasked internal error looks like from outside (compared case-insensitively).
LEAKS = ("traceback", 'file "', "sqlalchemy", "asyncpg", "psycopg", "syntax error at or near")
# Refused by design before GraphQL runs (PostgreSQL cannot store them): answered in plain text.
REFUSED_BY_DESIGN = ("nul character", "lone utf-16 surrogate")
SHOWN_CHARS = 2000


class ErrorLog(logging.Handler):
    """Keeps every ERROR record (with its traceback) logged while a request is served.

    Only records of this thread count: the in-process app runs on the test's event loop, while
    worker threads of other tests' fixtures may log about their own jobs.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and not _stray_litellm_task(record):
            self.records.append(record)

    def clear(self) -> None:
        self.records.clear()

    def text(self) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(formatter.format(record) for record in self.records)


def _stray_litellm_task(record: logging.LogRecord) -> bool:
    """asyncio reporting, at garbage collection, LiteLLM's logging-worker task of another
    event loop: LiteLLM keeps one global worker and drops its task when it is used from a new
    loop (the test process runs the in-process workers' loop beside the test loop). It is
    about no request, so it is not a server error."""
    message = record.getMessage()
    return (record.name == "asyncio" and message.startswith("Task was destroyed but it is pending")
            and "LoggingWorker" in message)


@contextmanager
def capture_errors() -> Iterator[ErrorLog]:
    """Attach an ErrorLog to the root logger for the duration of the block."""
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass
class Exchange:
    """One operation, the server's answer and what the server logged meanwhile."""

    operation: Operation
    status: int
    text: str
    content_type: str
    logged: str = ""
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        body = self.text if len(self.text) <= SHOWN_CHARS else self.text[:SHOWN_CHARS] + "…"
        return ("\n".join(self.problems) + "\n\n" + self.operation.describe()
                + f"\n\nstatus {self.status} ({self.content_type}): {body}"
                + (f"\n\nserver log:\n{self.logged}" if self.logged else ""))


@dataclass
class FuzzClient:
    """Posts operations to the in-process app and judges each answer."""

    http: httpx.AsyncClient
    log: ErrorLog

    async def send(self, operation: Operation) -> Exchange:
        """Send one operation (GET for some queries, else POST JSON)."""
        self.log.clear()
        if operation.method == "GET":
            params = {"query": operation.document,
                      "variables": json.dumps(operation.variables, ensure_ascii=True)}
            response = await self.http.get("/graphql", params=params)
        else:
            response = await self.http.post("/graphql", content=operation.body(),
                                            headers={"content-type": "application/json"})
        exchange = Exchange(operation, response.status_code, response.text,
                            response.headers.get("content-type", ""), self.log.text())
        exchange.problems = judge(exchange)
        return exchange

    async def check(self, operation: Operation) -> Exchange:
        """Send and fail with the full story when the answer is not a handled one."""
        exchange = await self.send(operation)
        assert not exchange.problems, exchange.report()
        return exchange


def judge(exchange: Exchange) -> list[str]:
    """Everything wrong with an answer: 5xx, not JSON, masked or leaked internals, error logs."""
    problems = []
    if exchange.status >= 500:
        problems.append(f"server error {exchange.status}")
    lowered = exchange.text.lower()
    body = _json(exchange.text)
    if body is None and not (exchange.status == 400
                             and any(reason in lowered for reason in REFUSED_BY_DESIGN)):
        problems.append("the body is not JSON")
    if isinstance(body, dict) and exchange.status == 200 and not ({"data", "errors"} & set(body)):
        problems.append("a 200 answer with neither data nor errors")
    if MASKED.lower() in lowered:
        problems.append("an unexpected exception (masked as 'Internal error')")
    sent = exchange.operation.describe().lower()
    problems += [f"the answer leaks internals: {leak!r}" for leak in LEAKS
                 if leak in lowered and leak not in sent]
    if exchange.logged:
        problems.append("the server logged an error")
    return problems


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
