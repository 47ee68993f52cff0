"""Prometheus metrics observed in process (LLM calls) and a collector reading Postgres for the
totals every process agrees on (runs, fragments, cost, queue, budget, workers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LLM_CALL_SECONDS = Histogram(
    "mmos_llm_call_seconds", "Latency of provider calls", ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
LLM_ERRORS = Counter("mmos_llm_errors_total", "Failed provider calls", ["model", "kind"])
LLM_CALLS = Counter("mmos_llm_calls_total", "Provider calls", ["model", "outcome"])

PRIORITY_NAMES = {50: "critical", 40: "very_high", 30: "high", 20: "medium", 10: "low"}



def observe_call(model: str, seconds: float, outcome: str) -> None:
    """Record one provider call (outcome: ok, transient, deterministic)."""
    LLM_CALL_SECONDS.labels(model).observe(seconds)
    LLM_CALLS.labels(model, outcome).inc()
    if outcome != "ok":
        LLM_ERRORS.labels(model, outcome).inc()


class DatabaseCollector(Collector):
    """Exports the shared totals read from Postgres (runs, fragments, cost, queue, budget,
    workers). The API's /metrics handler refreshes the snapshot, then renders the registry;
    one process exports them, so counters are never added up across workers."""

    def __init__(self) -> None:
        self.snapshot: dict[str, list[Any]] | None = None
        self.taken_at = 0.0

    async def refresh(self, session: Any, ttl: float = 2.0) -> None:
        """Re-read the totals unless the last snapshot is younger than `ttl` seconds."""
        from db.totals import read_totals

        if self.snapshot is not None and time.monotonic() - self.taken_at < ttl:
            return
        self.snapshot, self.taken_at = await read_totals(session), time.monotonic()

    def _snapshot(self) -> dict[str, list[Any]] | None:
        return self.snapshot

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        data = self._snapshot()
        if data is None:
            return
        runs = CounterMetricFamily("mmos_runs", "Runs by status and model", labels=["status",
                                                                                  "model"])
        for status, model, count in data["runs"]:
            runs.add_metric([status, model], count)
        yield runs
        fragments = CounterMetricFamily("mmos_fragments_extracted", "Stored fragments by model",
                                        labels=["model"])
        for model, count in data["fragments"]:
            fragments.add_metric([model], count)
        yield fragments
        cost = CounterMetricFamily("mmos_cost_usd", "Settled provider spend by model (USD)",
                                   labels=["model"])
        for model, amount in data["cost"]:
            cost.add_metric([model], float(Decimal(amount)))
        yield cost
        depth = GaugeMetricFamily("mmos_queue_depth", "Open jobs by priority and status",
                                  labels=["priority", "status"])
        for priority, status, count in data["queue"]:
            depth.add_metric([PRIORITY_NAMES.get(priority, str(priority)), status], count)
        yield depth
        yield GaugeMetricFamily("mmos_queue_oldest_age_seconds", "Age of the oldest waiting job",
                                value=float(data["oldest"][0][0]))
        spent, reserved = data["budget"][0]
        yield GaugeMetricFamily("mmos_budget_spent_usd", "Settled spend today (UTC)",
                                value=float(spent))
        yield GaugeMetricFamily("mmos_budget_reserved_usd", "Reserved for calls in flight",
                                value=float(reserved))
        workers = GaugeMetricFamily("mmos_worker_last_seen_timestamp_seconds",
                                    "Last heartbeat of each worker", labels=["worker"])
        for worker_id, seen in data["workers"]:
            workers.add_metric([worker_id], float(seen))
        yield workers
