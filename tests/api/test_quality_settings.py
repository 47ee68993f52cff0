"""How runs are measured is configurable, validated, and stored in the settings table."""

from __future__ import annotations

from typing import Any

SET = """mutation($input: SetQualitySettingsInput!) { setQualitySettings(input: $input) {
  __typename
  ... on SetQualitySettingsPayload { remeasuredSources settings { referenceModel
        minVerifiedFragments weights { f1 grounded miu coverage relevance } } }
  ... on ValidationError { fieldErrors { field message } }
  ... on NotFound { message field } } }"""
READ = """{ qualitySettings { referenceModel minVerifiedFragments weights { f1 relevance } } }"""


async def test_the_defaults_are_the_designs(gql: Any) -> None:
    settings = (await gql(READ))["data"]["qualitySettings"]
    assert settings == {"referenceModel": None, "minVerifiedFragments": 5,
                        "weights": {"f1": 0.4, "relevance": 0.1}}


async def test_settings_are_stored_and_read_back(gql: Any) -> None:
    changed = (await gql(SET, {"input": {
        "weights": {"f1": 0.5, "grounded": 0.2, "miu": 0.1, "coverage": 0.1, "relevance": 0.1},
        "referenceModel": "gpt-4o", "minVerifiedFragments": 3}}))["data"]["setQualitySettings"]
    assert changed["__typename"] == "SetQualitySettingsPayload", changed
    assert changed["remeasuredSources"] == 0
    assert (await gql(READ))["data"]["qualitySettings"] == {
        "referenceModel": "gpt-4o", "minVerifiedFragments": 3,
        "weights": {"f1": 0.5, "relevance": 0.1}}
    # Null puts the automatic reference (the dearest model run on a source) back.
    await gql(SET, {"input": {"referenceModel": None}})
    assert (await gql(READ))["data"]["qualitySettings"]["referenceModel"] is None


async def test_weights_that_leave_no_score_without_a_reference_are_refused(gql: Any) -> None:
    result = (await gql(SET, {"input": {"weights": {
        "f1": 1, "grounded": 0, "miu": 0, "coverage": 0, "relevance": 0}}}))["data"]
    errors = result["setQualitySettings"]["fieldErrors"]
    assert [e["field"] for e in errors] == ["input.weights"]
    negative = (await gql(SET, {"input": {"weights": {"grounded": -1}}}))["data"]
    assert negative["setQualitySettings"]["__typename"] == "ValidationError"


async def test_a_reference_model_must_be_in_the_catalog(gql: Any) -> None:
    missing = (await gql(SET, {"input": {"referenceModel": "gpt-99"}}))["data"]
    assert missing["setQualitySettings"] == {"__typename": "NotFound",
                                             "message": "Model gpt-99 not found",
                                             "field": "input.referenceModel"}
    # A NUL written as a GraphQL escape passes the JSON check: validation refuses it.
    hostile = await gql('mutation { setQualitySettings(input: {referenceModel: "bad\\u0000"})'
                        " { ... on ValidationError { fieldErrors { field } } } }",
                        expect_errors=True)
    assert hostile["data"] is None
    assert "must not contain a NUL character" in hostile["errors"][0]["message"]


async def test_the_verified_minimum_is_at_least_one(gql: Any) -> None:
    result = (await gql(SET, {"input": {"minVerifiedFragments": 0}}))["data"]
    assert result["setQualitySettings"]["fieldErrors"][0]["field"] == \
        "input.minVerifiedFragments"
    empty = (await gql(SET, {"input": {}}))["data"]
    assert empty["setQualitySettings"]["__typename"] == "ValidationError"
