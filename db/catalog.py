"""The model catalog: seeded on start, registered and updated by operators."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import ModelRow
from domain.errors import Conflict, NotFound
from domain.llm import ModelSpec
from domain.ports import PriceCatalog

_M = ModelRow.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SeedModel:
    name: str
    litellm_model: str
    price: tuple[str, str] | None = None  # per million, when the bundled map lacks the model
    is_local: bool = False
    notes: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None


# The original MMOS line-up (prices as published when those models were current), today's
# common choices (priced from LiteLLM's bundled map), and the free offline extractors.
SEED_MODELS = (
    SeedModel("gpt-4", "gpt-4"),
    SeedModel("gpt-3.5-turbo", "gpt-3.5-turbo"),
    SeedModel("claude-3-opus", "anthropic/claude-3-opus-20240229", ("15", "75"),
              notes="original MMOS line-up; retired by the provider", context_window=200_000),
    SeedModel("claude-3-sonnet", "anthropic/claude-3-sonnet-20240229", ("3", "15"),
              notes="original MMOS line-up; retired by the provider", context_window=200_000),
    SeedModel("gemini-pro", "gemini/gemini-pro", ("0.5", "1.5"),
              notes="original MMOS line-up; retired by the provider", context_window=30_720,
              max_output_tokens=2048),
    SeedModel("gpt-4o", "gpt-4o"),
    SeedModel("gpt-4o-mini", "gpt-4o-mini"),
    SeedModel("gpt-4.1-mini", "gpt-4.1-mini"),
    SeedModel("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
    SeedModel("claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
    SeedModel("gemini-2.5-flash", "gemini/gemini-2.5-flash"),
    SeedModel("rules-fast", "mmos/rules-fast", ("0", "0"), is_local=True,
              notes="offline rule-based extractor: one fragment per evaluative sentence",
              context_window=200_000, max_output_tokens=100_000),
    SeedModel("rules-thorough", "mmos/rules-thorough", ("0", "0"), is_local=True,
              notes="offline rule-based extractor: groups cause/effect, splits contrasts",
              context_window=200_000, max_output_tokens=100_000),
)


def seed_values(seed: SeedModel, prices: PriceCatalog) -> dict[str, Any]:
    """Row values of a seed model, with prices and limits from the catalog when known."""
    price = prices.price_of(seed.litellm_model)
    source = "litellm"
    if seed.price is not None and (price is None or seed.is_local):
        price, source = (Decimal(seed.price[0]), Decimal(seed.price[1])), "catalog"
    window, output = prices.limits_of(seed.litellm_model)
    return {
        "name": seed.name,
        "litellm_model": seed.litellm_model,
        "input_cost_per_million": price[0] if price else None,
        "output_cost_per_million": price[1] if price else None,
        "price_source": source if price else "none",
        "context_window": seed.context_window or window or 8192,
        "max_output_tokens": seed.max_output_tokens or output or 4096,
        "is_local": seed.is_local,
        "notes": seed.notes,
    }


def spec_of(row: ModelRow) -> ModelSpec:
    """What the gateway needs from a catalog row."""
    return ModelSpec(
        name=row.name,
        litellm_model=row.litellm_model,
        api_base=row.api_base,
        api_key_env=row.api_key_env,
        input_cost_per_million=row.input_cost_per_million,
        output_cost_per_million=row.output_cost_per_million,
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        cache_read_cost_per_million=row.cache_read_cost_per_million,
        cache_write_cost_per_million=row.cache_write_cost_per_million,
        batch_discount=row.batch_discount,
        rpm=row.rpm,
        tpm=row.tpm,
        max_concurrency=row.max_concurrency,
    )


class ModelRepository:
    """Catalog reads and writes in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seed(self, prices: PriceCatalog) -> None:
        """Insert missing seed models; never overwrite an operator's changes.

        Prices are looked up for missing models only: once seeded, a start never asks the
        catalog (LiteLLM's, slow to import in the API process).
        """
        names = [seed.name for seed in SEED_MODELS]
        query = sa.select(_M.name).where(_M.name.in_(names))
        present = set((await self.session.execute(query)).scalars())
        rows = [seed_values(seed, prices) for seed in SEED_MODELS if seed.name not in present]
        if rows:
            await self.session.execute(insert(ModelRow).values(rows).on_conflict_do_nothing())

    @staticmethod
    def spec_of(row: ModelRow) -> ModelSpec:
        """What the gateway needs to call this catalog model (prices included)."""
        return spec_of(row)

    async def get(self, name: str) -> ModelRow | None:
        return await self.session.get(ModelRow, name)

    async def require(self, name: str, path: tuple[str, ...]) -> ModelRow:
        row = await self.get(name)
        if row is None:
            raise NotFound("Model", name, path)
        return row

    async def list(self, enabled_only: bool = False) -> list[ModelRow]:
        query = sa.select(ModelRow).order_by(_M.name)
        if enabled_only:
            query = query.where(_M.enabled.is_(True))
        return list((await self.session.execute(query)).scalars())

    async def get_many(self, names: list[str]) -> dict[str, ModelRow]:
        if not names:
            return {}
        rows = await self.session.execute(sa.select(ModelRow).where(_M.name.in_(names)))
        return {row.name: row for row in rows.scalars()}

    async def register(self, values: dict[str, Any]) -> ModelRow:
        if await self.get(values["name"]) is not None:
            raise Conflict(f"model {values['name']!r} is already registered",
                           ("input", "name"), values["name"])
        row = ModelRow(**values)
        self.session.add(row)
        await self.session.flush()
        await self.session.refresh(row)
        return row

    async def update(self, name: str, changes: dict[str, Any]) -> ModelRow:
        row = await self.require(name, ("input", "name"))
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = sa.func.now()  # type: ignore[assignment]
        await self.session.flush()
        await self.session.refresh(row)
        return row
