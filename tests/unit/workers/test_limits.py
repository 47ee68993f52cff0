"""The per-model limiter's math, in process, on a deterministic clock: the GCRA for requests,
the token bucket with worst-case reservations corrected after the call, the concurrency
leases (expiring on their own), the shared "not before" time, and the provider headers."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.llm import ModelSpec, RateLimitInfo
from domain.services.catalog import model_values
from workers.limits import (
    BURST_SECONDS,
    Limits,
    LocalLimits,
    ModelLimiter,
    Permit,
    duration_s,
    rate_limit_info,
    slow_for,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _spec(**limits: int | None) -> ModelSpec:
    return ModelSpec(name="m", litellm_model="openai/m", **limits)  # type: ignore[arg-type]


def test_requests_follow_the_gcra_burst_then_one_per_interval() -> None:
    clock = Clock()
    limits = Limits(rpm=60)  # one a second, a burst of BURST_SECONDS of it
    local = LocalLimits(clock)
    burst = int(60 * BURST_SECONDS / 60)
    admitted = [local.try_admit("m", limits, 0, 10).admitted for _ in range(burst + 1)]
    assert admitted == [True] * burst + [False]
    refused = local.try_admit("m", limits, 0, 10)
    assert refused.wait_s == pytest.approx(1.0)
    clock.now += 1.0
    assert local.try_admit("m", limits, 0, 10).admitted
    assert not local.try_admit("m", limits, 0, 10).admitted


def test_tokens_wait_for_the_bucket_and_the_correction_gives_back_or_takes_more() -> None:
    clock = Clock()
    limits = Limits(tpm=6000)  # 100 tokens a second, a bucket of 1,000
    local = LocalLimits(clock)
    first = local.try_admit("m", limits, 800, 10)
    assert (first.admitted, first.reserved) == (True, 800)
    second = local.try_admit("m", limits, 800, 10)
    assert not second.admitted and second.wait_s == pytest.approx(6.0)  # 600 missing
    # The call used 300 of its 800: 500 come back, and the next one fits at once.
    local.settle(Permit("m", limits, 800, first.second), 300)
    assert local.status("m", limits).tokens_available == pytest.approx(700)
    third = local.try_admit("m", limits, 700, 10)
    assert third.admitted
    # It used 900 (more than reserved): the bucket goes into debt, later calls wait it out.
    local.settle(Permit("m", limits, 700, third.second), 900)
    assert local.status("m", limits).tokens_available == pytest.approx(-200)
    waiting = local.try_admit("m", limits, 100, 10)
    assert waiting.wait_s == pytest.approx(3.0)
    clock.now += 3.0
    assert local.try_admit("m", limits, 100, 10).admitted
    rate = local.status("m", limits)
    assert (rate.requests_last_minute, rate.tokens_last_minute) == (3, 300 + 900 + 100)


def test_a_call_larger_than_the_bucket_waits_for_a_full_bucket_not_forever() -> None:
    clock = Clock()
    limits = Limits(tpm=600)  # a bucket of 100 tokens
    local = LocalLimits(clock)
    big = local.try_admit("m", limits, 5000, 10)
    assert big.admitted and big.reserved == 100
    assert local.try_admit("m", limits, 5000, 10).wait_s == pytest.approx(10.0)


def test_concurrency_leases_are_returned_and_expire_when_a_worker_dies() -> None:
    clock = Clock()
    limits = Limits(max_concurrency=2)
    local = LocalLimits(clock)
    assert local.try_admit("m", limits, 0, 30, "a").admitted
    assert local.try_admit("m", limits, 0, 30, "b").admitted
    assert not local.try_admit("m", limits, 0, 30, "c").admitted
    local.settle(Permit("m", limits, 0, 0, "a"), 0)
    assert local.try_admit("m", limits, 0, 30, "c").admitted
    assert local.status("m", limits).in_flight == 2
    clock.now += 31  # "b" and "c" were never returned (a killed worker): their leases end
    assert local.status("m", limits).in_flight == 0
    assert local.try_admit("m", limits, 0, 30, "d").admitted


def test_a_slow_down_holds_every_call_of_the_model_until_then() -> None:
    clock = Clock()
    local = LocalLimits(clock)
    limits = Limits(rpm=600)
    local.slow_down("m", 5.0)
    local.slow_down("m", 2.0)  # never earlier
    decision = local.try_admit("m", limits, 0, 10)
    assert not decision.admitted and decision.wait_s == pytest.approx(5.0)
    assert local.status("m", limits).slowed_for_s == pytest.approx(5.0)
    assert local.try_admit("other", limits, 0, 10).admitted
    clock.now += 5.0
    assert local.try_admit("m", limits, 0, 10).admitted


async def test_acquire_waits_on_the_clock_and_a_model_without_limits_passes() -> None:
    clock = Clock()
    limiter = ModelLimiter(LocalLimits(clock), sleep=clock.sleep)
    assert await limiter.acquire(_spec(), 10_000, lease_s=10) is None
    spec = _spec(tpm=6000)
    start = clock.now
    first = await limiter.acquire(spec, 1000, lease_s=10)
    second = await limiter.acquire(spec, 1000, lease_s=10)
    assert first is not None and second is not None
    assert clock.now - start == pytest.approx(10.0, abs=0.1)  # a whole bucket to refill
    await limiter.settle(second, 200)
    seconds = await limiter.observe(spec, RateLimitInfo(retry_after_s=7), refused=True)
    assert seconds == 7
    assert limiter.backend.status("m", Limits.of(spec)).slowed_for_s == pytest.approx(7)


def test_provider_headers_are_read_as_litellm_keeps_them() -> None:
    assert duration_s("6m0s") == 360 and duration_s("20ms") == pytest.approx(0.02)
    assert duration_s("1.5s") == 1.5 and duration_s("2") == 2 and duration_s("soon") is None
    info = rate_limit_info({"x-ratelimit-limit-tokens": "60000",
                            "x-ratelimit-remaining-tokens": "100",
                            "llm_provider-x-ratelimit-reset-tokens": "9.9s",
                            "x-ratelimit-remaining-requests": "5"})
    assert info == RateLimitInfo(limit_tokens=60000, remaining_tokens=100, reset_tokens_s=9.9,
                                 remaining_requests=5)
    assert rate_limit_info({"content-type": "application/json"}) is None


def test_slow_downs_from_a_429_and_from_a_200_nearly_out_of_tokens() -> None:
    assert slow_for(RateLimitInfo(retry_after_s=3), refused=True) == 3
    exhausted = RateLimitInfo(remaining_tokens=0, reset_tokens_s=4.0)
    assert slow_for(exhausted, refused=True) == 4.0
    assert slow_for(None, refused=True) == 1.0
    # 100 tokens left of 60,000/min while calls use 600: 500 missing = 0.5 s, less the 0.2 s
    # the answer took (the provider counted at admission).
    low = RateLimitInfo(limit_tokens=60000, remaining_tokens=100)
    assert slow_for(low, refused=False, used_tokens=600, elapsed_s=0.2) == pytest.approx(0.3)
    assert slow_for(low, refused=False, used_tokens=50) == 0
    assert slow_for(RateLimitInfo(limit_requests=60, remaining_requests=0),
                    refused=False) == pytest.approx(1.0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("rpm", 0, "between 1 and 1,000,000"),
    ("rpm", -5, "between 1 and 1,000,000"),
    ("rpm", 1_000_001, "between 1 and 1,000,000"),
    ("tpm", 1_000_000_001, "between 1 and 1,000,000,000"),
    ("max_concurrency", 10_001, "between 1 and 10,000"),
    ("tpm", 1.5, "whole number"),
    ("rpm", True, "whole number"),
])
def test_bad_limits_are_refused_naming_the_field(field: str, value: object,
                                                 message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        model_values({field: value}, creating=False)
    [issue] = caught.value.issues
    graphql_name = {"max_concurrency": "maxConcurrency"}.get(field, field)
    assert issue.path == ("input", graphql_name) and message in issue.message


def test_limits_are_kept_and_null_clears_one() -> None:
    assert model_values({"rpm": 500, "tpm": 2_000_000, "max_concurrency": 8},
                        creating=False) == {"rpm": 500, "tpm": 2_000_000, "max_concurrency": 8}
    assert model_values({"tpm": None}, creating=False) == {"tpm": None}


def test_tokens_held_by_calls_in_flight_bank_no_refill_the_provider_wastes() -> None:
    """A provider bucket full while our reservation is in flight wastes its refill: the unused
    part given back must not push our bucket above the provider's."""
    clock = Clock()
    limits = Limits(tpm=6000)  # a bucket of 1,000, 100 a second
    local = LocalLimits(clock)
    decision = local.try_admit("m", limits, 800, 30, "call-1")
    assert decision.admitted
    clock.now += 9.0  # the provider (charged 200) is full again after 2 s; ours holds 800
    assert local.status("m", limits).tokens_available == pytest.approx(200)
    local.settle(Permit("m", limits, 800, decision.second, "call-1"), 200)
    # The 600 given back land on the 200 the cap allowed: 800, at or below the provider's
    # 1,000 (its usage is counted when it answers, a little late, never early). Without the
    # cap, the 9 s of refill would have banked 900 and the give-back overshot the provider.
    assert local.status("m", limits).tokens_available == pytest.approx(800)
    clock.now += 2.0
    assert local.status("m", limits).tokens_available == pytest.approx(1000)
    # A call whose worker died holds its tokens only until its lease ends.
    assert local.try_admit("m", limits, 900, 5, "dead").admitted
    clock.now += 3.0
    # 100 left, and held 900 cap it at 100 however long it waits
    assert local.status("m", limits).tokens_available == pytest.approx(100)
    clock.now += 3.0  # the lease ended: the cap is the whole bucket again
    assert local.status("m", limits).tokens_available == pytest.approx(700)
