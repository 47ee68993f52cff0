"""Log format choice (terminal or not, forced by setting), request ids, quiet Alembic."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from api.logging import QUIET_LOGGERS, LogFormat, configure_logging, resolve_format
from api.settings import Settings

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Closed(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers (pytest's too): put everything back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, saved in quiet.items():
            logging.getLogger(name).setLevel(saved)
        structlog.configure(**config)


@pytest.mark.parametrize(("setting", "stream", "expected"), [
    ("auto", Terminal(), "console"),
    ("auto", io.StringIO(), "json"),
    ("auto", Closed(), "json"),
    ("auto", object(), "json"),  # no isatty at all
    ("json", Terminal(), "json"),
    ("console", io.StringIO(), "console"),
    (True, Terminal(), "json"),  # the old `json` flag
    (False, io.StringIO(), "console"),
])
def test_the_format_follows_the_terminal_unless_forced(setting: Any, stream: Any,
                                                       expected: str) -> None:
    assert resolve_format(setting, stream) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, json or console"):
        resolve_format("xml", io.StringIO())  # type: ignore[arg-type]


def _emit(stream: io.StringIO, log_format: Any) -> str:
    chosen = configure_logging("INFO", log_format, stream=stream)
    with structlog.contextvars.bound_contextvars(request_id="req-42"):
        logging.getLogger("mmos.test").info("stdlib says %s", "hello")
        structlog.get_logger("mmos.test").info("structlog says hi", batch_id=7)
    assert chosen == resolve_format(log_format, stream)
    return stream.getvalue()


def test_not_a_terminal_gives_json_lines_with_the_request_id() -> None:
    output = _emit(io.StringIO(), "auto")
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["event"] for line in lines] == ["stdlib says hello", "structlog says hi"]
    assert all(line["request_id"] == "req-42" and line["level"] == "info" for line in lines)
    assert lines[1]["batch_id"] == 7 and lines[0]["logger"] == "mmos.test"


def test_a_terminal_gives_console_lines_with_the_request_id(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    output = _emit(Terminal(), "auto")
    lines = ANSI.sub("", output).splitlines()
    assert len(lines) == 2
    for line, event in zip(lines, ("stdlib says hello", "structlog says hi"), strict=True):
        assert not line.startswith("{")
        assert event in line and "request_id=req-42" in line and "[info" in line
    assert "batch_id=7" in lines[1]
    assert ANSI.search(output), "a terminal gets colours"


def test_console_can_be_forced_off_a_terminal_without_colours() -> None:
    output = _emit(io.StringIO(), "console")
    assert not ANSI.search(output)
    assert "request_id=req-42" in output and not output.lstrip().startswith("{")


def test_json_can_be_forced_on_a_terminal() -> None:
    output = _emit(Terminal(), "json")
    assert all(json.loads(line)["request_id"] == "req-42" for line in output.splitlines())


def test_exceptions_are_rendered_in_both_formats() -> None:
    formats: tuple[LogFormat, ...] = ("json", "console")
    for log_format in formats:
        stream = io.StringIO()
        configure_logging("INFO", log_format, stream=stream)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("mmos.test").exception("failed")
        assert "RuntimeError: boom" in stream.getvalue()


def test_alembic_info_chatter_is_not_emitted_but_its_warnings_are() -> None:
    from alembic.runtime.migration import MigrationContext

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    # When: what every `mmos serve` start does, a migration context (it logs at INFO)
    MigrationContext.configure(dialect_name="postgresql")
    logging.getLogger("alembic.runtime.migration").warning("a real alembic warning")
    logging.getLogger("mmos.test").info("our own info line")
    # Then
    output = stream.getvalue()
    assert "Context impl" not in output and "transactional DDL" not in output
    assert "setup plugin" not in output
    events = [json.loads(line)["event"] for line in output.splitlines()]
    assert events == ["a real alembic warning", "our own info line"]


def test_alembic_would_log_at_info_without_the_quieting() -> None:
    """The control for the test above: the lines exist, configure_logging hides them."""
    from alembic.runtime.migration import MigrationContext

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("alembic").setLevel(logging.NOTSET)
    MigrationContext.configure(dialect_name="postgresql")
    assert "Context impl PostgresqlImpl." in stream.getvalue()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "auto"),
    ({"MMOS_LOG_FORMAT": "console"}, "console"),
    ({"MMOS_LOG_FORMAT": "json"}, "json"),
    ({"MMOS_LOG_JSON": "true"}, "json"),  # the old setting, an alias
    ({"MMOS_LOG_JSON": "false"}, "console"),
    ({"MMOS_LOG_JSON": "false", "MMOS_LOG_FORMAT": "auto"}, "auto"),  # the new one wins
])
def test_the_log_format_setting(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                expected: str) -> None:
    for name in ("MMOS_LOG_FORMAT", "MMOS_LOG_JSON"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).log_format == expected  # type: ignore[call-arg]


def test_an_invalid_log_format_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMOS_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None)  # type: ignore[call-arg]
