"""The adapters implement the ports: db/'s unit of work and repositories, and workers/' model
client, dispatcher, buses and price catalog, each checked by mypy against its Protocol in
domain/ports.py (a Protocol is structural: only a type checker can tell it is kept)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ASSIGNMENTS = textwrap.dedent("""
    from db import (answers, budget, calibration, catalog, forecast, graph, jobs, keys,
                    performance, processing, reference, segments, settings_store, sources,
                    strategies, uow)
    from domain import ports as p
    from workers import dispatch, gateway, prices
    from workers import converters
    from workers import forecast as forecaster
    from workers.events import local, redis_streams

    def sources_(x: sources.SourceRepository) -> p.SourceRepository: return x
    def catalog_(x: catalog.ModelRepository) -> p.CatalogRepository: return x
    def processing_(x: processing.ProcessingRepository) -> p.ProcessingRepository: return x
    def jobs_(x: jobs.JobQueue) -> p.JobRepository: return x
    def answers_(x: answers.AnswerRepository) -> p.AnswerRepository: return x
    def budget_(x: budget.BudgetLedger) -> p.BudgetRepository: return x
    def performance_(x: performance.PerformanceRepository) -> p.PerformanceRepository: return x
    def strategies_(x: strategies.StrategyRepository) -> p.StrategyRepository: return x
    def graph_(x: graph.GraphRepository) -> p.GraphRepository: return x
    def settings_(x: settings_store.SettingsStore) -> p.SettingsRepository: return x
    def keys_(x: keys.KeyRepository) -> p.KeyRepository: return x
    def calibration_(x: calibration.CalibrationRepository) -> p.CalibrationRepository: return x
    def reference_(x: reference.ReferenceRepository) -> p.ReferenceRepository: return x
    def segments_(x: segments.SegmentRepository) -> p.SegmentRepository: return x
    def converters_(x: converters.Converters) -> p.FileConverter: return x
    def forecasts_(x: forecast.ForecastRepository) -> p.ForecastRepository: return x
    def forecaster_(x: forecaster.LiteLLMForecaster) -> p.Forecaster: return x
    def uow_(x: uow.SqlUnitOfWork) -> p.UnitOfWork: return x
    def factory_(x: uow.SqlUnitOfWorkFactory) -> p.UnitOfWorkFactory: return x
    def dispatcher_(x: dispatch.Dispatcher) -> p.JobDispatcher: return x
    def client_(x: gateway.LiteLLMClient) -> p.ModelClient: return x
    def prices_(x: prices.LiteLLMPrices) -> p.PriceCatalog: return x
    def local_bus_(x: local.InProcessEventBus) -> p.EventBus: return x
    def redis_bus_(x: redis_streams.RedisStreamEventBus) -> p.EventBus: return x
""")


@pytest.mark.slow
def test_every_adapter_satisfies_its_port(tmp_path: Path) -> None:
    # Given: a module assigning each adapter to its port
    probe = tmp_path / "conformance_probe.py"
    probe.write_text(ASSIGNMENTS)
    # When
    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
         "--config-file", str(ROOT / "pyproject.toml"), str(probe)],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    # Then: no complaint about the probe (the adapters' own modules are not judged here)
    problems = [line for line in found.stdout.splitlines() if probe.name in line]
    assert problems == [], "\n".join(problems)
    assert "error: Cannot find" not in found.stdout
