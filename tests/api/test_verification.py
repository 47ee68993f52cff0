"""Verification: decisions with reviewer and time, bulk review, the audit trail, the quality
reference notified."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

import pytest

from api.ids import to_global
from tests.support.graph_data import count_rows, seed_source

VERIFY = """
mutation($input: VerifyFragmentInput!) { verifyFragment(input: $input) { __typename
  ... on VerifyFragmentPayload { fragment { id verificationStatus verifiedBy verifiedAt
        verificationHistory { decision previousStatus reviewer notes createdAt } } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on NotFound { message field } } }
"""

REVIEW = """
mutation($input: ReviewFragmentsInput!) { reviewFragments(input: $input) { __typename
  ... on ReviewFragmentsPayload { count fragments { id verificationStatus
        verificationHistory { decision previousStatus } } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on NotFound { message field } } }
"""


class QualitySpy:
    """Stands in for the quality service: records the sources it is asked to recompute."""

    def __init__(self, fail: bool = False) -> None:
        self.sources: list[int] = []
        self.fail = fail

    async def recompute_source(self, source_id: int) -> None:
        self.sources.append(source_id)
        if self.fail:
            raise RuntimeError("reference store unavailable")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Stand in for the quality use case the verdicts feed."""
        async def recompute(ports: object, source_id: int) -> int:
            await self.recompute_source(source_id)
            return 0

        monkeypatch.setattr("domain.services.quality.recompute_source", recompute)


def gid(fragment_id: int) -> str:
    return to_global("Fragment", fragment_id)


async def verify(gql: Any, fragment_id: int, decision: str,
                 notes: str | None = None) -> dict[str, Any]:
    body = await gql(VERIFY, {"input": {"fragmentId": gid(fragment_id), "decision": decision,
                                        "notes": notes}})
    return body["data"]["verifyFragment"]  # type: ignore[no-any-return]


async def test_verifying_records_status_reviewer_time_and_history(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["I trust my team."])
    fragment_id = seeded.fragment_ids[0]
    # When
    first = await verify(gql, fragment_id, "NEEDS_REVIEW", "check the quote")
    second = await verify(gql, fragment_id, "VERIFIED")
    # Then
    assert first["fragment"]["verificationStatus"] == "NEEDS_REVIEW"
    fragment = second["fragment"]
    assert fragment["verificationStatus"] == "VERIFIED"
    assert fragment["verifiedBy"] == "local" and fragment["verifiedAt"]
    history = fragment["verificationHistory"]
    assert [(h["previousStatus"], h["decision"], h["reviewer"], h["notes"]) for h in history] == [
        ("UNVERIFIED", "NEEDS_REVIEW", "local", "check the quote"),
        ("NEEDS_REVIEW", "VERIFIED", "local", None)]
    assert history[0]["createdAt"] <= history[1]["createdAt"]


async def test_bulk_review_decides_every_fragment_in_one_go(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One.", "Two.", "Three."])
    await verify(gql, seeded.fragment_ids[0], "VERIFIED")
    ids = [gid(i) for i in seeded.fragment_ids]
    # When
    result = (await gql(REVIEW, {"input": {"fragmentIds": ids + ids[:1], "decision": "REJECTED",
                                           "notes": "off topic"}}))["data"]["reviewFragments"]
    # Then
    assert result["count"] == 3
    assert [f["id"] for f in result["fragments"]] == ids
    assert all(f["verificationStatus"] == "REJECTED" for f in result["fragments"])
    assert [h["previousStatus"] for h in result["fragments"][0]["verificationHistory"]] == [
        "UNVERIFIED", "VERIFIED"]
    assert await count_rows(db, "verification_events") == 4


async def test_fragments_filter_by_verification_status(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One.", "Two.", "Three."])
    await verify(gql, seeded.fragment_ids[1], "REJECTED")
    # When
    found = (await gql("""{ fragments(filter: {verificationStatuses: [REJECTED]}) {
        edges { node { id } } } }"""))["data"]["fragments"]["edges"]
    # Then
    assert [e["node"]["id"] for e in found] == [gid(seeded.fragment_ids[1])]


async def test_decisions_ask_the_quality_service_to_recompute_each_source_once(
        gql: Any, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    spy = QualitySpy()
    spy.install(monkeypatch)
    first = await seed_source(db, ["One.", "Two."])
    second = await seed_source(db, ["Three."])
    ids = [gid(i) for i in first.fragment_ids + second.fragment_ids]
    # When
    await gql(REVIEW, {"input": {"fragmentIds": ids, "decision": "VERIFIED"}})
    await verify(gql, second.fragment_ids[0], "REJECTED")
    # Then
    assert spy.sources == [*sorted([first.source_id, second.source_id]), second.source_id]


async def test_a_failing_quality_service_does_not_undo_the_decision(
        gql: Any, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    QualitySpy(fail=True).install(monkeypatch)
    seeded = await seed_source(db, ["One."])
    # When
    result = await verify(gql, seeded.fragment_ids[0], "VERIFIED")
    # Then
    assert result["fragment"]["verificationStatus"] == "VERIFIED"
    assert await count_rows(db, "verification_events") == 1


async def test_unknown_fragment_in_a_bulk_review_writes_nothing(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One.", "Two."])
    ids = [gid(i) for i in seeded.fragment_ids] + [gid(987654)]
    # When
    result = (await gql(REVIEW, {"input": {"fragmentIds": ids, "decision": "VERIFIED"}})
              )["data"]["reviewFragments"]
    # Then
    assert result == {"__typename": "NotFound", "message": "Fragment 987654 not found",
                      "field": "input.fragmentIds.2"}
    assert await count_rows(db, "verification_events") == 0
    statuses = (await gql("{ fragments { edges { node { verificationStatus } } } }")
                )["data"]["fragments"]["edges"]
    assert {e["node"]["verificationStatus"] for e in statuses} == {"UNVERIFIED"}


@pytest.mark.parametrize(("decision", "fragment_id", "notes", "expected"), [
    ("VERIFIED", "Zm9vOjE=", None, "input.fragmentId: is a foo ID, expected a Fragment ID"),
    ("VERIFIED", "", None, "input.fragmentId: is not a valid Fragment ID"),
    ("VERIFIED", "1", "n" * 2001, "input.notes: has 2001 characters; the limit is 2000"),
])
async def test_bad_verification_input_is_a_validation_error(gql: Any, db: Any, decision: str,
                                                            fragment_id: str, notes: str | None,
                                                            expected: str) -> None:
    # Given
    await seed_source(db, ["One."])
    # When
    result = (await gql(VERIFY, {"input": {"fragmentId": fragment_id, "decision": decision,
                                           "notes": notes}}))["data"]["verifyFragment"]
    # Then
    assert result["__typename"] == "ValidationError"
    assert result["message"] == expected
    assert await count_rows(db, "verification_events") == 0


@pytest.mark.parametrize("decision", ["UNVERIFIED", "APPROVED", "verified"])
async def test_decisions_outside_the_three_are_refused(gql: Any, db: Any,
                                                        decision: str) -> None:
    # Given
    seeded = await seed_source(db, ["One."])
    # When
    body = await gql(VERIFY, {"input": {"fragmentId": gid(seeded.fragment_ids[0]),
                                        "decision": decision}}, expect_errors=True)
    # Then
    assert body.get("data") is None
    assert "VerificationDecision" in body["errors"][0]["message"]
    assert await count_rows(db, "verification_events") == 0


async def test_empty_bulk_review_is_a_validation_error(gql: Any, db: Any) -> None:
    # When
    result = (await gql(REVIEW, {"input": {"fragmentIds": [], "decision": "VERIFIED"}})
              )["data"]["reviewFragments"]
    # Then
    assert result["fieldErrors"] == [{"field": "input.fragmentIds",
                                      "message": "must name at least one fragment"}]


async def test_concurrent_decisions_form_an_unbroken_audit_chain(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One."])
    fragment_id = seeded.fragment_ids[0]
    decisions = ["VERIFIED", "REJECTED", "NEEDS_REVIEW"] * 4
    # When
    await asyncio.gather(*(verify(gql, fragment_id, d) for d in decisions))
    # Then: each event replaced exactly what the previous one decided
    history = (await gql("query($id: ID!) { node(id: $id) { ... on Fragment { "
                         "verificationStatus verificationHistory { decision previousStatus } "
                         "} } }", {"id": gid(fragment_id)}))["data"]["node"]
    events = history["verificationHistory"]
    assert len(events) == 12
    assert events[0]["previousStatus"] == "UNVERIFIED"
    assert all(later["previousStatus"] == earlier["decision"]
               for earlier, later in pairwise(events))
    assert history["verificationStatus"] == events[-1]["decision"]
