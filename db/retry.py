"""One retry policy for work that PostgreSQL rolled back as a deadlock or a serialisation
failure: the whole unit of work runs again from the start (tenacity)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from db.engine import sqlstate_of

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
ATTEMPTS = 5


def is_retryable(exc: BaseException) -> bool:
    """True for a deadlock or a serialisation failure: both roll back cleanly."""
    return isinstance(exc, sa.exc.DBAPIError) and sqlstate_of(exc) in RETRYABLE_SQLSTATES


async def retry_conflicts(work: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """Await `work()`, again (after a short random pause) while it fails retryably; the last
    failure is raised as it is."""
    retrying = AsyncRetrying(retry=retry_if_exception(is_retryable),
                             stop=stop_after_attempt(attempts),
                             wait=wait_random_exponential(multiplier=0.05, max=1.0),
                             reraise=True)
    async for attempt in retrying:
        with attempt:
            return await work()
    raise AssertionError("unreachable")  # tenacity re-raises the last failure
