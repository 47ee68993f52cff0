"""Reserve-before, settle-after spend accounting against the daily and batch budgets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.settings_store import DAILY_BUDGET, FRAGMENT_COST_LIMIT, SettingsStore


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


class BudgetExceeded(Exception):
    """The worst case of the next call does not fit in the daily or the batch budget."""

    def __init__(self, scope: str, needed: Decimal) -> None:
        super().__init__(f"the {scope} budget cannot cover a call of up to ${needed}")
        self.scope = scope
        self.needed = needed


class BudgetLedger:
    """All money moves in the caller's transaction; one call = one ledger row."""

    def __init__(self, session: AsyncSession, default_daily: Decimal | None = None,
                 default_fragment_limit: Decimal | None = None) -> None:
        self.session = session
        self.default_daily = default_daily
        self.default_fragment_limit = default_fragment_limit

    async def daily_limit(self) -> Decimal | None:
        store = SettingsStore(self.session)
        if await store.has(DAILY_BUDGET):
            value = await store.get(DAILY_BUDGET)
            return None if value is None else Decimal(str(value))
        return self.default_daily

    async def fragment_cost_limit(self) -> Decimal | None:
        store = SettingsStore(self.session)
        if await store.has(FRAGMENT_COST_LIMIT):
            value = await store.get(FRAGMENT_COST_LIMIT)
            return None if value is None else Decimal(str(value))
        return self.default_fragment_limit

    async def state(self, day: date | None = None) -> BudgetState:
        day = day or utc_today()
        row = (await self.session.execute(sa.text(
            "SELECT spent_usd, reserved_usd FROM budget_days WHERE day = :d"), {"d": day})).first()
        spent, reserved = (row.spent_usd, row.reserved_usd) if row else (Decimal(0), Decimal(0))
        return BudgetState(day, await self.daily_limit(), spent, reserved)

    async def reserve(self, *, amount: Decimal, model_name: str, call_kind: str,
                      batch_id: int | None, run_id: int | None, job_id: int | None,
                      ttl_seconds: int) -> Reservation:
        """Atomically reserve `amount` against today's and the batch's budget, or raise."""
        day = utc_today()
        limit = await self.daily_limit()
        await self.session.execute(sa.text(
            "INSERT INTO budget_days (day) VALUES (:d) ON CONFLICT (day) DO NOTHING"), {"d": day})
        ok = await self.session.execute(sa.text(
            "UPDATE budget_days SET reserved_usd = reserved_usd + :x, updated_at = now()"
            " WHERE day = :d AND (CAST(:limit AS numeric) IS NULL"
            "       OR spent_usd + reserved_usd + :x <= CAST(:limit AS numeric))"
            " RETURNING day"), {"d": day, "x": amount, "limit": limit})
        if ok.first() is None:
            raise BudgetExceeded("daily", amount)
        if batch_id is not None:
            ok = await self.session.execute(sa.text(
                "UPDATE processing_batches SET reserved_usd = reserved_usd + :x"
                " WHERE id = :b AND (budget_usd IS NULL"
                "       OR spent_usd + reserved_usd + :x <= budget_usd) RETURNING id"),
                {"b": batch_id, "x": amount})
            if ok.first() is None:
                raise BudgetExceeded("batch", amount)
        ledger_id = (await self.session.execute(sa.text(
            "INSERT INTO budget_ledger (day, batch_id, run_id, job_id, model_name, call_kind,"
            " status, reserved_usd, expires_at) VALUES (:d, :b, :r, :j, :m, :k, 'reserved', :x,"
            " now() + make_interval(secs => :ttl)) RETURNING id"),
            {"d": day, "b": batch_id, "r": run_id, "j": job_id, "m": model_name,
             "k": call_kind, "x": amount, "ttl": ttl_seconds})).scalar_one()
        return Reservation(int(ledger_id), amount, day)

    async def settle(self, reservation: Reservation, *, actual: Decimal, input_tokens: int,
                     output_tokens: int, outcome: str) -> bool:
        """Turn a reservation into spend; a ledger row is settled at most once."""
        row = (await self.session.execute(sa.text(
            "UPDATE budget_ledger SET status = 'settled', actual_usd = :a, input_tokens = :i,"
            " output_tokens = :o, outcome = :outcome, settled_at = now()"
            " WHERE id = :id AND status = 'reserved' RETURNING reserved_usd, day, batch_id"),
            {"id": reservation.ledger_id, "a": actual, "i": input_tokens, "o": output_tokens,
             "outcome": outcome[:200]})).first()
        if row is None:
            return False
        await self._move(row.day, row.batch_id, reserved=row.reserved_usd, spent=actual)
        return True

    async def release(self, reservation: Reservation, outcome: str) -> bool:
        """Give a reservation back without spend (the call failed before costing anything)."""
        row = (await self.session.execute(sa.text(
            "UPDATE budget_ledger SET status = 'released', outcome = :outcome, settled_at = now()"
            " WHERE id = :id AND status = 'reserved' RETURNING reserved_usd, day, batch_id"),
            {"id": reservation.ledger_id, "outcome": outcome[:200]})).first()
        if row is None:
            return False
        await self._move(row.day, row.batch_id, reserved=row.reserved_usd, spent=Decimal(0))
        return True

    async def _move(self, day: date, batch_id: int | None, *, reserved: Decimal,
                    spent: Decimal) -> None:
        await self.session.execute(sa.text(
            "UPDATE budget_days SET reserved_usd = greatest(reserved_usd - :r, 0),"
            " spent_usd = spent_usd + :s, updated_at = now() WHERE day = :d"),
            {"d": day, "r": reserved, "s": spent})
        if batch_id is not None:
            await self.session.execute(sa.text(
                "UPDATE processing_batches SET reserved_usd = greatest(reserved_usd - :r, 0),"
                " spent_usd = spent_usd + :s WHERE id = :b"),
                {"b": batch_id, "r": reserved, "s": spent})

    async def sweep_expired(self) -> int:
        """Release reservations whose call never settled (the worker died mid-call)."""
        rows = (await self.session.execute(sa.text(
            "UPDATE budget_ledger SET status = 'released', outcome = 'reservation expired',"
            " settled_at = now() WHERE status = 'reserved' AND expires_at < now()"
            " RETURNING reserved_usd, day, batch_id"))).all()
        for row in rows:
            await self._move(row.day, row.batch_id, reserved=row.reserved_usd, spent=Decimal(0))
        return len(rows)
