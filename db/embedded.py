"""The embedded default: a private PostgreSQL (pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DATABASE_NAME = "mmos"


class EmbeddedUnavailable(RuntimeError):
    """pgserver cannot run here; the user must point DATABASE_URL at a PostgreSQL server."""


def _server(data_dir: Path) -> Any:
    try:
        import pgserver
    except ImportError as exc:  # not installed (the production image) or no wheel here
        raise EmbeddedUnavailable(
            f"The embedded PostgreSQL (pgserver) is not installed for Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: set DATABASE_URL="
            f"postgresql://user@host/db to use a PostgreSQL server, or install "
            f"requirements-embedded.lock (scripts/install does)."
        ) from exc
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(pgdata, cleanup_mode="stop")


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the private server and return an asyncpg URL over its unix socket."""
    server = _server(data_dir)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return _asyncpg_url(server.get_uri())


def _asyncpg_url(uri: str) -> str:
    parsed = urlparse(uri)
    socket_dir = parse_qs(parsed.query).get("host", [""])[0]
    user = parsed.username or "postgres"
    return f"postgresql+asyncpg://{user}@/{DATABASE_NAME}?host={socket_dir}"
