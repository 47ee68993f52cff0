"""Reading model answers: tolerant of wrapping, strict about the shape."""

from __future__ import annotations

import json

import pytest

from domain.parsing import (
    FRAGMENTS_JSON_SCHEMA,
    MAX_FRAGMENTS,
    AnswerFormatError,
    ExtractedFragment,
    parse_answer,
)

FRAGMENT = {
    "content": "Ana left banking because she felt her work had no purpose.",
    "quote": "I left the bank because nothing I did there mattered.",
    "category": "values_beliefs",
    "subcategory": "purpose",
    "fragment_type": "paraphrase",
    "context": "career change",
    "insight": "Purpose outweighs security for her.",
    "relevance": 8,
    "confidence": 0.9,
    "tags": ["career", "purpose"],
}
ANSWER = json.dumps({"fragments": [FRAGMENT]})


def fragment(**changes: object) -> ExtractedFragment:
    return ExtractedFragment.model_validate({**FRAGMENT, **changes})


def test_plain_json_answer_is_read_field_by_field() -> None:
    answer = parse_answer(ANSWER)

    assert len(answer.fragments) == 1
    only = answer.fragments[0]
    assert only.quote == FRAGMENT["quote"]
    assert only.category == "values_beliefs"
    assert only.relevance == 8
    assert only.confidence == 0.9
    assert only.tags == ["career", "purpose"]


def test_json_inside_a_code_fence_with_prose_around_it_is_read() -> None:
    text = f"Sure! Here are the fragments:\n```json\n{ANSWER}\n```\nLet me know if you need more."

    assert parse_answer(text).fragments[0].content == FRAGMENT["content"]


def test_unlabelled_fence_is_read() -> None:
    assert len(parse_answer(f"```\n{ANSWER}\n```").fragments) == 1


def test_leading_prose_with_brackets_and_trailing_garbage_are_skipped() -> None:
    text = f"Answer [v2] {{draft}}: {ANSWER} <|end|> trailing words"

    assert parse_answer(text).fragments[0].relevance == 8


def test_top_level_list_is_taken_as_the_fragments() -> None:
    assert parse_answer(json.dumps([FRAGMENT, FRAGMENT])).fragments[1].quote == FRAGMENT["quote"]


def test_single_fragment_object_is_taken_as_a_one_fragment_answer() -> None:
    assert len(parse_answer(json.dumps(FRAGMENT)).fragments) == 1


def test_object_with_one_list_under_another_name_is_accepted() -> None:
    assert len(parse_answer(json.dumps({"mius": [FRAGMENT]})).fragments) == 1


def test_empty_fragment_list_is_a_valid_answer() -> None:
    assert parse_answer('{"fragments": []}').fragments == []


def test_extra_keys_are_ignored() -> None:
    text = json.dumps({"fragments": [{**FRAGMENT, "speaker": "Ana"}], "notes": "none"})

    assert parse_answer(text).fragments[0].content == FRAGMENT["content"]


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty_answer_is_a_format_error(text: str | None) -> None:
    with pytest.raises(AnswerFormatError, match="empty"):
        parse_answer(text)


def test_prose_without_json_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match="no JSON"):
        parse_answer("I could not find any fragments in this text.")


def test_truncated_answer_is_a_format_error_not_a_partial_answer() -> None:
    truncated = json.dumps({"fragments": [FRAGMENT, FRAGMENT]}, indent=2)[:-40]

    with pytest.raises(AnswerFormatError, match="not valid JSON") as caught:
        parse_answer(truncated)
    assert "truncated" in caught.value.problem


def test_object_without_fragments_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match='no "fragments"'):
        parse_answer('{"result": "ok", "count": 3}')


def test_problem_names_the_invalid_field_and_its_position() -> None:
    text = json.dumps({"fragments": [FRAGMENT, {**FRAGMENT, "content": "   "}]})

    with pytest.raises(AnswerFormatError) as caught:
        parse_answer(text)
    assert caught.value.problem == "fragments.1.content: content is empty"
    assert isinstance(caught.value, ValueError)


def test_missing_content_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match=r"fragments\.0\.content"):
        parse_answer(json.dumps({"fragments": [{"quote": "x"}]}))


def test_content_longer_than_the_limit_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match="5000"):
        parse_answer(json.dumps([{**FRAGMENT, "content": "a" * 5001}]))


def test_more_fragments_than_the_limit_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match="fragments"):
        parse_answer(json.dumps([FRAGMENT] * (MAX_FRAGMENTS + 1)))


def test_content_is_stripped() -> None:
    assert fragment(content="  Ana laughs at herself.\n").content == "Ana laughs at herself."


def test_optional_text_fields_default_to_empty_and_accept_null() -> None:
    minimal = ExtractedFragment.model_validate({"content": "Ana plans ahead.", "context": None})

    assert (minimal.quote, minimal.category, minimal.context, minimal.insight) == ("", "", "", "")
    assert minimal.tags == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(7, 7), ("7", 7), (7.6, 8), ("8/10", 8), (0, 1), (-3, 1), (14, 10), ("11", 10), (None, 5)],
)
def test_relevance_is_coerced_and_clamped_into_one_to_ten(raw: object, expected: int) -> None:
    assert fragment(relevance=raw).relevance == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.85, 0.85),
        (85, 0.85),
        ("85", 0.85),
        ("85%", 0.85),
        ("0.4", 0.4),
        (1, 1.0),
        (250, 1.0),
        (-0.2, 0.0),
        (None, 0.5),
    ],
)
def test_confidence_accepts_fractions_and_percentages(raw: object, expected: float) -> None:
    assert fragment(confidence=raw).confidence == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["high", True, float("nan"), [0.5]])
def test_non_numeric_scores_are_rejected(raw: object) -> None:
    with pytest.raises(AnswerFormatError, match="confidence"):
        parse_answer(json.dumps([{**FRAGMENT, "confidence": raw}]))


def test_tags_are_stripped_lowercased_deduplicated_and_capped() -> None:
    tags = [" Career ", "career", "PURPOSE", "", *[f"t{i}" for i in range(30)]]

    normalised = fragment(tags=tags).tags

    assert normalised[:3] == ["career", "purpose", "t0"]
    assert len(normalised) == 20


def test_comma_separated_tags_are_split() -> None:
    assert fragment(tags="Career, purpose ,career").tags == ["career", "purpose"]


def test_schema_lists_every_fragment_field_as_required_for_strict_output() -> None:
    items = FRAGMENTS_JSON_SCHEMA["properties"]["fragments"]["items"]

    assert set(items["required"]) == set(ExtractedFragment.model_fields)
    assert set(items["properties"]) == set(ExtractedFragment.model_fields)
    assert items["additionalProperties"] is False
    assert FRAGMENTS_JSON_SCHEMA["required"] == ["fragments"]


def test_an_answer_matching_the_schema_parses() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    payload = {"fragments": [FRAGMENT]}

    jsonschema.validate(payload, FRAGMENTS_JSON_SCHEMA)
    assert parse_answer(json.dumps(payload)).fragments[0].tags == ["career", "purpose"]
