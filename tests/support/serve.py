"""Helpers for tests that start `mmos serve` as a child process."""

from __future__ import annotations

import socket

# Anything that would point the child at another database or broker is removed.
INHERITED_SETTINGS = ("DATABASE_URL", "MMOS_DATABASE_URL", "REDIS_URL", "MMOS_REDIS_URL",
                      "MMOS_TEST_DATABASE_URL", "MMOS_PORT", "MMOS_HOST")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
