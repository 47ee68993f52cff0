"""Structured logs carrying the request, batch and job ids: JSON lines, or console lines for
people at a terminal."""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]

# Loggers that chatter at INFO about things an operator does not act on (Alembic announces its
# "Context impl PostgresqlImpl." and "Will assume transactional DDL." on every start).
QUIET_LOGGERS = ("uvicorn.access", "LiteLLM", "litellm", "httpx", "httpcore", "alembic")


def resolve_format(log_format: LogFormat | bool, stream: TextIO) -> Literal["json", "console"]:
    """`auto` is console when `stream` (where the lines go) is a terminal, JSON otherwise.

    A bool is the old `json` flag: True = json, False = console.
    """
    if isinstance(log_format, bool):
        return "json" if log_format else "console"
    if log_format == "auto":
        return "console" if _isatty(stream) else "json"
    if log_format not in ("json", "console"):
        raise ValueError(f"log format must be auto, json or console, not {log_format!r}")
    return log_format


def configure_logging(level: str = "INFO", log_format: LogFormat | bool = "auto",
                      stream: TextIO | None = None) -> Literal["json", "console"]:
    """Route stdlib and structlog records through one renderer with context variables.

    Returns the format chosen. Context variables (`request_id`, batch and job ids) are fields
    of every line in both formats. Lines go to `stream`, stderr by default.
    """
    stream = stream if stream is not None else sys.stderr
    chosen = resolve_format(log_format, stream)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[structlog.types.Processor]
    if chosen == "json":
        rendering = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        colors = _isatty(stream) and "NO_COLOR" not in os.environ
        rendering = [structlog.dev.ConsoleRenderer(
            colors=colors,
            # Tracebacks without local variables: they may hold keys and secrets.
            exception_formatter=(structlog.dev.RichTracebackFormatter(show_locals=False)
                                 if colors else structlog.dev.plain_traceback))]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return chosen


def _isatty(stream: TextIO) -> bool:
    try:  # a stream without isatty, or a closed or detached one, is no terminal
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
