"""Per-key request rate limit: a GCRA, shared by every API replica through Redis.

Each API key (its id and prefix) has one "theoretical arrival time" (TAT): a request is
allowed when `TAT - burst × interval <= now`, and then moves the TAT one interval on
(interval = 60 s / MMOS_RATE_LIMIT_PER_MINUTE). A key idle for a while may send
MMOS_RATE_LIMIT_BURST requests at once, then one per interval; a refused request changes
nothing and learns how long to wait (`Retry-After`, whole seconds, at least 1).

With REDIS_URL the TAT lives in Redis (`mmos:ratelimit:<key id>:<prefix>`, expiring once
the key is idle again) and one Lua script reads and moves it atomically on Redis's clock:
replicas share one budget per key and their own clocks do not matter. Without Redis, or
while Redis does not answer (the failure is logged as a warning, Redis is tried again after
`REDIS_RETRY_SECONDS`), each process limits on its own: the limit then holds per replica,
so N replicas allow up to N times the budget. That is deliberate (fail open, degraded):
a Redis outage must not take the API down with it.

Only requests with an API key are limited; keyless local developer requests are not. The
hook is `api.auth.authenticate(..., limiter=...)` (GraphQL over HTTP and the REST routes);
operations over a WebSocket are counted one by one by `api.schema.WebSocketRateLimit`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("mmos.ratelimit")

REDIS_PREFIX = "mmos:ratelimit:"
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0
LOCAL_MAX_KEYS = 100_000

# KEYS[1]: the key's TAT (microseconds on Redis's clock); ARGV: interval (µs), burst.
# Returns {1, 0} when allowed, {0, µs to wait} when not. Numbers are written with %.0f:
# Lua's own number-to-string keeps 14 digits, fewer than a microsecond timestamp has.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, string.format('%.0f', allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a request would be allowed (0 when allowed)


class RateLimited(Exception):
    """A key sent more than its budget; `retry_after` is whole seconds (at least 1)."""

    def __init__(self, retry_after: float, per_minute: int) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.per_minute = per_minute
        super().__init__(f"rate limit exceeded: at most {per_minute} requests per minute "
                         f"per API key; retry in {self.retry_after} s")


class RateLimiter(Protocol):
    per_minute: int

    async def hit(self, key: str) -> Decision: ...

    async def aclose(self) -> None: ...


class _Gcra:
    def __init__(self, per_minute: int, burst: int) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("a rate limit needs a positive rate and burst")
        self.per_minute = per_minute
        self.burst = burst
        self.interval = 60.0 / per_minute

    async def hit(self, key: str) -> Decision:
        raise NotImplementedError

    async def enforce(self, key: str) -> None:
        """Count one request of `key`; raises RateLimited when it is over the budget."""
        decision = await self.hit(key)
        if not decision.allowed:
            raise RateLimited(decision.retry_after, self.per_minute)


class LocalRateLimiter(_Gcra):
    """The GCRA in this process (one event loop: no await between reading and writing)."""

    def __init__(self, per_minute: int, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(per_minute, burst)
        self.clock = clock
        self._tat: dict[str, float] = {}

    def hit_now(self, key: str) -> Decision:
        now = self.clock()
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + self.interval
        allow_at = new_tat - self.burst * self.interval
        if now < allow_at:
            return Decision(False, allow_at - now)
        self._tat[key] = new_tat
        if len(self._tat) > LOCAL_MAX_KEYS:  # forget keys that are idle again
            self._tat = {k: t for k, t in self._tat.items() if t > now}
        return Decision(True)

    async def hit(self, key: str) -> Decision:
        return self.hit_now(key)

    async def aclose(self) -> None:
        return None


class RedisRateLimiter(_Gcra):
    """The GCRA in Redis, shared by every process using the same Redis; `fallback` limits
    in this process while Redis cannot be reached."""

    def __init__(self, url: str, per_minute: int, burst: int, *,
                 fallback: LocalRateLimiter | None = None) -> None:
        super().__init__(per_minute, burst)
        self.url = url
        self.fallback = fallback or LocalRateLimiter(per_minute, burst)
        self._client: Any = None
        self._script: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0

    def _redis(self) -> Any:
        # Created on first use, on the running loop (redis.asyncio clients are loop-bound).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS)
            self._script = self._client.register_script(_GCRA)
            self._loop = loop
        return self._client

    async def hit(self, key: str) -> Decision:
        if time.monotonic() < self._down_until:
            return self.fallback.hit_now(key)
        from redis.exceptions import RedisError

        try:
            self._redis()
            allowed, wait_us = await self._script(
                keys=[REDIS_PREFIX + key],
                args=[round(self.interval * 1_000_000), self.burst])
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            log.warning("rate limit: Redis is unavailable (%s); limiting per process for "
                        "the next %.0f s", exc.__class__.__name__, REDIS_RETRY_SECONDS)
            return self.fallback.hit_now(key)
        return Decision(bool(int(allowed)), int(wait_us) / 1_000_000)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def build_rate_limiter(settings: Any) -> LocalRateLimiter | RedisRateLimiter | None:
    """The limiter of these settings: None when MMOS_RATE_LIMIT_PER_MINUTE is 0."""
    per_minute, burst = settings.rate_limit_per_minute, settings.rate_limit_burst
    if per_minute <= 0:
        return None
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, per_minute, burst)
    return LocalRateLimiter(per_minute, burst)


def limiter_of(connection: Any) -> LocalRateLimiter | RedisRateLimiter | None:
    """The rate limiter of the app serving this request or WebSocket (`create_app` sets it)."""
    app = (getattr(connection, "scope", None) or {}).get("app")
    return getattr(getattr(app, "state", None), "rate_limiter", None)


def retry_after_headers(exc: RateLimited) -> dict[str, str]:
    return {"Retry-After": str(exc.retry_after)}


async def rate_limited_response(request: Request, exc: Exception) -> Response:
    """The 429 of /graphql (a Starlette exception handler): a GraphQL error document."""
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        {"errors": [{"message": str(exc),
                     "extensions": {"code": "RATE_LIMITED", "retryAfter": exc.retry_after}}]},
        status_code=429, headers=retry_after_headers(exc))
