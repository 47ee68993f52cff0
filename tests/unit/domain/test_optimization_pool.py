"""Pooling a model's measurements over sources, and the dearest model among measured ones."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.optimizer import Candidate, failed_sample, most_expensive, pool_candidates


def sample(quality: float, low: float, high: float, cost: str, grounded: int,
           chars: int = 1_000, model: str = "m") -> Candidate:
    return Candidate(model, quality, low, high, False, Decimal(cost), grounded, chars, 1)


def test_one_sample_keeps_its_own_interval() -> None:
    pooled = pool_candidates("m", [sample(8.0, 7.5, 8.4, "0.10", 10)])
    assert (pooled.quality, pooled.quality_low, pooled.quality_high) == (8.0, 7.5, 8.4)


def test_pooled_quality_is_the_mean_and_money_adds_up() -> None:
    pooled = pool_candidates("m", [sample(8.0, 8.0, 8.0, "0.10", 10, 1_000),
                                   sample(6.0, 6.0, 6.0, "0.30", 30, 3_000)])
    assert pooled.quality == 7.0
    assert pooled.cost_per_fragment == Decimal("0.01")  # 0.40 / 40 grounded
    assert pooled.cost_per_1k_chars == Decimal("0.1")  # 0.40 * 1000 / 4000
    assert pooled.samples == 2


def test_the_pooled_interval_covers_the_spread_between_sources() -> None:
    pooled = pool_candidates("m", [sample(9.0, 9.0, 9.0, "0.1", 5),
                                   sample(5.0, 5.0, 5.0, "0.1", 5)], resamples=500)
    assert pooled.quality_low < 7.0 < pooled.quality_high
    assert pooled.quality_low >= 5.0 and pooled.quality_high <= 9.0


def test_the_pooled_interval_is_never_narrower_than_the_mean_within_sources() -> None:
    pooled = pool_candidates("m", [sample(8.0, 6.0, 9.0, "0.1", 5),
                                   sample(8.0, 6.0, 9.0, "0.1", 5)])
    # No spread between sources, but each was uncertain on its own.
    assert (pooled.quality_low, pooled.quality_high) == (6.0, 9.0)


def test_pooling_refuses_samples_of_another_model_or_none() -> None:
    with pytest.raises(ValueError, match="belong to m"):
        pool_candidates("m", [sample(8.0, 8.0, 8.0, "0.1", 5, model="other")])
    with pytest.raises(ValueError, match="no measurement"):
        pool_candidates("m", [])


def test_a_failed_run_is_a_zero_sample_whose_money_still_counts() -> None:
    pooled = pool_candidates("m", [sample(9.0, 9.0, 9.0, "0.10", 10),
                                   failed_sample("m", Decimal("0.10"), 1_000)])
    assert pooled.quality == 4.5
    assert pooled.cost_per_fragment == Decimal("0.02")  # 0.20 over the 10 grounded
    assert pooled.provisional is True


def test_the_most_expensive_model_must_be_unique_and_priced() -> None:
    assert most_expensive({"a": Decimal(1), "b": Decimal(3)}) == "b"
    assert most_expensive({"a": Decimal(3), "b": Decimal(3)}) is None
    assert most_expensive({"a": None}) is None
