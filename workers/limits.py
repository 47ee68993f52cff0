"""Per-model provider limits: one limiter per model, shared by every worker process.

A model's `rpm`, `tpm` (input plus output tokens) and `maxConcurrency` (models table) hold
per provider key, across every worker. Before each interactive call the pipeline *admits*
it here (waiting, holding no database transaction, until the limits allow it), and settles
the admission with the call's actual usage afterwards:

- **Requests**: a GCRA (as `api/ratelimit.py` does for API keys): one "theoretical arrival
  time" per model, an interval of 60 s / rpm, a burst of `BURST_SECONDS` of the rate.
- **Tokens**: a token bucket of `BURST_SECONDS` of the tpm (at least one call's
  reservation), refilled continuously at tpm / 60 per second. A call reserves its
  *worst case* before it is sent: the prompt tokens as the pipeline counts them plus the
  request's `max_tokens` (what the provider may at most bill). After the answer the
  reservation is corrected to the usage reported (input + output): the unused part is
  given back, a larger usage takes more (the bucket may go into debt, and later calls
  wait it out). While a call is in flight its reservation is *held*: the bucket fills only
  up to its capacity less the tokens held (the provider's own bucket, which counted the
  actual usage, stops filling at its capacity; without this the part given back later would
  bank refill the provider wasted, and the next calls would meet 429s). Reserving the worst
  case means the limit is never passed even when every
  call in flight writes its maximum; the price is that tokens of calls in flight are held
  for the call's duration, so a call needs `(prompt + max_tokens)` free to start. A killed
  worker's reservation is simply spent: the bucket refills on its own.
- **Concurrency**: a lease-based semaphore (a sorted set of lease ids scored by expiry):
  a lease lasts the call's timeout plus `LEASE_MARGIN_S` (a call cannot last longer), is
  removed when the call ends, and expires on its own when a worker is killed mid-call.
- **Slowed until**: a 429 (its `Retry-After`, else the `x-ratelimit-reset-*` of the
  exhausted limit) or a 200 whose `x-ratelimit-remaining-*` says a call like this one would
  not fit now sets a shared "not before" time for the model: every worker waits for it,
  not only the caller.

With `REDIS_URL` the state lives in Redis (`mmos:limits:{model}:*`) and each step is one
Lua script on Redis's clock (atomic, every worker sees the same bucket). Without Redis (the
embedded mode, every worker thread in this process) the same math runs in process under a
lock (`LocalLimits`, with an injectable clock for tests). While Redis does not answer, a
process limits on its own (logged), like the API key limiter: fail open, degraded.

`queueStatus` reads `status()`: requests and tokens admitted in the last minute (corrected
by the actual usage), the limits, leases in use and the "slowed until" time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.llm import ModelSpec, RateLimitInfo

log = logging.getLogger("mmos.limits")

BURST_SECONDS = 10.0  # a bucket holds this many seconds of its rate
LEASE_MARGIN_S = 30.0  # a concurrency lease outlives the call's timeout by this much
MAX_SLOW_S = 120.0  # a provider's "wait" is believed up to this long
MAX_SLEEP_S = 2.0  # a waiting call looks again at least this often
CONCURRENCY_POLL_S = 0.05  # a call waiting for a free lease looks again this often
WINDOW_S = 60  # the "last minute" of queueStatus
REDIS_PREFIX = "mmos:limits:"
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    @classmethod
    def of(cls, spec: ModelSpec) -> Limits:
        return cls(spec.rpm, spec.tpm, spec.max_concurrency)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.max_concurrency))

    def capacity(self) -> float:
        """The token bucket's size (tokens)."""
        return max((self.tpm or 0) * BURST_SECONDS / 60.0, 1.0)

    def burst(self) -> int:
        """Requests the GCRA lets through at once."""
        return max(1, math.floor((self.rpm or 0) * BURST_SECONDS / 60.0))


@dataclass(frozen=True, slots=True)
class Permit:
    """One admitted call: the tokens it reserved, the second it was admitted (for the
    last-minute figures) and its concurrency lease, if any."""

    model: str
    limits: Limits
    reserved: int
    second: int
    lease: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    wait_s: float = 0.0
    reserved: int = 0
    second: int = 0


@dataclass(frozen=True, slots=True)
class ModelRate:
    """A limited model's state, as `queueStatus` shows it."""

    model: str
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None
    requests_last_minute: int
    tokens_last_minute: int
    tokens_available: float | None  # the bucket's fill now (None without tpm)
    in_flight: int
    slowed_for_s: float  # 0 when not slowed


# ---------------------------------------------------------------------------------------------
# Provider headers.

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def duration_s(value: str | None) -> float | None:
    """Seconds of an `x-ratelimit-reset-*` value: OpenAI's `1m30.5s`, `20ms`, `6s`, or a
    plain number of seconds."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key in (name, f"llm_provider-{name}"):
        if key in headers and headers[key] is not None:
            return str(headers[key])
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def rate_limit_info(headers: Any, retry_after_s: float | None = None) -> RateLimitInfo | None:
    """The `x-ratelimit-*` headers of a provider answer (as LiteLLM keeps them: plain or
    prefixed `llm_provider-`), None when it sent none."""
    items = getattr(headers, "items", None)
    if items is None:
        return None if retry_after_s is None else RateLimitInfo(retry_after_s=retry_after_s)
    lowered = {str(k).lower(): v for k, v in items()}
    info = RateLimitInfo(
        limit_requests=_int(_header(lowered, "x-ratelimit-limit-requests")),
        remaining_requests=_int(_header(lowered, "x-ratelimit-remaining-requests")),
        reset_requests_s=duration_s(_header(lowered, "x-ratelimit-reset-requests")),
        limit_tokens=_int(_header(lowered, "x-ratelimit-limit-tokens")),
        remaining_tokens=_int(_header(lowered, "x-ratelimit-remaining-tokens")),
        reset_tokens_s=duration_s(_header(lowered, "x-ratelimit-reset-tokens")),
        retry_after_s=retry_after_s)
    if info == RateLimitInfo():
        return None
    return info


def slow_for(info: RateLimitInfo | None, *, refused: bool, used_tokens: int = 0,
             elapsed_s: float = 0.0) -> float:
    """How long every worker should hold back this model's calls, from what the provider
    said: a 429 waits its Retry-After (else the reset of the exhausted limit, else 1 s); a
    200 whose remaining requests are 0, or whose remaining tokens would not fit a call like
    this one (`used_tokens`), waits until they would (less the time the answer took: the
    provider counted at admission)."""
    if refused:
        if info is not None and info.retry_after_s is not None:
            return min(info.retry_after_s, MAX_SLOW_S)
        waits = [] if info is None else [
            w for remaining, w in ((info.remaining_requests, info.reset_requests_s),
                                   (info.remaining_tokens, info.reset_tokens_s))
            if remaining is not None and remaining <= 0 and w is not None]
        return min(max(waits, default=1.0), MAX_SLOW_S)
    if info is None:
        return 0.0
    wait = 0.0
    if info.remaining_requests is not None and info.remaining_requests <= 0:
        if info.limit_requests:
            wait = max(wait, 60.0 / info.limit_requests)
        elif info.reset_requests_s is not None:
            wait = max(wait, info.reset_requests_s)
    if info.remaining_tokens is not None and info.remaining_tokens < used_tokens:
        if info.limit_tokens:
            wait = max(wait, (used_tokens - info.remaining_tokens) * 60.0 / info.limit_tokens)
        elif info.reset_tokens_s is not None:
            wait = max(wait, info.reset_tokens_s)
    return min(max(0.0, wait - elapsed_s), MAX_SLOW_S)


# ---------------------------------------------------------------------------------------------
# In process.


@dataclass
class _State:
    tat: float = 0.0  # GCRA theoretical arrival time
    level: float | None = None  # token bucket fill (None: full, untouched)
    level_at: float = 0.0
    slow_until: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry
    held: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (tokens, expiry)
    usage: dict[int, list[int]] = field(default_factory=dict)  # second -> [requests, tokens]


class LocalLimits:
    """The limiter math in this process (thread-safe: the API's threads read it too);
    `clock` is seconds (monotonic by default, any deterministic clock in tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def _state(self, model: str) -> _State:
        return self._states.setdefault(model, _State())

    @staticmethod
    def _held(state: _State, now: float) -> int:
        state.held = {k: v for k, v in state.held.items() if v[1] > now}
        return sum(tokens for tokens, _ in state.held.values())

    def _level(self, state: _State, limits: Limits, now: float) -> float:
        # Capped at the capacity less what calls in flight hold: the provider's bucket
        # (which counted their actual usage) stops filling at its capacity, so the unused
        # part given back later must not have banked refill the provider wasted.
        top = limits.capacity() - self._held(state, now)
        if state.level is None:
            return top
        rate = (limits.tpm or 0) / 60.0
        return min(top, state.level + (now - state.level_at) * rate)

    def try_admit(self, model: str, limits: Limits, tokens: int, lease_s: float,
                  lease: str | None = None) -> Decision:
        with self._lock:
            now = self.clock()
            state = self._state(model)
            wait = max(0.0, state.slow_until - now)
            new_tat = None
            if limits.rpm:
                interval = 60.0 / limits.rpm
                new_tat = max(state.tat, now) + interval
                wait = max(wait, new_tat - limits.burst() * interval - now)
            need = tokens
            level = None
            if limits.tpm:
                need = min(tokens, math.floor(limits.capacity()))
                level = self._level(state, limits, now)
                if level < need:
                    wait = max(wait, (need - level) * 60.0 / limits.tpm)
            if limits.max_concurrency:
                state.leases = {k: t for k, t in state.leases.items() if t > now}
                if len(state.leases) >= limits.max_concurrency:
                    wait = max(wait, CONCURRENCY_POLL_S)
            if wait > 0:
                return Decision(False, wait)
            if new_tat is not None:
                state.tat = new_tat
            if level is not None:
                state.level, state.level_at = level - need, now
                if lease is not None:
                    state.held[lease] = (need, now + lease_s)
            if limits.max_concurrency and lease is not None:
                state.leases[lease] = now + lease_s
            second = math.floor(now)
            counts = state.usage.setdefault(second, [0, 0])
            counts[0] += 1
            counts[1] += need
            for old in [s for s in state.usage if s < second - WINDOW_S]:
                del state.usage[old]
            return Decision(True, 0.0, need, second)

    def settle(self, permit: Permit, actual_tokens: int | None) -> None:
        with self._lock:
            now = self.clock()
            state = self._state(permit.model)
            delta = 0 if actual_tokens is None else permit.reserved - actual_tokens
            if permit.limits.tpm:
                level = self._level(state, permit.limits, now)
                if permit.lease is not None:
                    state.held.pop(permit.lease, None)
                top = permit.limits.capacity() - self._held(state, now)
                state.level, state.level_at = min(top, level + delta), now
            if permit.lease is not None:
                state.leases.pop(permit.lease, None)
            if delta and permit.second in state.usage:
                state.usage[permit.second][1] -= delta

    def slow_down(self, model: str, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            state = self._state(model)
            state.slow_until = max(state.slow_until, self.clock() + seconds)

    def status(self, model: str, limits: Limits) -> ModelRate:
        with self._lock:
            now = self.clock()
            state = self._state(model)
            recent = [c for s, c in state.usage.items() if s > now - WINDOW_S]
            return ModelRate(
                model=model, rpm=limits.rpm, tpm=limits.tpm,
                max_concurrency=limits.max_concurrency,
                requests_last_minute=sum(c[0] for c in recent),
                tokens_last_minute=sum(c[1] for c in recent),
                tokens_available=(round(self._level(state, limits, now), 1)
                                  if limits.tpm else None),
                in_flight=sum(1 for t in state.leases.values() if t > now),
                slowed_for_s=round(max(0.0, state.slow_until - now), 3))


# ---------------------------------------------------------------------------------------------
# In Redis: the same math, one Lua script per step, on Redis's clock (microseconds).
# KEYS: 1 GCRA TAT, 2 bucket hash {level, ts}, 3 not-before, 4 leases (zset), 5 usage hash,
# 6 tokens held by calls in flight (zset of "<id>:<tokens>" scored by expiry).
# Numbers are written with %.0f / %.3f (Lua's tostring keeps 14 digits only).

_LUA_COMMON = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function held()
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
    total = total + tonumber(string.match(member, ':(%d+)$'))
  end
  return total
end
local function fill(tpm, cap)
  local top = cap - held()
  local state = redis.call('HMGET', KEYS[2], 'level', 'ts')
  local level = tonumber(state[1])
  if level == nil then return top end
  return math.min(top, level + (now - tonumber(state[2])) * tpm / 60000000)
end
local function put_level(level, tpm, cap)
  redis.call('HSET', KEYS[2], 'level', string.format('%.3f', level), 'ts',
             string.format('%.0f', now))
  local full_in = math.ceil((cap - level) * 60000 / tpm) + 1000
  redis.call('PEXPIRE', KEYS[2], string.format('%.0f', full_in))
end
"""

# ARGV: rpm, tpm, max concurrency (0 = none), tokens, lease µs, lease id, burst seconds.
# Returns {1, 0, reserved, second} when admitted, {0, µs to wait} when not (nothing changed).
_ADMIT = _LUA_COMMON + """
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need, lease, burst_s = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local wait = 0
local slow = tonumber(redis.call('GET', KEYS[3]) or '0')
if slow > now then wait = slow - now end
local new_tat = nil
if rpm > 0 then
  local interval = 60000000 / rpm
  local burst = math.max(1, math.floor(rpm * burst_s / 60))
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  new_tat = tat + interval
  wait = math.max(wait, new_tat - burst * interval - now)
end
local level, cap = nil, nil
if tpm > 0 then
  cap = math.max(tpm * burst_s / 60, 1)
  need = math.min(need, math.floor(cap))
  level = fill(tpm, cap)
  if level < need then wait = math.max(wait, (need - level) * 60000000 / tpm) end
end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= conc then wait = math.max(wait, 50000) end
end
if wait > 0 then return {0, string.format('%.0f', wait)} end
if new_tat ~= nil then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
             string.format('%.0f', math.ceil((new_tat - now) / 1000) + 1000))
end
if level ~= nil then
  put_level(level - need, tpm, cap)
  redis.call('ZADD', KEYS[6], string.format('%.0f', now + lease), ARGV[6] .. ':' .. need)
  redis.call('PEXPIRE', KEYS[6], string.format('%.0f', math.ceil(lease / 1000) + 1000))
end
if conc > 0 then
  redis.call('ZADD', KEYS[4], string.format('%.0f', now + lease), ARGV[6])
  redis.call('PEXPIRE', KEYS[4], string.format('%.0f', math.ceil(lease / 1000) + 1000))
end
local second = math.floor(now / 1000000)
redis.call('HINCRBY', KEYS[5], 'r' .. second, 1)
redis.call('HINCRBY', KEYS[5], 't' .. second, need)
for _, name in ipairs(redis.call('HKEYS', KEYS[5])) do
  if tonumber(string.sub(name, 2)) < second - 60 then redis.call('HDEL', KEYS[5], name) end
end
redis.call('PEXPIRE', KEYS[5], 120000)
return {1, 0, need, second}
"""

# ARGV: tpm (0 = none), tokens to give back (negative: take more), lease id ('' = none),
# second of admission, burst seconds, tokens reserved.
_SETTLE = _LUA_COMMON + """
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[4], ARGV[3]) end
if tpm > 0 then
  local cap = math.max(tpm * tonumber(ARGV[5]) / 60, 1)
  local level = fill(tpm, cap)
  redis.call('ZREM', KEYS[6], ARGV[3] .. ':' .. ARGV[6])
  put_level(math.min(cap - held(), level + delta), tpm, cap)
end
if delta ~= 0 then
  local field = 't' .. ARGV[4]
  if redis.call('HEXISTS', KEYS[5], field) == 1 then
    redis.call('HINCRBY', KEYS[5], field, -delta)
  end
end
return 1
"""

# ARGV: µs to hold back. The not-before time only moves later.
_SLOW = _LUA_COMMON + """
local until_ = now + tonumber(ARGV[1])
local slow = tonumber(redis.call('GET', KEYS[3]) or '0')
if until_ > slow then
  redis.call('SET', KEYS[3], string.format('%.0f', until_), 'PX',
             string.format('%.0f', math.ceil((until_ - now) / 1000)))
end
return 1
"""

# ARGV: tpm, burst seconds. Returns {now µs, slow µs, level ('' without tpm), leases, usage...}
_STATUS = _LUA_COMMON + """
local tpm = tonumber(ARGV[1])
local level = ''
if tpm > 0 then
  level = string.format('%.1f', fill(tpm, math.max(tpm * tonumber(ARGV[2]) / 60, 1)))
end
local slow = redis.call('GET', KEYS[3]) or '0'
local leases = redis.call('ZCOUNT', KEYS[4], '(' .. string.format('%.0f', now), '+inf')
return {string.format('%.0f', now), slow, level, leases, redis.call('HGETALL', KEYS[5])}
"""


def _keys(model: str) -> list[str]:
    base = f"{REDIS_PREFIX}{{{model}}}:"
    return [base + part for part in ("req", "tok", "slow", "conc", "usage", "held")]


class RedisLimits:
    """The limiter in Redis, shared by every worker using the same Redis."""

    def __init__(self, url: str, fallback: LocalLimits | None = None) -> None:
        self.url = url
        self.fallback = fallback or LocalLimits()
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0

    def _script(self, name: str) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS)
            self._scripts = {key: self._client.register_script(text) for key, text in (
                ("admit", _ADMIT), ("settle", _SETTLE), ("slow", _SLOW), ("status", _STATUS))}
            self._loop = loop
        return self._scripts[name]

    async def _run(self, name: str, model: str, args: list[Any]) -> Any:
        if time.monotonic() < self._down_until:
            return None
        from redis.exceptions import RedisError

        try:
            return await self._script(name)(keys=_keys(model), args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            log.warning("model limits: Redis is unavailable (%s); limiting per process for "
                        "the next %.0f s", exc.__class__.__name__, REDIS_RETRY_SECONDS)
            return None

    async def try_admit(self, model: str, limits: Limits, tokens: int, lease_s: float,
                        lease: str | None = None) -> Decision:
        reply = await self._run("admit", model, [
            limits.rpm or 0, limits.tpm or 0, limits.max_concurrency or 0, tokens,
            round(lease_s * 1_000_000), lease or "", BURST_SECONDS])
        if reply is None:
            return self.fallback.try_admit(model, limits, tokens, lease_s, lease)
        if not int(reply[0]):
            return Decision(False, int(reply[1]) / 1_000_000)
        return Decision(True, 0.0, int(reply[2]), int(reply[3]))

    async def settle(self, permit: Permit, actual_tokens: int | None) -> None:
        delta = 0 if actual_tokens is None else permit.reserved - actual_tokens
        reply = await self._run("settle", permit.model, [
            permit.limits.tpm or 0, delta, permit.lease or "", permit.second, BURST_SECONDS,
            permit.reserved])
        if reply is None:
            self.fallback.settle(permit, actual_tokens)

    async def slow_down(self, model: str, seconds: float) -> None:
        if seconds <= 0:
            return
        reply = await self._run("slow", model, [round(seconds * 1_000_000)])
        if reply is None:
            self.fallback.slow_down(model, seconds)

    async def status(self, model: str, limits: Limits) -> ModelRate:
        reply = await self._run("status", model, [limits.tpm or 0, BURST_SECONDS])
        if reply is None:
            return self.fallback.status(model, limits)
        now_us, slow_us, level, leases, flat = reply
        now_s = int(now_us) / 1_000_000
        usage = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        recent = {k: v for k, v in usage.items() if int(k[1:]) > now_s - WINDOW_S}
        return ModelRate(
            model=model, rpm=limits.rpm, tpm=limits.tpm, max_concurrency=limits.max_concurrency,
            requests_last_minute=sum(v for k, v in recent.items() if k[0] == "r"),
            tokens_last_minute=sum(v for k, v in recent.items() if k[0] == "t"),
            tokens_available=float(_text(level)) if _text(level) else None,
            in_flight=int(leases),
            slowed_for_s=round(max(0.0, (int(slow_us) - int(now_us)) / 1_000_000), 3))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------
# What the pipeline calls.


class ModelLimiter:
    """Admission of calls under their model's limits, over one backend (Redis or local)."""

    def __init__(self, backend: LocalLimits | RedisLimits,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.backend = backend
        self.sleep = sleep

    async def _maybe(self, value: Any) -> Any:
        return await value if asyncio.iscoroutine(value) else value

    async def acquire(self, spec: ModelSpec, tokens: int, *, lease_s: float) -> Permit | None:
        """Wait until the model's limits let a call of `tokens` (worst case) go; None for a
        model without limits (nothing to settle)."""
        limits = Limits.of(spec)
        if not limits.active:
            return None
        # One id per admission: its concurrency lease and its held tokens.
        lease = uuid.uuid4().hex
        while True:
            decision = await self._maybe(self.backend.try_admit(
                spec.name, limits, max(0, int(tokens)), lease_s, lease))
            if decision.admitted:
                return Permit(spec.name, limits, decision.reserved, decision.second, lease)
            # A little jitter: the workers woken by one refill do not all ask at once.
            await self.sleep(min(decision.wait_s, MAX_SLEEP_S) + random.uniform(0, 0.02))

    async def settle(self, permit: Permit | None, actual_tokens: int | None) -> None:
        """Correct the reservation to the actual usage (None: the provider billed nothing
        it told us about, the reservation stays spent) and give back the lease."""
        if permit is None:
            return
        try:
            await self._maybe(self.backend.settle(permit, actual_tokens))
        except Exception:  # a lease expires by itself; a reservation is spent at worst
            log.warning("could not settle the limit reservation of %s", permit.model,
                        exc_info=True)

    async def observe(self, spec: ModelSpec, info: RateLimitInfo | None, *, refused: bool,
                      used_tokens: int = 0, elapsed_s: float = 0.0) -> float:
        """Slow the model for every worker when the provider says so; returns the seconds."""
        seconds = slow_for(info, refused=refused, used_tokens=used_tokens,
                           elapsed_s=elapsed_s)
        if seconds > 0:
            log.log(logging.INFO if refused else logging.DEBUG,
                    "%s: provider limit reached; every worker holds back for %.2f s",
                    spec.name, seconds)
            await self._maybe(self.backend.slow_down(spec.name, seconds))
        return seconds

    async def status(self, model: str, limits: Limits) -> ModelRate:
        return await self._maybe(self.backend.status(model, limits))


_LOCAL = LocalLimits()
_SHARED: dict[str, ModelLimiter] = {}
_SHARED_LOCK = threading.Lock()


def limiter_for(redis_url: str | None) -> ModelLimiter:
    """This process's limiter: in Redis with a URL (one per URL), else the in-process one
    every worker thread and the API of this process share."""
    key = redis_url or ""
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            backend = RedisLimits(redis_url, _LOCAL) if redis_url else _LOCAL
            limiter = _SHARED[key] = ModelLimiter(backend)
        return limiter
