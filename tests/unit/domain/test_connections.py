"""The connection budget a worker checks when it starts (domain/connections.py)."""

from __future__ import annotations

from domain.connections import ConnectionBudget


def test_pools_within_the_limit_get_no_warning_even_if_their_overflow_would_not() -> None:
    budget = ConnectionBudget(max_connections=100, workers=4, worker_pool=20, api_pool=10)
    assert (budget.steady, budget.peak, budget.available) == (90, 180, 97)
    assert budget.warning() is None
    assert budget.note() == ("4 worker(s) keep 20 PostgreSQL connections each and the API 10: "
                             "90 (up to 180 under load) of 97 the server allows")


def test_pools_past_the_limit_are_warned_about_with_the_figures_and_the_ways_out() -> None:
    text = ConnectionBudget(max_connections=100, workers=5, worker_pool=20, api_pool=10).warning()
    assert text == ("PostgreSQL allows 100 connections (97 without its reserved ones) but 5 "
                    "worker(s) keep 20 each and the API 10: 110, and up to 220 under load. "
                    "Raise max_connections, lower MMOS_DB_POOL_SIZE or MMOS_LLM_CONCURRENCY, "
                    "or run fewer workers")
