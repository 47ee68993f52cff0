"""Reserve-before, settle-after spend accounting against the daily and batch budgets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.settings_store import DAILY_BUDGET, FRAGMENT_COST_LIMIT, SettingsStore
from domain.llm import ModelResponse


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class BudgetState:
    day: date
    limit_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return max(Decimal(0), self.limit_usd - self.spent_usd - self.reserved_usd)


@dataclass(frozen=True, slots=True)
class Reservation:
    ledger_id: int
    amount: Decimal
    day: date


@dataclass(frozen=True, slots=True)
class CallLevers:
    """A settled call's prompt-cache tokens and its cost split: the call's cost (`actual`)
    = list_cost_usd − cache_saved_usd − batch_saved_usd. None list = the call's cost."""

    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    list_cost_usd: Decimal | None = None
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)

    def params(self, actual: Decimal) -> dict[str, object]:
        listed = actual if self.list_cost_usd is None else self.list_cost_usd
        return {"ci": self.cached_input_tokens, "cw": self.cache_write_tokens, "lc": listed,
                "cs": self.cache_saved_usd, "bs": self.batch_saved_usd}


NO_LEVERS = CallLevers()


def levers_of(response: ModelResponse) -> CallLevers:
    """The levers of an answered call, as the gateway priced it."""
    return CallLevers(response.cached_input_tokens, response.cache_write_tokens,
                      response.list_cost, response.cache_saved_usd, response.batch_saved_usd)


class BudgetExceeded(Exception):
    """The worst case of the next call does not fit in the daily or the batch budget."""

    def __init__(self, scope: str, needed: Decimal) -> None:
        super().__init__(f"the {scope} budget cannot cover a call of up to ${needed}")
        self.scope = scope
        self.needed = needed


_ABSENT = object()

_RESERVE_DAY = sa.text("""
UPDATE budget_days SET reserved_usd = reserved_usd + :x, updated_at = now()
WHERE day = :d AND (
    (SELECT CASE WHEN count(*) = 0 THEN CAST(:default AS numeric)
                 ELSE max((value #>> '{}')::numeric) END
     FROM settings WHERE key = :key) IS NULL
    OR spent_usd + reserved_usd + :x <= (
        SELECT CASE WHEN count(*) = 0 THEN CAST(:default AS numeric)
                    ELSE max((value #>> '{}')::numeric) END
        FROM settings WHERE key = :key))
RETURNING day
""")


_LIMIT = """(SELECT CASE WHEN count(*) = 0 THEN CAST(:default AS numeric)
                 ELSE max((value #>> '{}')::numeric) END
          FROM settings WHERE key = :key)"""

# One statement for the common case (a batch without its own budget): reserve against the
# day and write the ledger row together, so the shared day row is held for one statement.
_RESERVE_ONE = sa.text(f"""
WITH reserved AS (
    UPDATE budget_days SET reserved_usd = reserved_usd + :x, updated_at = now()
    WHERE day = :d AND ({_LIMIT} IS NULL OR spent_usd + reserved_usd + :x <= {_LIMIT})
      AND NOT EXISTS (SELECT 1 FROM source_processing
                      WHERE id = CAST(:r AS bigint) AND status = 'skipped')
    RETURNING day)
INSERT INTO budget_ledger (day, batch_id, run_id, job_id, model_name, call_kind, status,
                           reserved_usd, expires_at)
SELECT reserved.day, :b, :r, :j, :m, :k, 'reserved', :x, now() + make_interval(secs => :ttl)
FROM reserved
RETURNING id
""")

# Settle a call and add its usage to the run in one statement (batch without its own budget).
_SETTLE_ONE = sa.text("""
WITH settled AS (
    UPDATE budget_ledger SET status = 'settled', actual_usd = :a, input_tokens = :i,
           output_tokens = :o, cached_input_tokens = :ci, cache_write_tokens = :cw,
           list_cost_usd = :lc, cache_saved_usd = :cs, batch_saved_usd = :bs,
           outcome = :outcome, settled_at = now()
    WHERE id = :id AND status = 'reserved'
    RETURNING reserved_usd, day),
run AS (
    UPDATE source_processing SET input_tokens = input_tokens + :i,
           output_tokens = output_tokens + :o, cost_usd = cost_usd + :a,
           cached_input_tokens = cached_input_tokens + :ci,
           cache_write_tokens = cache_write_tokens + :cw,
           list_cost_usd = list_cost_usd + :lc, cache_saved_usd = cache_saved_usd + :cs,
           batch_saved_usd = batch_saved_usd + :bs,
           latency_ms = latency_ms + :l, llm_calls = llm_calls + 1,
           repair_calls = repair_calls
               + CASE WHEN CAST(:outcome AS text) = 'repair' THEN 1 ELSE 0 END,
           repair_cost_usd = repair_cost_usd
               + CASE WHEN CAST(:outcome AS text) = 'repair' THEN :a ELSE 0 END
    FROM settled WHERE source_processing.id = :r
    RETURNING 1),
moved AS (
    UPDATE budget_days SET reserved_usd = greatest(budget_days.reserved_usd
                                                   - settled.reserved_usd, 0),
           spent_usd = budget_days.spent_usd + :a, updated_at = now()
    FROM settled WHERE budget_days.day = settled.day
    RETURNING 1)
SELECT (SELECT count(*) FROM settled) AS settled, (SELECT count(*) FROM run) AS run,
       (SELECT count(*) FROM moved) AS moved
""")


class BudgetLedger:
    """All money moves in the caller's transaction; one call = one ledger row."""

    def __init__(self, session: AsyncSession | AsyncConnection,
                 default_daily: Decimal | None = None,
                 default_fragment_limit: Decimal | None = None) -> None:
        self.session = session
        self.default_daily = default_daily
        self.default_fragment_limit = default_fragment_limit

    async def daily_limit(self) -> Decimal | None:
        value = await SettingsStore(self.session).get(DAILY_BUDGET, _ABSENT)
        if value is _ABSENT:
            return self.default_daily
        return None if value is None else Decimal(str(value))

    async def fragment_cost_limit(self) -> Decimal | None:
        value = await SettingsStore(self.session).get(FRAGMENT_COST_LIMIT, _ABSENT)
        if value is _ABSENT:
            return self.default_fragment_limit
        return None if value is None else Decimal(str(value))

    async def state(self, day: date | None = None) -> BudgetState:
        day = day or utc_today()
        row = (await self.session.execute(sa.text(
            "SELECT spent_usd, reserved_usd FROM budget_days WHERE day = :d"), {"d": day})).first()
        spent, reserved = (row.spent_usd, row.reserved_usd) if row else (Decimal(0), Decimal(0))
        return BudgetState(day, await self.daily_limit(), spent, reserved)

    async def reserve(self, *, amount: Decimal, model_name: str, call_kind: str,
                      batch_id: int | None, run_id: int | None, job_id: int | None,
                      ttl_seconds: int, batch_has_budget: bool | None = None) -> Reservation:
        """Atomically reserve `amount` against today's and the batch's budget, or raise.

        The limit is read inside the conditional UPDATE itself, so a limit lowered by an
        operator applies to the very next reservation. Lock order, as everywhere: job → run →
        batch → budget day; the day row, shared by every call, is taken last and held only
        until the commit that follows.
        """
        day = utc_today()
        if batch_id is None or batch_has_budget is False:
            return await self._reserve_one(day, amount, model_name, call_kind, batch_id, run_id,
                                           job_id, ttl_seconds)
        ledger_id = (await self.session.execute(sa.text(
            "INSERT INTO budget_ledger (day, batch_id, run_id, job_id, model_name, call_kind,"
            " status, reserved_usd, expires_at) VALUES (:d, :b, :r, :j, :m, :k, 'reserved', :x,"
            " now() + make_interval(secs => :ttl)) RETURNING id"),
            {"d": day, "b": batch_id, "r": run_id, "j": job_id, "m": model_name,
             "k": call_kind, "x": amount, "ttl": ttl_seconds})).scalar_one()
        if batch_id is not None:
            if batch_has_budget is None:
                batch_has_budget = bool((await self.session.execute(sa.text(
                    "SELECT budget_usd IS NOT NULL FROM processing_batches WHERE id = :b"),
                    {"b": batch_id})).scalar())
            if batch_has_budget:
                ok = await self.session.execute(sa.text(
                    "UPDATE processing_batches SET reserved_usd = reserved_usd + :x"
                    " WHERE id = :b AND spent_usd + reserved_usd + :x <= budget_usd"
                    " RETURNING id"), {"b": batch_id, "x": amount})
                if ok.first() is None:
                    raise BudgetExceeded("batch", amount)
        params = {"d": day, "x": amount, "default": self.default_daily, "key": DAILY_BUDGET}
        ok = (await self.session.execute(_RESERVE_DAY, params)).first()
        if ok is None:
            # The day's row may not exist yet (first call of the day): create it, try again.
            await self.session.execute(sa.text(
                "INSERT INTO budget_days (day) VALUES (:d) ON CONFLICT (day) DO NOTHING"),
                {"d": day})
            ok = (await self.session.execute(_RESERVE_DAY, params)).first()
            if ok is None:
                raise BudgetExceeded("daily", amount)
        return Reservation(int(ledger_id), amount, day)

    async def _reserve_one(self, day: date, amount: Decimal, model_name: str, call_kind: str,
                           batch_id: int | None, run_id: int | None, job_id: int | None,
                           ttl_seconds: int) -> Reservation:
        params = {"d": day, "x": amount, "default": self.default_daily, "key": DAILY_BUDGET,
                  "b": batch_id, "r": run_id, "j": job_id, "m": model_name, "k": call_kind,
                  "ttl": ttl_seconds}
        ledger_id = (await self.session.execute(_RESERVE_ONE, params)).scalar_one_or_none()
        if ledger_id is None:
            # The day's row may not exist yet (first call of the day): create it, try again.
            await self.session.execute(sa.text(
                "INSERT INTO budget_days (day) VALUES (:d) ON CONFLICT (day) DO NOTHING"),
                {"d": day})
            ledger_id = (await self.session.execute(_RESERVE_ONE, params)).scalar_one_or_none()
            if ledger_id is None:
                raise BudgetExceeded("daily", amount)
        return Reservation(int(ledger_id), amount, day)

    async def settle_call(self, reservation: Reservation, *, actual: Decimal,
                          input_tokens: int, output_tokens: int, latency_ms: int,
                          outcome: str, run_id: int, levers: CallLevers = NO_LEVERS) -> bool:
        """Settle a call of a batch without its own budget and add its usage to the run, in
        one statement; False when it was settled already. `levers`: its cache tokens and
        cost split (none: list = cost, nothing saved)."""
        row = (await self.session.execute(_SETTLE_ONE, {
            "id": reservation.ledger_id, "a": actual, "i": input_tokens, "o": output_tokens,
            "outcome": outcome[:200], "l": latency_ms, "r": run_id,
            **levers.params(actual)})).one()
        return bool(row.settled)

    async def settle(self, reservation: Reservation, *, actual: Decimal, input_tokens: int,
                     output_tokens: int, outcome: str,
                     on_settled: Callable[[], Awaitable[None]] | None = None,
                     levers: CallLevers = NO_LEVERS) -> bool:
        """Turn a reservation into spend; a ledger row is settled at most once.

        `on_settled` runs after the ledger row is marked and before the day and batch counters
        move, so callers touching the run row keep the lock order run → budget day → batch.
        """
        row = (await self.session.execute(sa.text(
            "UPDATE budget_ledger SET status = 'settled', actual_usd = :a, input_tokens = :i,"
            " output_tokens = :o, cached_input_tokens = :ci, cache_write_tokens = :cw,"
            " list_cost_usd = :lc, cache_saved_usd = :cs, batch_saved_usd = :bs,"
            " outcome = :outcome, settled_at = now()"
            " WHERE id = :id AND status = 'reserved' RETURNING reserved_usd, day, batch_id"),
            {"id": reservation.ledger_id, "a": actual, "i": input_tokens, "o": output_tokens,
             "outcome": outcome[:200], **levers.params(actual)})).first()
        if row is None:
            return False
        if on_settled is not None:
            await on_settled()
        await self._move(row.day, row.batch_id, reserved=row.reserved_usd, spent=actual)
        return True

    async def release(self, reservation: Reservation, outcome: str,
                      on_released: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Give a reservation back without spend (the call failed before costing anything).

        `on_released` runs at the same point as `settle`'s `on_settled`, for the same lock order.
        """
        row = (await self.session.execute(sa.text(
            "UPDATE budget_ledger SET status = 'released', outcome = :outcome, settled_at = now()"
            " WHERE id = :id AND status = 'reserved' RETURNING reserved_usd, day, batch_id"),
            {"id": reservation.ledger_id, "outcome": outcome[:200]})).first()
        if row is None:
            return False
        if on_released is not None:
            await on_released()
        await self._move(row.day, row.batch_id, reserved=row.reserved_usd, spent=Decimal(0))
        return True

    async def _move(self, day: date, batch_id: int | None, *, reserved: Decimal,
                    spent: Decimal) -> None:
        # Batch before day: the lock order of reserve (job → run → batch → budget day).
        if batch_id is not None:
            await self.session.execute(sa.text(
                "UPDATE processing_batches SET reserved_usd = greatest(reserved_usd - :r, 0),"
                " spent_usd = spent_usd + :s WHERE id = :b AND budget_usd IS NOT NULL"),
                {"b": batch_id, "r": reserved, "s": spent})
        await self.session.execute(sa.text(
            "UPDATE budget_days SET reserved_usd = greatest(reserved_usd - :r, 0),"
            " spent_usd = spent_usd + :s, updated_at = now() WHERE day = :d"),
            {"d": day, "r": reserved, "s": spent})

    async def sweep_expired(self) -> int:
        """Release reservations whose call never settled (the worker died mid-call)."""
        rows = (await self.session.execute(sa.text(
            "UPDATE budget_ledger SET status = 'released', outcome = 'reservation expired',"
            " settled_at = now() WHERE status = 'reserved' AND expires_at < now()"
            " RETURNING reserved_usd, day, batch_id"))).all()
        for row in rows:
            await self._move(row.day, row.batch_id, reserved=row.reserved_usd, spent=Decimal(0))
        return len(rows)
