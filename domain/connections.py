"""How many PostgreSQL connections the API and the workers keep open, against the server's
limit (pure): a fleet whose pools alone pass `max_connections` fails with "too many
clients", so a worker says so when it starts."""

from __future__ import annotations

from dataclasses import dataclass

# Superuser slots PostgreSQL keeps back by default (superuser_reserved_connections).
RESERVED = 3
# The API server's pool when MMOS_DB_POOL_SIZE is unset (api/container.py build_container).
API_POOL_SIZE = 10


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    """The pools of the live processes, against the server's limit. Each pool may open as
    many connections again under load (its overflow)."""

    max_connections: int
    workers: int
    worker_pool: int
    api_pool: int

    @property
    def steady(self) -> int:
        """Connections the pools keep open."""
        return self.workers * self.worker_pool + self.api_pool

    @property
    def peak(self) -> int:
        """Connections they may open under load, overflow included."""
        return 2 * self.steady

    @property
    def available(self) -> int:
        return max(0, self.max_connections - RESERVED)

    def warning(self) -> str | None:
        """A sentence for the operator when the pools alone pass the limit, else None."""
        if self.steady <= self.available:
            return None
        return (f"PostgreSQL allows {self.max_connections} connections ({self.available} "
                f"without its reserved ones) but {self.workers} worker(s) keep {self.worker_pool} "
                f"each and the API {self.api_pool}: {self.steady}, and up to {self.peak} under "
                "load. Raise max_connections, lower MMOS_DB_POOL_SIZE or MMOS_LLM_CONCURRENCY, "
                "or run fewer workers")

    def note(self) -> str:
        """The figures, for the worker's start-up log."""
        return (f"{self.workers} worker(s) keep {self.worker_pool} PostgreSQL connections each "
                f"and the API {self.api_pool}: {self.steady} (up to {self.peak} under load) of "
                f"{self.available} the server allows")
