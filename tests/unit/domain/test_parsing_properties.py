"""Properties of the answer parser: it never breaks, never invents text, and reads wrapping away."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domain.model import Category, FragmentType
from domain.parsing import MAX_TAGS, AnswerFormatError, ParsedAnswer, parse_answer

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# -- an independent reading of "the fragment's text is in the answer" ------------------------------

_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'",
           "\\": "\\", "/": "/"}
_HEX = set("0123456789abcdefABCDEF")


def decoded(text: str) -> str:
    """The text with JSON/Python string escapes decoded, read left to right."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        code = text[i + 1]
        if code == "u" and len(text) >= i + 6 and set(text[i + 2:i + 6]) <= _HEX:
            unit = int(text[i + 2:i + 6], 16)
            follows = text[i + 6:i + 8] == "\\u" and set(text[i + 8:i + 12]) <= _HEX
            low = int(text[i + 8:i + 12], 16) if follows and len(text) >= i + 12 else -1
            if 0xD800 <= unit <= 0xDBFF and 0xDC00 <= low <= 0xDFFF:
                out.append(chr(0x10000 + (unit - 0xD800) * 0x400 + (low - 0xDC00)))
                i += 12
            else:
                out.append(chr(unit))
                i += 6
        elif code in _SIMPLE:
            out.append(_SIMPLE[code])
            i += 2
        else:
            out.append(char + code)
            i += 2
    return "".join(out)


def skeleton(text: str) -> str:
    return "".join(char for char in text.casefold() if char.isalnum())


def read_or_refused(text: str) -> ParsedAnswer | None:
    try:
        return parse_answer(text)
    except AnswerFormatError:
        return None


# -- (a) and (b): arbitrary text -------------------------------------------------------------------

TOKENS = st.sampled_from([
    "{", "}", "[", "]", '"', "'", ":", ",", " ", "\n", "\\", "\\n", "\\u00e9", "\\ud83d",
    "\\ude00", "\\u", "//", "/*", "*/", "#", "```", "```json\n", "fragments", "content",
    "quote", "tags", "relevance", "confidence", "category", "data", "result", "mius",
    '"fragments"', '"content"', '"quote"', '"tags"', "Ana", "left", "the bank", "purpose",
    "Cognitivo", "alta", "8", "0.8", "85%", "8/10", "-3", "1e999", "NaN", "Infinity",
    "true", "None", "null", "\x00", "\ud800", "é", "😀", "ß", "İ",
])
TOKEN_TEXT = st.lists(TOKENS, max_size=60).map("".join)


def _holds_for(text: str) -> None:
    answer = read_or_refused(text)  # (a): nothing but AnswerFormatError escapes
    if answer is None:
        return
    # (b): every accepted fragment's text is in the answer
    whole = skeleton(decoded(text))
    for fragment in answer.fragments:
        assert fragment.content and fragment.content == fragment.content.strip()
        assert skeleton(fragment.content) in whole
        if fragment.quote:
            assert skeleton(fragment.quote) in whole
        assert 1 <= fragment.relevance <= 10
        assert 0.0 <= fragment.confidence <= 1.0
        assert len(fragment.tags) <= MAX_TAGS
        json.dumps(fragment.raw, allow_nan=False)


@SETTINGS
@given(st.text())
def test_arbitrary_text_is_read_or_refused_and_never_invents_text(text: str) -> None:
    _holds_for(text)


@SETTINGS
@given(TOKEN_TEXT)
@example('{"fragments": [{"content": "Ana \\u00e9 8"}]}')
@example("{'fragments': [{'content': 'Ana', 'quote': 'Ana\\n left',}]}")
@example('[{"content": "x\\ud83d\\ude00y"}]')
def test_json_like_text_is_read_or_refused_and_never_invents_text(text: str) -> None:
    _holds_for(text)


@SETTINGS
@given(TOKEN_TEXT, TOKEN_TEXT)
def test_json_like_text_around_an_answer_is_read_or_refused(before: str, after: str) -> None:
    _holds_for(before + '{"fragments": [{"content": "Ana left", "quote": "left"}]}' + after)


WORDS = st.text(st.sampled_from("abcdeéß xyz"), max_size=12)
SMALL_ITEMS = st.lists(
    st.dictionaries(st.sampled_from(["content", "quote", "tags", "relevance", "type", "text"]),
                    st.one_of(WORDS, st.integers(-5, 120), st.none(), st.booleans(),
                              st.lists(WORDS, max_size=3)),
                    max_size=5),
    max_size=3,
)


@st.composite
def broken_answers(draw: st.DrawFn) -> str:
    """An answer written out as JSON, indented JSON or a Python repr, then damaged a few times."""
    body = draw(st.sampled_from([{"fragments": None}, {"data": {"fragments": None}}, None]))
    items = draw(SMALL_ITEMS)
    value: object = items if body is None else {
        key: ({"fragments": items} if inner else items) for key, inner in body.items()}
    text = draw(st.sampled_from([json.dumps, repr, lambda v: json.dumps(v, indent=2)]))(value)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "cut"]))
        if edit == "insert":
            text = text[:at] + draw(TOKENS) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 3)):]
        else:
            text = text[:at]
    return text


@SETTINGS
@given(broken_answers())
@example("{'fragments': [{'content': 'Ana', 'relevance': True, 'tags': None}]}")
def test_damaged_answers_are_read_or_refused_and_never_invent_text(text: str) -> None:
    _holds_for(text)


# -- (c): a strictly serialised answer round-trips -------------------------------------------------

SAFE_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
CLEAN_TEXT = st.text(SAFE_CHARS, max_size=80).map(str.strip)
CONTENT = CLEAN_TEXT.filter(lambda text: any(char.isalnum() for char in text))
TAG = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789 -áçõé"), min_size=1,
              max_size=12).map(str.strip).filter(bool)

FRAGMENTS = st.fixed_dictionaries({
    "content": CONTENT,
    "quote": CONTENT,
    "category": st.sampled_from([member.value for member in Category]),
    "subcategory": CLEAN_TEXT,
    "fragment_type": st.sampled_from([member.value for member in FragmentType]),
    "context": CLEAN_TEXT,
    "insight": CLEAN_TEXT,
    "relevance": st.integers(1, 10),
    "confidence": st.floats(0.0, 1.0, allow_nan=False),
    "tags": st.lists(TAG, max_size=MAX_TAGS, unique=True),
})
ANSWERS = st.lists(FRAGMENTS, max_size=5)


def expected_fields(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "category": Category(item["category"]),
            "fragment_type": FragmentType(item["fragment_type"]), "tags": tuple(item["tags"])}


@SETTINGS
@given(ANSWERS, st.booleans(), st.sampled_from([None, 2]))
def test_a_strictly_serialised_answer_round_trips_exactly(
        items: list[dict[str, Any]], ascii_only: bool, indent: int | None) -> None:
    text = json.dumps({"fragments": items}, ensure_ascii=ascii_only, indent=indent)

    answer = parse_answer(text)

    assert answer.strict is True
    assert answer.notes == ()
    assert len(answer.fragments) == len(items)
    for read, item in zip(answer.fragments, items, strict=True):
        assert {name: getattr(read, name) for name in item} == expected_fields(item)
        assert read.notes == ()
        assert read.raw == {}  # read as asked: its fields are the record


def single_quoted(value: object) -> str:
    """JSON but with single-quoted strings (JSON escapes, and \\' for the quote)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{single_quoted(k)}: {single_quoted(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(single_quoted(v) for v in value) + "]"
    if isinstance(value, str):
        inner = json.dumps(value)[1:-1].replace('\\"', '"').replace("'", "\\'")
        return f"'{inner}'"
    return json.dumps(value)


@SETTINGS
@given(ANSWERS.filter(bool), st.sampled_from([None, 1]), st.floats(0.0, 1.0), st.booleans())
def test_a_cut_answer_is_refused_or_read_with_whole_fragments_only(
        items: list[dict[str, Any]], indent: int | None, where: float, single: bool) -> None:
    text = json.dumps({"fragments": items}, indent=indent)
    if single:  # the same answer with single quotes, so that a cut prefix goes to json-repair
        text = single_quoted({"fragments": items})
    # A text the repair changed is left empty with a note: compare what a cut would lose.
    kept = ("content", "quote", "category", "fragment_type", "relevance", "confidence", "tags")
    wholes = [{name: expected_fields(item)[name] for name in kept} for item in items]

    answer = read_or_refused(text[: int(len(text) * where)])

    for read in answer.fragments if answer else ():
        assert {name: getattr(read, name) for name in kept} in wholes


# -- (d): wrapping does not change the fragments ---------------------------------------------------

PROSE = st.text(st.sampled_from("abcdefghij XYZ.!?:;-\n"), max_size=40)


def wrapped(items: list[dict[str, Any]], how: str, prose: str, ascii_only: bool) -> str:
    body = {"fragments": items}
    dumps = lambda value: json.dumps(value, ensure_ascii=ascii_only)  # noqa: E731
    return {
        "prose": f"{prose} Here are the fragments: {dumps(body)}\n{prose}",
        "fence": f"{prose}\n```json\n{dumps(body)}\n```\n{prose}",
        "bare fence": f"```\n{json.dumps(items, indent=2, ensure_ascii=ascii_only)}\n```",
        "array": dumps(items),
        "data": dumps({"data": body}),
        "result": dumps({"result": items}),
        "mius": dumps({"mius": items, "count": len(items)}),
        "nested": dumps({"response": {"output": {"data": body}}}),
        "prose and wrapper": f"{prose}: {dumps({'output': items})} {prose}",
    }[how]


@SETTINGS
@given(ANSWERS.filter(bool), st.sampled_from(["prose", "fence", "bare fence", "array", "data",
                                              "result", "mius", "nested", "prose and wrapper"]),
       PROSE, st.booleans())
def test_wrapping_an_answer_yields_the_same_fragments(
        items: list[dict[str, Any]], how: str, prose: str, ascii_only: bool) -> None:
    bare = parse_answer(json.dumps({"fragments": items}))

    answer = parse_answer(wrapped(items, how, prose, ascii_only))

    assert answer.fragments == bare.fragments
    assert answer.strict is False
    assert answer.notes != ()


# -- determinism -----------------------------------------------------------------------------------


@SETTINGS
@given(TOKEN_TEXT)
def test_the_same_text_reads_the_same_every_time(text: str) -> None:
    first = read_or_refused(text)

    assert read_or_refused(text) == first
