"""Reading model answers as real models send them: coerced where the intent is plain, and noted."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

import domain.parsing as parsing
from domain.model import Category, ConfidenceBand, FragmentType
from domain.parsing import (
    ANSWER_FIELDS,
    CONFIDENCE_BAND_VALUES,
    DEFAULT_CONFIDENCE,
    DEFAULT_RELEVANCE,
    FRAGMENTS_JSON_SCHEMA,
    MAX_ANSWER_CHARS,
    MAX_CONTENT_CHARS,
    MAX_FRAGMENTS,
    MAX_TAGS,
    RELEVANCE_BAND_VALUES,
    AnswerFormatError,
    ExtractedFragment,
    ParsedAnswer,
    parse_answer,
)

FRAGMENT: dict[str, Any] = {
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
OTHER: dict[str, Any] = {
    **FRAGMENT,
    "content": "Ana plans every week on Sunday evenings.",
    "quote": "Every Sunday night I plan the whole week.",
    "category": "behavioral",
    "fragment_type": "pattern",
    "tags": ["planning"],
}
ANSWER = json.dumps({"fragments": [FRAGMENT]})


def only(text: str) -> ExtractedFragment:
    answer = parse_answer(text)
    assert len(answer.fragments) == 1, answer
    return answer.fragments[0]


def fragment(**changes: object) -> ExtractedFragment:
    """The one fragment read from an answer holding FRAGMENT with some fields changed."""
    return only(json.dumps({"fragments": [{**FRAGMENT, **changes}]}))


def without(*names: str) -> dict[str, Any]:
    return {key: value for key, value in FRAGMENT.items() if key not in names}


def has_note(notes: tuple[str, ...], part: str) -> bool:
    return any(part in note for note in notes)


# -- strict answers --------------------------------------------------------------------------------


def test_plain_json_answer_is_read_field_by_field_and_strict() -> None:
    answer = parse_answer(ANSWER)

    assert answer.strict is True
    assert answer.notes == ()
    read = answer.fragments[0]
    assert read.content == FRAGMENT["content"]
    assert read.quote == FRAGMENT["quote"]
    assert read.category is Category.VALUES_BELIEFS
    assert read.subcategory == "purpose"
    assert read.fragment_type is FragmentType.PARAPHRASE
    assert (read.context, read.insight) == (FRAGMENT["context"], FRAGMENT["insight"])
    assert read.relevance == 8
    assert read.confidence == 0.9
    assert read.tags == ("career", "purpose")
    assert read.notes == ()
    assert read.raw == {}  # read as asked: its fields are the record


def test_strict_answer_with_several_fragments_and_surrounding_whitespace() -> None:
    answer = parse_answer("\n  " + json.dumps({"fragments": [FRAGMENT, OTHER]}, indent=2) + "\n")

    assert answer.strict is True
    assert [f.fragment_type for f in answer.fragments] == [
        FragmentType.PARAPHRASE, FragmentType.PATTERN]
    assert all(f.notes == () for f in answer.fragments)


def test_exact_empty_answer_is_strict_with_no_fragments() -> None:
    answer = parse_answer('{"fragments": []}')

    assert answer == ParsedAnswer(fragments=(), strict=True, notes=())


@pytest.mark.parametrize(
    "changes",
    [
        {"category": "Cognitive"},  # right value, wrong case
        {"relevance": "8"},  # a number as a string
        {"confidence": 90},  # a percentage
        {"tags": "career, purpose"},  # one string
        {"speaker": "Ana"},  # an extra field
    ],
)
def test_any_coercion_makes_a_valid_json_answer_not_strict(changes: dict[str, Any]) -> None:
    answer = parse_answer(json.dumps({"fragments": [{**FRAGMENT, **changes}]}))

    assert answer.strict is False
    assert answer.fragments[0].notes != ()


def test_a_missing_field_makes_the_answer_not_strict() -> None:
    answer = parse_answer(json.dumps({"fragments": [without("insight")]}))

    assert answer.strict is False
    assert answer.fragments[0].notes == ("missing fields read as defaults: insight",)


# -- the table: shapes real models send -----------------------------------------------------------

TWO = {"fragments": [FRAGMENT, OTHER]}


@pytest.mark.parametrize(
    ("text", "note"),
    [
        # prose around a fenced block
        (f"Sure! Here are the fragments:\n```json\n{json.dumps(TWO)}\n```\nAnything else?",
         "read the JSON inside a code fence"),
        (f"```\n{json.dumps(TWO, indent=2)}\n```", "read the JSON inside a code fence"),
        (f"```JSON\n{json.dumps(TWO)}", "read the JSON inside a code fence"),  # never closed
        # prose around an unfenced block
        (f"Here you go: {json.dumps(TWO)}", "read the JSON after prose"),
        (f"{json.dumps(TWO)}\n\nI hope this helps!", "ignored the text after the JSON"),
        (f"Answer [v2] {{draft}}: {json.dumps(TWO)} <|end|>", "read the JSON after prose"),
        # a bare array
        (json.dumps([FRAGMENT, OTHER]), "read a bare array"),
        # wrapper objects
        (json.dumps({"data": TWO}), "read the fragments inside 'data.fragments'"),
        (json.dumps({"result": [FRAGMENT, OTHER]}), "read the fragments inside 'result'"),
        (json.dumps({"mius": [FRAGMENT, OTHER]}), "read the fragments inside 'mius'"),
        (json.dumps({"output": TWO}), "read the fragments inside 'output.fragments'"),
        (json.dumps({"response": {"items": [FRAGMENT, OTHER]}}),
         "read the fragments inside 'response.items'"),
        (json.dumps({"fragmentos": [FRAGMENT, OTHER]}), "read the fragments inside 'fragmentos'"),
        (json.dumps({"Fragments": [FRAGMENT, OTHER]}), "read the fragments inside 'Fragments'"),
        (json.dumps({"response": {"data": {"result": TWO}}}),
         "read the fragments inside 'response.data.result.fragments'"),
        (json.dumps({"extracted_units": [FRAGMENT, OTHER], "count": 2, "source": "x"}),
         "read the fragments inside 'extracted_units'"),
        (json.dumps({"person": {"analysis": TWO}}),
         "read the fragments inside 'person.analysis.fragments'"),
        (json.dumps([TWO]), "read the fragments inside '[0].fragments'"),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else None,
)
def test_wrapped_answers_are_read_with_a_note(text: str, note: str) -> None:
    answer = parse_answer(text)

    assert [f.content for f in answer.fragments] == [FRAGMENT["content"], OTHER["content"]]
    assert answer.strict is False
    assert note in answer.notes
    assert all(f.notes == () for f in answer.fragments)


def test_a_single_fragment_object_is_a_one_fragment_answer() -> None:
    answer = parse_answer(json.dumps(FRAGMENT))

    assert [f.content for f in answer.fragments] == [FRAGMENT["content"]]
    assert answer.notes == ("read a single fragment object",)
    assert not answer.strict


def test_wrappers_deeper_than_three_levels_are_not_searched() -> None:
    deep = {"a": {"b": {"c": {"d": TWO}}}}

    with pytest.raises(AnswerFormatError, match='no "fragments"'):
        parse_answer(json.dumps(deep))
    assert len(parse_answer(json.dumps(deep["a"])).fragments) == 2


def test_fragments_null_is_an_answer_with_no_fragments() -> None:
    answer = parse_answer('{"fragments": null}')

    assert answer.fragments == ()
    assert answer.notes == ("read 'fragments': null as no fragments",)


REPAIRABLE = [
    # trailing commas
    '{"fragments": [{"content": "Ana is kind.", "tags": ["a", "b",],},]}',
    # single quotes, with an apostrophe inside a string
    "{'fragments': [{'content': 'Ana is kind.', 'quote': 'She\\'s kind to everyone.'}]}",
    # comments of three kinds
    '{"fragments": [ // the first one\n{"content": "Ana is kind." /* short */}\n# done\n]}',
    # an unescaped newline inside a string
    '{"fragments": [{"content": "Ana is kind.\nShe helps."}]}',
    # unquoted keys
    '{fragments: [{content: "Ana is kind.", relevance: 7}]}',
    # Python literals
    "{'fragments': [{'content': 'Ana is kind.', 'context': None, 'verified': True}]}",
    # the closing brace forgotten after a complete fragment
    '{"fragments": [{"content": "Ana is kind."}]',
    # prose, then broken JSON
    "Sure! Here it is: {'fragments': [{'content': 'Ana is kind.'}]} Bye.",
]


@pytest.mark.parametrize("text", REPAIRABLE)
def test_broken_json_is_repaired_with_a_note(text: str) -> None:
    answer = parse_answer(text)

    assert answer.fragments[0].content.startswith("Ana is kind.")
    assert "repaired the JSON (json-repair)" in answer.notes
    assert answer.strict is False


def test_repair_keeps_the_values_it_reads() -> None:
    text = "{'fragments': [{'content': 'Ana is kind.', 'relevance': '7', 'ok': True, 'x': None,}]}"

    read = only(text)

    assert read.relevance == 7
    assert read.raw == {"content": "Ana is kind.", "relevance": "7", "ok": True, "x": None}
    assert has_note(read.notes, "extra fields kept in raw: ok, x")


@pytest.mark.parametrize(
    ("text", "contents"),
    [
        # unescaped quotes inside a string
        ('{"fragments": [{"content": "Ana said "no" twice.", "quote": "said \\"no\\""}]}',
         ["Ana said \"no\" twice."]),
        # an apostrophe inside a single-quoted string
        ("{'fragments': [{'content': 'Ana\\'s idea is good.'}]}", ["Ana's idea is good."]),
        # missing commas between items and between members
        ('[{"content": "Ana is kind."}\n{"content": "Ana plans."}]',
         ["Ana is kind.", "Ana plans."]),
        ('{"fragments": [{"content": "Ana is kind." "quote": "kind"}]}', ["Ana is kind."]),
        # escapes, a surrogate pair among them, survive the repair
        ('{"fragments": [{"content": "Jos\\u00e9 \\ud83d\\ude00 left",}]}', ["José 😀 left"]),
    ],
)
def test_other_slips_json_repair_reads_safely_are_repaired(text: str, contents: list[str]) -> None:
    answer = parse_answer(text)

    assert [f.content for f in answer.fragments] == contents
    assert "repaired the JSON (json-repair)" in answer.notes


@pytest.mark.parametrize(
    "text",
    [
        "{fragments: [{content: Ana is kind}]}",  # unquoted values
        '{"fragments": [{"content": "x", "confidence": high}]}',  # an unquoted word
        '{"fragments": [{"content": "x", "relevance": 8/10}]}',  # unquoted arithmetic
    ],
)
def test_json_too_irregular_for_a_safe_repair_is_a_format_error(text: str) -> None:
    with pytest.raises(AnswerFormatError, match="not valid JSON"):
        parse_answer(text)


def test_a_string_the_repair_reads_otherwise_than_its_quotes_is_dropped() -> None:
    # A missing comma before an unquoted key makes json-repair swallow the key into the text.
    text = '{"fragments": [{"content": "Ana is kind."\n quote: "kind"}, {"content": "Ana plans."}]}'

    answer = parse_answer(text)

    assert [f.content for f in answer.fragments] == ["Ana plans."]
    assert answer.notes == ("repaired the JSON (json-repair)",
                            "dropped fragment 1: the repair changed its content")


def test_other_texts_the_repair_changes_are_left_empty_with_a_note() -> None:
    # json-repair drops the "\\f" escape; the fragment stays, its insight does not.
    text = ('{"fragments": [{"content": "Ana is kind.", "insight": "warm\\fhearted",'
            ' "context": 3,}]}')

    read = only(text)

    assert (read.content, read.insight, read.context) == ("Ana is kind.", "", "3")
    assert read.notes[-1] == "insight left empty: the repair changed it"


def test_an_answer_the_repair_would_misread_is_a_format_error() -> None:
    # json-repair reads the rest of the answer into the first string here.
    text = "{'fragments': [{'content': 'Ana's idea is good.'}, {'content': 'Ana plans.'}]}"

    with pytest.raises(AnswerFormatError, match="the repair changed its content"):
        parse_answer(text)


@pytest.mark.parametrize(
    "text",
    [
        "{" + "]x y{*/" * 3000 + "}",
        "{" + "1}-,```{" * 3000,
        '{"fragments": [true[' + '"true[' * 3000 + "]",
        "{" + "".join(f"k{i}: b, " for i in range(3000)) + "}",
        "{'a': '" + "x'y" * 3000 + "'}",
        '{"a": ' + '"x" ' * 5000 + "}",
    ],
    ids=lambda text: repr(text[:12]),
)
def test_input_that_would_make_json_repair_slow_is_not_given_to_it(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # These take json-repair from seconds to minutes (it looks ahead at every step).
    calls: list[str] = []

    def counted(text: str, **_: object) -> object:
        calls.append(text)
        return None

    monkeypatch.setattr(parsing.json_repair, "loads", counted)

    started = time.perf_counter()
    with pytest.raises(AnswerFormatError):
        parse_answer(text)
    assert calls == []
    assert time.perf_counter() - started < 1


def test_prose_and_fence_notes_come_with_the_repair_note() -> None:
    answer = parse_answer("Here:\n```json\n{'fragments': [{'content': 'Ana is kind.'}]}\n```")

    assert answer.notes == ("read the JSON inside a code fence", "repaired the JSON (json-repair)")


def test_json_repair_is_called_only_after_the_stdlib_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counted(text: str, **_: object) -> object:
        calls.append(text)
        return {"fragments": []}

    monkeypatch.setattr(parsing.json_repair, "loads", counted)

    parse_answer(f"Prose {{draft}} then {ANSWER} and more.")
    parse_answer(f"```json\n{ANSWER}\n```")
    assert calls == []
    parse_answer("Prose first. {'fragments': []} and prose after.")
    assert calls == ["{'fragments': []}"]  # once, on the candidate region only


@pytest.mark.parametrize(
    ("changes", "attribute", "expected", "note"),
    [
        ({"relevance": "8"}, "relevance", 8, "relevance '8' read as 8"),
        ({"relevance": "8/10"}, "relevance", 8, "relevance '8/10' read as 8"),
        ({"relevance": "8.5"}, "relevance", 8, "relevance '8.5' read as 8"),
        ({"relevance": 7.6}, "relevance", 8, "relevance 7.6 read as 8"),
        ({"relevance": "high"}, "relevance", 8, "relevance 'high' read as 8"),
        ({"relevance": "Medium"}, "relevance", 5, "relevance 'Medium' read as 5"),
        ({"relevance": "low"}, "relevance", 3, "relevance 'low' read as 3"),
        ({"relevance": "alta"}, "relevance", 8, "relevance 'alta' read as 8"),
        ({"relevance": "média"}, "relevance", 5, "relevance 'média' read as 5"),
        ({"relevance": "baixa"}, "relevance", 3, "relevance 'baixa' read as 3"),
        ({"confidence": "0.8"}, "confidence", 0.8, "confidence '0.8' read as 0.8"),
        ({"confidence": "0,8"}, "confidence", 0.8, "confidence '0,8' read as 0.8"),
        ({"confidence": 85}, "confidence", 0.85, "confidence 85 read as a percentage: 0.85"),
        ({"confidence": "85%"}, "confidence", 0.85,
         "confidence '85%' read as a percentage: 0.85"),
        ({"confidence": "85"}, "confidence", 0.85, "confidence '85' read as a percentage: 0.85"),
        ({"confidence": "8/10"}, "confidence", 0.8, "confidence '8/10' read as 0.8"),
        ({"confidence": "high"}, "confidence", 0.9, "confidence 'high' read as 0.9"),
        ({"confidence": "MEDIUM"}, "confidence", 0.7, "confidence 'MEDIUM' read as 0.7"),
        ({"confidence": "low"}, "confidence", 0.5, "confidence 'low' read as 0.5"),
        ({"confidence": "questionable"}, "confidence", 0.3,
         "confidence 'questionable' read as 0.3"),
        ({"confidence": "alta"}, "confidence", 0.9, "confidence 'alta' read as 0.9"),
        ({"confidence": "média"}, "confidence", 0.7, "confidence 'média' read as 0.7"),
        ({"confidence": "media"}, "confidence", 0.7, "confidence 'media' read as 0.7"),
        ({"confidence": "baixa"}, "confidence", 0.5, "confidence 'baixa' read as 0.5"),
        ({"confidence": "questionável"}, "confidence", 0.3,
         "confidence 'questionável' read as 0.3"),
    ],
)
def test_scores_as_strings_percentages_and_bands_are_read_with_a_note(
        changes: dict[str, Any], attribute: str, expected: float, note: str) -> None:
    answer = parse_answer(json.dumps({"fragments": [{**FRAGMENT, **changes}]}))

    read = answer.fragments[0]
    assert getattr(read, attribute) == pytest.approx(expected)
    assert read.notes == (note,)
    assert answer.strict is False


def test_band_values_sit_inside_the_design_bands() -> None:
    for band, value in CONFIDENCE_BAND_VALUES.items():
        assert ConfidenceBand.of(value) is band
    assert set(CONFIDENCE_BAND_VALUES) == set(ConfidenceBand)
    assert RELEVANCE_BAND_VALUES == {"high": 8, "medium": 5, "low": 3}


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("fragment_type", "Direct_Quote", FragmentType.DIRECT_QUOTE),
        ("fragment_type", "direct quote", FragmentType.DIRECT_QUOTE),
        ("fragment_type", "DIRECT-QUOTE", FragmentType.DIRECT_QUOTE),
        ("fragment_type", "Anecdote", FragmentType.ANECDOTE),
        ("fragment_type", "quote", FragmentType.DIRECT_QUOTE),
        ("fragment_type", "citation", FragmentType.DIRECT_QUOTE),
        ("fragment_type", "story", FragmentType.ANECDOTE),
        ("fragment_type", "habit", FragmentType.PATTERN),
        ("fragment_type", "summary", FragmentType.SYNTHESIS),
        ("category", "values & beliefs", Category.VALUES_BELIEFS),
        ("category", "Values and Beliefs", Category.VALUES_BELIEFS),
        ("category", "Values & Beliefs", Category.VALUES_BELIEFS),
        ("category", "Meta-cognitive", Category.META_COGNITIVE),
        ("category", "COGNITIVE", Category.COGNITIVE),
        ("category", "BEH", Category.BEHAVIORAL),
        ("category", "Emotions", Category.EMOTIONAL),
    ],
)
def test_enum_values_in_any_case_or_spelling_are_read_with_a_note(
        field: str, raw: str, expected: Category | FragmentType) -> None:
    read = fragment(**{field: raw})

    assert getattr(read, field) is expected
    assert read.notes == (f"{field} '{raw}' read as {expected.value}",)


PORTUGUESE_CATEGORIES = [
    ("Biográfico", Category.BIOGRAPHICAL),
    ("Biografico", Category.BIOGRAPHICAL),
    ("Cognitivo", Category.COGNITIVE),
    ("Comunicativo", Category.COMMUNICATIVE),
    ("Comunicacional", Category.COMMUNICATIVE),
    ("Comportamental", Category.BEHAVIORAL),
    ("Valores e Crenças", Category.VALUES_BELIEFS),
    ("Valores & Crenças", Category.VALUES_BELIEFS),
    ("valores e crencas", Category.VALUES_BELIEFS),
    ("Social", Category.SOCIAL),
    ("Emocional", Category.EMOTIONAL),
    ("Metacognitivo", Category.META_COGNITIVE),
    ("Meta-cognitivo", Category.META_COGNITIVE),
]
PORTUGUESE_TYPES = [
    ("Citação direta", FragmentType.DIRECT_QUOTE),
    ("citacao direta", FragmentType.DIRECT_QUOTE),
    ("Paráfrase", FragmentType.PARAPHRASE),
    ("Descrição", FragmentType.DESCRIPTION),
    ("Exemplo", FragmentType.EXAMPLE),
    ("Padrão", FragmentType.PATTERN),
    ("Anedota", FragmentType.ANECDOTE),
    ("Análise", FragmentType.ANALYSIS),
    ("Síntese", FragmentType.SYNTHESIS),
]


@pytest.mark.parametrize(("raw", "expected"), PORTUGUESE_CATEGORIES)
def test_portuguese_category_names_are_read(raw: str, expected: Category) -> None:
    read = fragment(category=raw)

    assert read.category is expected
    assert read.notes == (f"category '{raw}' read as {expected.value}",)
    assert Category.parse(raw) is expected
    assert Category.lookup(raw) is expected


@pytest.mark.parametrize(("raw", "expected"), PORTUGUESE_TYPES)
def test_portuguese_fragment_type_names_are_read(raw: str, expected: FragmentType) -> None:
    read = fragment(fragment_type=raw)

    assert read.fragment_type is expected
    assert read.notes == (f"fragment_type '{raw}' read as {expected.value}",)
    assert FragmentType.parse(raw) is expected


def test_comportamental_is_behavioral_not_communicative() -> None:
    assert Category.parse("Comportamental") is Category.BEHAVIORAL
    assert Category.parse("comunicação") is Category.COMMUNICATIVE


@pytest.mark.parametrize("value", list(Category))
def test_every_category_value_reads_as_itself(value: Category) -> None:
    assert Category.lookup(value.value) is value
    assert Category.lookup(value.code) is value


@pytest.mark.parametrize("value", list(FragmentType))
def test_every_fragment_type_value_reads_as_itself(value: FragmentType) -> None:
    assert FragmentType.lookup(value.value) is value


@pytest.mark.parametrize("raw", ["", "   ", None, "-", "xyzzy"])
def test_lookup_is_none_for_an_empty_or_unknown_label_and_parse_falls_back(
        raw: str | None) -> None:
    assert Category.lookup(raw) is None
    assert FragmentType.lookup(raw) is None
    assert Category.parse(raw) is Category.GENERAL
    assert FragmentType.parse(raw) is FragmentType.PARAPHRASE


def test_unknown_taxonomy_values_fall_back_and_keep_the_raw_value() -> None:
    answer = parse_answer(json.dumps(
        {"fragments": [{**FRAGMENT, "fragment_type": "story-ish", "category": "Culinary"}]}))

    read = answer.fragments[0]
    assert read.fragment_type is FragmentType.PARAPHRASE
    assert read.category is Category.GENERAL
    assert read.raw["fragment_type"] == "story-ish"
    assert read.raw["category"] == "Culinary"
    assert read.notes == (
        "category 'Culinary' is not in the taxonomy: read as general",
        "fragment_type 'story-ish' is not in the taxonomy: read as paraphrase",
    )
    assert not answer.strict


def test_empty_category_and_type_fall_back_without_a_note() -> None:
    read = fragment(category="", fragment_type="  ")

    assert (read.category, read.fragment_type) == (Category.GENERAL, FragmentType.PARAPHRASE)
    assert read.notes == ()


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("Career, purpose ,career", ("career", "purpose")),
        ("career; purpose", ("career", "purpose")),
        ("career", ("career",)),
    ],
)
def test_tags_given_as_one_string_are_split(tags: str, expected: tuple[str, ...]) -> None:
    read = fragment(tags=tags)

    assert read.tags == expected
    assert read.notes == ("tags given as one string",)


def test_a_missing_quote_is_empty_with_a_note() -> None:
    answer = parse_answer(json.dumps({"fragments": [without("quote")]}))

    read = answer.fragments[0]
    assert read.quote == ""
    assert read.notes == ("no quote: the content is grounded instead",)
    assert not answer.strict


@pytest.mark.parametrize("quote", [None, "", "   "])
def test_a_null_or_blank_quote_is_also_no_quote(quote: str | None) -> None:
    assert fragment(quote=quote).notes == ("no quote: the content is grounded instead",)


def test_missing_optional_fields_get_defaults_with_a_note() -> None:
    answer = parse_answer(json.dumps({"fragments": [{"content": "Ana plans ahead."}]}))

    read = answer.fragments[0]
    assert (read.quote, read.subcategory, read.context, read.insight) == ("", "", "", "")
    assert read.category is Category.GENERAL
    assert read.fragment_type is FragmentType.PARAPHRASE
    assert (read.relevance, read.confidence, read.tags) == (
        DEFAULT_RELEVANCE, DEFAULT_CONFIDENCE, ())
    assert read.notes == (
        "no quote: the content is grounded instead",
        "missing fields read as defaults: category, subcategory, fragment_type, context, "
        "insight, relevance, confidence, tags",
    )
    assert not answer.strict


def test_null_fields_are_missing_fields() -> None:
    read = fragment(context=None, relevance=None, tags=None)

    assert (read.context, read.relevance, read.tags) == ("", DEFAULT_RELEVANCE, ())
    assert read.notes == ("missing fields read as defaults: context, relevance, tags",)


def test_extra_fields_are_kept_in_the_raw_record_with_a_note() -> None:
    text = json.dumps({"fragments": [{**FRAGMENT, "speaker": "Ana", "line": 3}], "notes": "x"})

    answer = parse_answer(text)

    read = answer.fragments[0]
    assert read.content == FRAGMENT["content"]
    assert read.raw == {**FRAGMENT, "speaker": "Ana", "line": 3}
    assert read.notes == ("extra fields kept in raw: speaker, line",)
    assert not answer.strict


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("fragmentType", "fragment_type"),
        ("FragmentType", "fragment_type"),
        ("type", "fragment_type"),
        ("tipo", "fragment_type"),
        ("categoria", "category"),
        ("Category", "category"),
        ("subcategoria", "subcategory"),
        ("subCategory", "subcategory"),
        ("contexto", "context"),
        ("relevancia", "relevance"),
        ("relevância", "relevance"),
        ("confianca", "confidence"),
        ("confiança", "confidence"),
        ("citacao", "quote"),
        ("citação", "quote"),
    ],
)
def test_fields_spelled_otherwise_are_read_with_a_note(key: str, field: str) -> None:
    item = {**without(field), key: FRAGMENT[field]}

    answer = parse_answer(json.dumps({"fragments": [item]}))

    read = answer.fragments[0]
    assert getattr(read, field) == FRAGMENT[field]
    assert read.notes == (f"field '{key}' read as {field}",)
    assert read.raw[key] == FRAGMENT[field]
    assert not answer.strict


@pytest.mark.parametrize("key", ["text", "miu", "fragment", "conteudo", "conteúdo", "Content"])
def test_content_under_another_name_is_read_when_content_is_absent(key: str) -> None:
    item = {**without("content"), key: FRAGMENT["content"]}

    read = only(json.dumps({"fragments": [item]}))

    assert read.content == FRAGMENT["content"]
    assert read.notes == (f"field '{key}' read as content",)


def test_content_wins_over_its_other_names() -> None:
    read = fragment(text="Ana said she left banking.")

    assert read.content == FRAGMENT["content"]
    assert read.notes == ("extra fields kept in raw: text",)


# -- rule 1: per-fragment problems do not sink the answer ------------------------------------------


def test_unusable_fragments_are_dropped_with_a_note() -> None:
    items = [FRAGMENT, "Ana likes tea.", {"quote": "x"}, {**FRAGMENT, "content": "   "}, OTHER,
             {"content": "a" * (MAX_CONTENT_CHARS + 1)}, {"content": "…!?"}, 42]

    answer = parse_answer(json.dumps({"fragments": items}))

    assert [f.content for f in answer.fragments] == [FRAGMENT["content"], OTHER["content"]]
    assert answer.notes == (
        "dropped fragment 2: not an object",
        "dropped fragment 3: no content",
        "dropped fragment 4: no content",
        f"dropped fragment 6: content is longer than {MAX_CONTENT_CHARS} characters",
        "dropped fragment 7: content has no letters or digits",
        "dropped fragment 8: not an object",
    )
    assert not answer.strict


def test_an_answer_with_items_and_none_usable_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError) as caught:
        parse_answer(json.dumps({"fragments": [{"quote": "x"}, "y", {"content": ""}, {}]}))

    assert caught.value.problem == (
        "no usable fragment in the answer: fragment 1: no content; fragment 2: not an object; "
        "fragment 3: no content (and 1 more)"
    )
    assert isinstance(caught.value, ValueError)


def test_missing_content_is_a_format_error_when_it_is_the_only_fragment() -> None:
    with pytest.raises(AnswerFormatError, match="fragment 1: no content"):
        parse_answer(json.dumps({"fragments": [{"quote": "x"}]}))


def test_content_longer_than_the_limit_is_a_format_error_when_nothing_else_is_left() -> None:
    with pytest.raises(AnswerFormatError, match=str(MAX_CONTENT_CHARS)):
        parse_answer(json.dumps([{**FRAGMENT, "content": "a" * (MAX_CONTENT_CHARS + 1)}]))


def test_content_of_exactly_the_limit_is_read() -> None:
    text = "a" * MAX_CONTENT_CHARS

    assert fragment(content=text, quote="").content == text


@pytest.mark.parametrize("text", ["[]", "Nothing to extract here: []", '{"mius": []}'])
def test_valid_empty_answers_have_no_fragments_and_are_not_errors(text: str) -> None:
    answer = parse_answer(text)

    assert answer.fragments == ()
    assert answer.strict is False


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty_answer_is_a_format_error(text: str | None) -> None:
    with pytest.raises(AnswerFormatError, match="empty"):
        parse_answer(text)


@pytest.mark.parametrize(
    "text",
    ["I could not find any fragments in this text.", "See [1] and [note] {draft}.", "42",
     '"a JSON string"'],
)
def test_text_without_a_json_object_is_a_format_error(text: str) -> None:
    with pytest.raises(AnswerFormatError, match="no JSON"):
        parse_answer(text)


@pytest.mark.parametrize("text", ['{"result": "ok", "count": 3}', '{"a": {"b": 1}}', "{}"])
def test_object_without_fragments_is_a_format_error(text: str) -> None:
    with pytest.raises(AnswerFormatError, match='no "fragments"'):
        parse_answer(text)


def test_fragments_that_are_not_a_list_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match='"fragments" value is not a list'):
        parse_answer('{"fragments": "none found"}')


def test_more_fragments_than_the_limit_is_a_format_error() -> None:
    with pytest.raises(AnswerFormatError, match="fragments"):
        parse_answer(json.dumps([FRAGMENT] * (MAX_FRAGMENTS + 1)))


def test_an_example_object_in_prose_does_not_hide_the_answer() -> None:
    text = f'For instance {{"note": "example"}} or []; the answer: {ANSWER}'

    assert only(text).content == FRAGMENT["content"]


# -- rule 2: truncation is an error, not a partial answer ------------------------------------------


def test_truncated_answer_is_a_format_error_not_a_partial_answer() -> None:
    truncated = json.dumps({"fragments": [FRAGMENT, FRAGMENT]}, indent=2)[:-40]

    with pytest.raises(AnswerFormatError, match="not valid JSON") as caught:
        parse_answer(truncated)
    assert "truncated" in caught.value.problem


@pytest.mark.parametrize(
    "text",
    [
        '{"fragments": [{"content": "Ana left bank',  # mid-string
        '{"fragments": [{"content": "Ana left banking.", "relevance": 8',  # after a number
        '{"fragments": [{"content": "Ana left banking.", "tags": ["a", "b"]',  # item left open
        '{"fragments": [{"content": "Ana left banking."}, ',  # after a comma
        '[{"content": "Ana left banking."}, {"content": "Ana pl',
        "```json\n{'fragments': [{'content': 'Ana left bank",
        f"Sure! {ANSWER[:-30]}",
    ],
)
def test_answers_cut_short_are_reported_as_maybe_truncated(text: str) -> None:
    with pytest.raises(AnswerFormatError, match="may be truncated"):
        parse_answer(text)


def test_no_prefix_of_an_answer_reads_as_a_partial_fragment() -> None:
    full = json.dumps({"fragments": [FRAGMENT, OTHER]}, indent=1)
    originals = [parse_answer(json.dumps(item)).fragments[0] for item in (FRAGMENT, OTHER)]

    for cut in range(1, len(full)):
        try:
            answer = parse_answer(full[:cut])
        except AnswerFormatError:
            continue
        for read in answer.fragments:
            assert dataclasses.replace(read, notes=()) in originals, (cut, read)


# -- rule 3: no fragment whose text is not in the answer -------------------------------------------


def test_text_invented_by_the_repair_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    invented = {"fragments": [
        {"content": "Ana is kind."},
        {"content": "Ana founded three companies."},
        {"content": "Ana is kind.", "quote": "I never lie."},
    ]}
    monkeypatch.setattr(parsing.json_repair, "loads", lambda text, **_: invented)

    answer = parse_answer("{'fragments': [{'content': 'Ana is kind.'}]}")

    assert [f.content for f in answer.fragments] == ["Ana is kind."]
    assert "dropped fragment 2: its content is not in the answer" in answer.notes
    assert "dropped fragment 3: its quote is not in the answer" in answer.notes


def test_escaped_text_counts_as_present() -> None:
    text = (r'{"fragments": [{"content": "Jos\u00e9 said \"n\u00e3o\" \ud83d\ude00\nthen left",'
            r' "quote": "C:\\path\/x \u2014 ok"}]}')

    read = only(text)

    assert read.content == 'José said "não" 😀\nthen left'
    assert read.quote == "C:\\path/x — ok"


def test_text_matching_ignores_case_and_punctuation_only() -> None:
    read = only("{'fragments': [{'content': 'ANA, is — kind!', 'quote': \"Ana's kind\"}]}")

    assert read.content == "ANA, is — kind!"


# -- rule 4: robust against anything ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" * 100_000,
        '{"a":' * 50_000,
        '[{"content": "x", "n": ' + "[" * 100_000,
        "```json\n" + "[" * 5000 + "x",
        '{"fragments": [{"content": "Ana", "relevance": ' + "1" * 5000 + "}]}",
        '{"fragments": [{"content": "Ana", "relevance": 1e999}]}',
        "{'fragments': [{'content': 'Ana', 'relevance': " + "9" * 5000 + "}]}",
        '{"fragments": [{"content": "Ana\x00 is \ud800 here"}]}',
        '{"fragments": [{"content": "Ana \\ud800 is here", "quote": "\\udc00"}]}',
        "\x00" * 1000,
        "\ud800{\udfff",
        "/*" * 10_000 + "{",
        "{" + "/" * 10_000,
        "{#" * 10_000,
        "{'" * 10_000,
        '{"' + "\\" * 10_001,
    ],
    ids=lambda text: repr(text[:20]),
)
def test_hostile_input_raises_only_format_errors(text: str) -> None:
    try:
        answer = parse_answer(text)
    except AnswerFormatError:
        return
    assert isinstance(answer, ParsedAnswer)


def test_answers_over_the_size_limit_are_refused_unread() -> None:
    text = json.dumps({"fragments": [FRAGMENT], "padding": "x" * MAX_ANSWER_CHARS})

    with pytest.raises(AnswerFormatError, match="too long"):
        parse_answer(text)


def test_large_broken_answers_are_read_or_refused_quickly() -> None:
    item = {"content": "Ana plans every week on Sunday evenings.", "tags": ["a", "b"]}
    many = json.dumps({"fragments": [item] * MAX_FRAGMENTS})
    broken = many.replace("]}", ",]}")  # trailing commas everywhere
    huge = broken + " " * 10 + "x" * 300_000

    started = time.perf_counter()
    assert len(parse_answer(broken).fragments) == MAX_FRAGMENTS
    with pytest.raises(AnswerFormatError):
        parse_answer("{'a': '" + "x" * 900_000 + "',}")  # too long to repair
    parse_answer(huge)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("value", "note"),
    [
        ("NaN", "relevance NaN is not a number: read as 5"),
        ("Infinity", "relevance Infinity is not a number: read as 5"),
        ("true", "relevance true is not a number: read as 5"),
        ('"eight"', "relevance 'eight' is not a number: read as 5"),
        ("[8]", "relevance a list is not a number: read as 5"),
        ('{"v": 8}', "relevance an object is not a number: read as 5"),
    ],
)
def test_relevance_that_is_not_a_number_is_the_default_with_a_note(value: str, note: str) -> None:
    text = ANSWER.replace('"relevance": 8', f'"relevance": {value}')

    answer = parse_answer(text)

    read = answer.fragments[0]
    assert read.relevance == DEFAULT_RELEVANCE
    assert read.notes == (note,)
    assert not answer.strict
    json.dumps(read.raw, allow_nan=False)  # the raw record stays JSON-safe


@pytest.mark.parametrize("raw", [True, False, float("nan"), float("inf"), [0.5], "sure"])
def test_confidence_that_is_not_a_number_is_the_default_with_a_note(raw: object) -> None:
    read = fragment(confidence=raw)

    assert read.confidence == DEFAULT_CONFIDENCE
    assert read.notes[0].endswith(f"is not a number: read as {DEFAULT_CONFIDENCE}")


def test_unstorable_characters_are_removed_with_a_note() -> None:
    text = json.dumps({"fragments": [{**FRAGMENT, "content": "Ana\x00 left.\ud800",
                                      "tags": ["a\x00b"]}]})

    read = only(text)

    assert read.content == "Ana left."
    assert read.tags == ("ab",)
    assert read.notes == ("removed characters that cannot be stored from content",
                          "removed characters that cannot be stored from tags")
    json.dumps(read.raw, ensure_ascii=False).encode()  # storable as UTF-8


def test_the_raw_record_is_small() -> None:
    extra = {"essay": "x" * 10_000, "deep": [[[[["x"]]]]], "long": list(range(1000)),
             **{f"k{i}": i for i in range(100)}}

    read = fragment(**extra)

    assert len(read.raw) == 30
    assert list(read.raw)[:13] == [*FRAGMENT, "essay", "deep", "long"]
    assert len(read.raw["essay"]) == 2000
    assert read.raw["deep"] == [[["…"]]]
    assert read.raw["long"] == list(range(50))
    assert read.notes == ("extra fields kept in raw: essay, deep, long, k0, k1 (and 98 more)",)


# -- rule 5: deterministic -------------------------------------------------------------------------


@pytest.mark.parametrize("text", [ANSWER, REPAIRABLE[1], REPAIRABLE[5],
                                  ANSWER.replace("0.9", "NaN"), json.dumps([FRAGMENT] * 3)])
def test_the_same_text_always_reads_the_same(text: str) -> None:
    assert parse_answer(text) == parse_answer(text)


# -- rule 6: numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "note"),
    [
        (7, 7, None),
        ("7", 7, "relevance '7' read as 7"),
        (7.6, 8, "relevance 7.6 read as 8"),
        (8.0, 8, "relevance 8.0 read as 8"),
        ("8/10", 8, "relevance '8/10' read as 8"),
        ("80%", 8, "relevance '80%' read as 8"),
        (0, 1, "relevance 0 clamped to 1"),
        (-3, 1, "relevance -3 clamped to 1"),
        (14, 10, "relevance 14 clamped to 10"),
        ("11", 10, "relevance '11' clamped to 10"),
        (10**30, 10, "relevance 1000000000000000000000000000000 clamped to 10"),
        (None, 5, "missing fields read as defaults: relevance"),
    ],
)
def test_relevance_is_coerced_and_clamped_into_one_to_ten(
        raw: object, expected: int, note: str | None) -> None:
    read = fragment(relevance=raw)

    assert read.relevance == expected
    assert isinstance(read.relevance, int)
    assert read.notes == ((note,) if note else ())


@pytest.mark.parametrize(
    ("raw", "expected", "note"),
    [
        (0.85, 0.85, None),
        (1, 1.0, None),
        (0, 0.0, None),
        (85, 0.85, "confidence 85 read as a percentage: 0.85"),
        ("85%", 0.85, "confidence '85%' read as a percentage: 0.85"),
        (100, 1.0, "confidence 100 read as a percentage: 1.0"),
        ("0.4", 0.4, "confidence '0.4' read as 0.4"),
        (250, 1.0, "confidence 250 clamped to 1.0"),
        ("150%", 1.0, "confidence '150%' clamped to 1.0"),
        (-0.2, 0.0, "confidence -0.2 clamped to 0.0"),
        (None, 0.5, "missing fields read as defaults: confidence"),
    ],
)
def test_confidence_accepts_fractions_and_percentages(
        raw: object, expected: float, note: str | None) -> None:
    read = fragment(confidence=raw)

    assert read.confidence == pytest.approx(expected)
    assert isinstance(read.confidence, float)
    assert read.notes == ((note,) if note else ())


# -- fields, tags, schema --------------------------------------------------------------------------


def test_content_and_text_fields_are_stripped() -> None:
    read = fragment(content="  Ana laughs at herself.\n", context=" work ", subcategory="\thumor")

    assert (read.content, read.context, read.subcategory) == (
        "Ana laughs at herself.", "work", "humor")
    assert read.notes == ()


def test_numbers_in_text_fields_are_read_as_text_and_other_values_ignored() -> None:
    read = fragment(subcategory=3, insight=["a"], context=True)

    assert (read.subcategory, read.insight, read.context) == ("3", "", "")
    assert read.notes == ("subcategory 3 read as text", "context true is not text: ignored",
                          "insight a list is not text: ignored")


def test_tags_are_stripped_lowercased_deduplicated_and_capped() -> None:
    tags = [" Career ", "career", "PURPOSE", "", *[f"t{i}" for i in range(30)]]

    read = fragment(tags=tags)

    assert read.tags[:3] == ("career", "purpose", "t0")
    assert len(read.tags) == MAX_TAGS
    assert read.notes == (f"kept the first {MAX_TAGS} of 32 tags",)


def test_tags_that_are_not_text_are_ignored_with_a_note() -> None:
    read = fragment(tags=["career", 3, None, {"x": 1}])

    assert read.tags == ("career",)
    assert read.notes == ("ignored 3 tags that are not text",)
    assert fragment(tags=7).notes == ("tags 7 is not a list: ignored",)


def test_extracted_fragment_starts_with_the_answer_fields() -> None:
    names = [field.name for field in dataclasses.fields(ExtractedFragment)]

    assert tuple(names) == (*ANSWER_FIELDS, "notes", "raw")


def test_schema_lists_every_fragment_field_as_required_for_strict_output() -> None:
    items = FRAGMENTS_JSON_SCHEMA["properties"]["fragments"]["items"]

    assert items["required"] == list(items["properties"]) == list(ANSWER_FIELDS)
    assert items["additionalProperties"] is False
    assert FRAGMENTS_JSON_SCHEMA["required"] == ["fragments"]


def test_an_answer_matching_the_schema_parses_strictly() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    payload = {"fragments": [FRAGMENT, OTHER]}

    jsonschema.validate(payload, FRAGMENTS_JSON_SCHEMA)
    answer = parse_answer(json.dumps(payload))
    assert answer.strict
    assert answer.fragments[0].tags == ("career", "purpose")
