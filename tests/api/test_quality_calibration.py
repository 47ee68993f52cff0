"""qualityCalibration over GraphQL on the real database: runs scored without, then with, a
human reference, checked against a hand computation (docs/QUALITY.md)."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.keys import KeyRepository
from db.tables import BatchRow, ModelPerformanceRow, RunRow, SourceRow

QUERY = """query($type: SourceType) { qualityCalibration(sourceType: $type) {
  sourceType n sources meanAbsoluteError meanError spearman summary
  byKind { kind n sources meanAbsoluteError meanError spearman }
  byModel { model n sources meanAbsoluteError meanError spearman } } }"""

_N = itertools.count(1)


async def add_source(runtime: Any, source_type: str = "interview") -> int:
    n = next(_N)
    text = f"Calibration source {n}."
    async with runtime.transaction() as session:
        return int((await session.execute(sa.insert(SourceRow).values(
            source_code=f"CAL_{n:05d}", title=f"Source {n}", source_type=source_type,
            quality="primary", extraction_priority="medium", status="processed", content=text,
            content_sha256=hashlib.sha256(text.encode()).hexdigest(),
            word_count=len(text.split()), char_count=len(text), language="en",
        ).returning(SourceRow.__table__.c.id))).scalar_one())  # type: ignore[attr-defined]


async def add_run(runtime: Any, source_id: int, model: str, *, score: float,
                  unverified: float | None, kind: str | None,
                  reference_kind: str = "verified", status: str = "completed",
                  source_type: str = "interview") -> int:
    """One run of `model` on the source with its measurement (score against `reference_kind`,
    and the provisional score kept from before a human reference existed)."""
    async with runtime.transaction() as session:
        batch_id = (await session.execute(sa.insert(BatchRow).values(
            group_id=f"cal-{next(_N)}", model_name=model, status="completed",
        ).returning(BatchRow.__table__.c.id))).scalar_one()  # type: ignore[attr-defined]
        run_id = (await session.execute(sa.insert(RunRow).values(
            batch_id=batch_id, source_id=source_id, model_name=model, status=status,
        ).returning(RunRow.__table__.c.id))).scalar_one()  # type: ignore[attr-defined]
        await session.execute(sa.insert(ModelPerformanceRow).values(
            run_id=run_id, source_id=source_id, batch_id=batch_id, model_name=model,
            source_type=source_type, reference_kind=reference_kind, quality_score=score,
            quality_low=score, quality_high=score, provisional=reference_kind == "none",
            grounded_rate=1.0, miu_rate=1.0, coverage=1.0, mean_relevance=5.0,
            fragment_count=1, grounded_fragment_count=1, cost_usd=0, latency_ms=1,
            unverified_score=unverified, unverified_kind=kind))
    return int(run_id)


async def seed(runtime: Any) -> None:
    s1, s2, s3 = [await add_source(runtime) for _ in range(3)]
    # counted: (provisional, verified) = (7, 6), (5, 5), (8, 9), (4, 2)
    await add_run(runtime, s1, "rules-fast", score=6.0, unverified=7.0, kind="consensus")
    await add_run(runtime, s1, "rules-thorough", score=5.0, unverified=5.0,
                  kind="reference_model")
    await add_run(runtime, s2, "rules-fast", score=9.0, unverified=8.0, kind="consensus")
    await add_run(runtime, s3, "rules-thorough", score=2.0, unverified=4.0, kind="none",
                  status="completed_with_errors")
    # not counted: a failed run, a score not against a human reference, no provisional score
    await add_run(runtime, s3, "rules-fast", score=9.0, unverified=1.0, kind="none",
                  status="failed")
    await add_run(runtime, s2, "rules-thorough", score=3.0, unverified=3.0, kind="consensus",
                  reference_kind="consensus")
    await add_run(runtime, s2, "rules-fast", score=4.0, unverified=None, kind=None)
    # another source type: (9, 1)
    podcast = await add_source(runtime, "podcast")
    await add_run(runtime, podcast, "rules-fast", score=1.0, unverified=9.0,
                  kind="consensus", source_type="podcast")


async def calibration(gql: Any, source_type: str | None) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(QUERY, {"type": source_type}))["data"][
        "qualityCalibration"]
    return result


async def test_one_source_type_against_a_hand_computation(gql: Any, db: Any) -> None:
    await seed(db)
    c = await calibration(gql, "INTERVIEW")
    # errors p - v: 1, 0, -1, 2 → MAE 4/4 = 1.0, bias 2/4 = 0.5; ranks of p (7, 5, 8, 4) and
    # of v (6, 5, 9, 2) are both 3, 2, 4, 1 → ρ = 1
    assert (c["sourceType"], c["n"], c["sources"]) == ("INTERVIEW", 4, 3)
    assert c["meanAbsoluteError"] == pytest.approx(1.0)
    assert c["meanError"] == pytest.approx(0.5)
    assert c["spearman"] == pytest.approx(1.0)
    assert c["summary"] == ("Over 4 runs on 3 sources, provisional scores were off by 1.00 "
                            "points on average (rank correlation 1.00).")
    assert c["byKind"] == [
        {"kind": "consensus", "n": 2, "sources": 2, "meanAbsoluteError": 1.0,
         "meanError": 0.0, "spearman": None},
        {"kind": "none", "n": 1, "sources": 1, "meanAbsoluteError": 2.0, "meanError": 2.0,
         "spearman": None},
        {"kind": "reference_model", "n": 1, "sources": 1, "meanAbsoluteError": 0.0,
         "meanError": 0.0, "spearman": None},
    ]
    assert c["byModel"] == [
        {"model": "rules-fast", "n": 2, "sources": 2, "meanAbsoluteError": 1.0,
         "meanError": 0.0, "spearman": None},
        {"model": "rules-thorough", "n": 2, "sources": 2, "meanAbsoluteError": 1.0,
         "meanError": 1.0, "spearman": None},
    ]


async def test_all_source_types_together(gql: Any, db: Any) -> None:
    await seed(db)
    c = await calibration(gql, None)
    # adds (9, 1): errors 1, 0, -1, 2, 8 → MAE 12/5, bias 10/5; ranks of p 3, 2, 4, 1, 5 and
    # of v 4, 3, 5, 2, 1 → Σd² = 20, ρ = 1 − 6·20 / (5·24) = 0
    assert (c["sourceType"], c["n"], c["sources"]) == (None, 5, 4)
    assert c["meanAbsoluteError"] == pytest.approx(2.4)
    assert c["meanError"] == pytest.approx(2.0)
    assert c["spearman"] == pytest.approx(0.0, abs=1e-12)


async def test_too_few_runs_say_there_is_not_enough_evidence(gql: Any, db: Any) -> None:
    await seed(db)
    c = await calibration(gql, "PODCAST")
    assert (c["n"], c["sources"], c["meanAbsoluteError"], c["spearman"]) == (1, 1, 8.0, None)
    assert c["summary"] == (
        "Not enough evidence yet: only 1 run on 1 source has been scored both before and "
        "after a human reference existed; at least 3 are needed.")
    empty = await calibration(gql, "BOOK")
    assert (empty["n"], empty["meanAbsoluteError"], empty["byKind"]) == (0, None, [])
    assert empty["summary"].startswith("Not enough evidence yet: no run has been scored")


async def test_an_unknown_source_type_is_refused(gql: Any, db: Any) -> None:
    inline = await gql("{ qualityCalibration(sourceType: RADIO) { n } }", expect_errors=True)
    assert inline.get("data") is None
    assert "RADIO" in inline["errors"][0]["message"]
    variable = await gql(QUERY, {"type": "radio"}, expect_errors=True)
    assert variable.get("data") is None
    assert "SourceType" in variable["errors"][0]["message"]


async def test_a_viewer_may_read_it(production: tuple[httpx.AsyncClient, Any]) -> None:
    http, runtime = production
    async with runtime.transaction() as session:
        viewer = (await KeyRepository(session).create("viewer", "viewer")).secret
    refused = await http.post("/graphql", json={"query": "{ qualityCalibration { n } }"})
    assert refused.status_code == 401
    read = await http.post("/graphql", json={"query": "{ qualityCalibration { n summary } }"},
                           headers={"Authorization": f"Bearer {viewer}"})
    assert read.status_code == 200
    assert read.json()["data"]["qualityCalibration"]["n"] == 0
