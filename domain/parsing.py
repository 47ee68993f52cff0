"""Reading a model's extraction answer as real models send it, recording every coercion.

The prompt asks for exactly `{"fragments": [...]}` (domain/prompt.py, FRAGMENTS_JSON_SCHEMA).
Cheap and local models wrap that in prose or code fences, send a bare array or a wrapper object,
write numbers as strings, enum values in any case or in the taxonomy's Portuguese names, and now
and then JSON with trailing commas, comments or single quotes. Where the intent is plain the answer
is read anyway and each coercion is written down as a note; `ParsedAnswer.strict` says that none
was needed. Only an answer that cannot be read raises AnswerFormatError, whose `problem` feeds the
repair prompt (DESIGN §7).

Guards keep the tolerance honest. A truncated answer is an error, never a silently partial
answer. json-repair (pure Python, and slow on some garbage) is called at most once, only after
the stdlib failed, and only on a region our own reading finds regular but for the slips listed
in _inspect; a string it reads otherwise than the region's quotes delimit it is not taken. And
no fragment is accepted whose text is not in the answer itself, so that neither the repair nor
a coercion can invent text: grounding in the source (§8) comes after this.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import json_repair

from domain.model import Category, ConfidenceBand, FragmentType, label_key

MAX_CONTENT_CHARS = 5000
MAX_TAGS = 20
MAX_FRAGMENTS = 500
DEFAULT_RELEVANCE = 5
DEFAULT_CONFIDENCE = 0.5
# An answer longer than this is refused unread; json-repair (pure Python) is only given a
# candidate region up to MAX_REPAIR_CHARS, once per answer.
MAX_ANSWER_CHARS = 1_000_000
MAX_REPAIR_CHARS = 100_000

# Scores given as words. Confidence bands sit inside DESIGN §16's bands (high >= 0.8, medium
# 0.6-0.79, low 0.4-0.59, questionable < 0.4); relevance words on the 1-10 scale.
CONFIDENCE_BAND_VALUES: dict[ConfidenceBand, float] = {
    ConfidenceBand.HIGH: 0.9,
    ConfidenceBand.MEDIUM: 0.7,
    ConfidenceBand.LOW: 0.5,
    ConfidenceBand.QUESTIONABLE: 0.3,
}
RELEVANCE_BAND_VALUES: dict[str, int] = {"high": 8, "medium": 5, "low": 3}
# label_key of a band word (English, pt-BR) -> the band's English name.
_BAND_WORDS = {
    "high": "high", "alta": "high", "alto": "high",
    "medium": "medium", "media": "medium", "medio": "medium",
    "low": "low", "baixa": "low", "baixo": "low",
    "questionable": "questionable", "questionavel": "questionable",
}
_CONFIDENCE_BY_BAND = {band.value: value for band, value in CONFIDENCE_BAND_VALUES.items()}

# The raw record kept with each fragment stays small.
_RAW_STRING_CHARS = 2000
_RAW_KEYS = 30
_RAW_LIST_ITEMS = 50
_RAW_DEPTH = 4

_MAX_START_ATTEMPTS = 50
_MAX_WRAPPER_DEPTH = 3
_MAX_REPORTED_DROPS = 3
_SHOWN_CHARS = 40


class AnswerFormatError(ValueError):
    """The answer is not JSON of the required shape; `problem` says why, for the repair prompt."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclasses.dataclass(frozen=True, slots=True)
class ExtractedFragment:
    """One fragment as the model proposed it; nothing here is trusted until grounded.

    Parameters:
        content: the MIU, stripped, non-empty, at most MAX_CONTENT_CHARS.
        quote: the verbatim evidence the model claims, "" when it gave none.
        category, fragment_type: the taxonomy's values (GENERAL, PARAPHRASE when unknown).
        relevance: 1 to 10; confidence: 0 to 1.
        notes: what was coerced to read this fragment, one short sentence each.
        raw: the fragment object as the model sent it (JSON-safe, capped in size) when
            something of it was coerced (`notes`); empty when it was read as asked, since its
            fields then are the record.
    """

    content: str
    quote: str
    category: Category
    subcategory: str
    fragment_type: FragmentType
    context: str
    insight: str
    relevance: int
    confidence: float
    tags: tuple[str, ...]
    notes: tuple[str, ...]
    raw: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """The fragments of one answer; `strict` when it was exactly the JSON asked for."""

    fragments: tuple[ExtractedFragment, ...]
    strict: bool
    notes: tuple[str, ...]


_TEXT = {"type": "string"}

_ANSWER_PROPERTIES: dict[str, Any] = {
    "content": {**_TEXT, "description": "the MIU, self-contained"},
    "quote": {**_TEXT, "description": "verbatim evidence copied from the source"},
    "category": _TEXT,
    "subcategory": _TEXT,
    "fragment_type": _TEXT,
    "context": _TEXT,
    "insight": _TEXT,
    "relevance": {"type": "integer", "description": "1 to 10"},
    "confidence": {"type": "number", "description": "0 to 1"},
    "tags": {"type": "array", "items": _TEXT},
}

FRAGMENTS_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "fragments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": _ANSWER_PROPERTIES,
                # Strict structured output: every property is required.
                "required": list(_ANSWER_PROPERTIES),
                "additionalProperties": False,
            },
        }
    },
    "required": ["fragments"],
    "additionalProperties": False,
}

# The fields a model is asked for, in the schema's order (ExtractedFragment's first fields).
ANSWER_FIELDS: tuple[str, ...] = tuple(_ANSWER_PROPERTIES)

# label_key of a field name as models spell it -> the field. An exact field name always wins;
# "text", "miu" or "fragment" are read as content only when there is no "content".
_FIELD_ALIASES: dict[str, str] = {
    **{label_key(name): name for name in ANSWER_FIELDS},
    "conteudo": "content", "text": "content", "texto": "content", "miu": "content",
    "fragment": "content", "fragmento": "content",
    "citacao": "quote", "citation": "quote", "quotation": "quote",
    "categoria": "category",
    "subcategoria": "subcategory",
    "type": "fragment_type", "tipo": "fragment_type", "tipodefragmento": "fragment_type",
    "tipofragmento": "fragment_type",
    "contexto": "context",
    "relevancia": "relevance",
    "confianca": "confidence",
    "tag": "tags", "etiquetas": "tags",
}

# Keys (label_key) under which models put the fragment list, or a wrapper around it.
_LIST_KEYS = frozenset({"fragments", "fragmentos", "mius", "items", "results", "resultados"})
_WRAPPER_KEYS = frozenset({
    "data", "result", "output", "response", "answer", "extraction", "dados", "resultado",
    "resposta", "saida",
})
_CONTAINER_KEYS = _LIST_KEYS | _WRAPPER_KEYS


def parse_answer(text: str | None) -> ParsedAnswer:
    """Read a model's answer: the fragments it holds, with a note for every coercion.

    Raises AnswerFormatError when there is no JSON, when the JSON looks truncated or cannot be
    repaired, or when the answer had fragment items and none of them is usable.
    """
    if text is not None and not isinstance(text, str):
        raise AnswerFormatError("the answer is not text")
    if text is None or not text.strip():
        raise AnswerFormatError("the answer is empty")
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerFormatError(
            f"the answer is too long ({len(text)} characters; at most {MAX_ANSWER_CHARS} are read)"
        )
    try:
        return _read(text)
    except RecursionError:
        raise AnswerFormatError("the answer's JSON is nested too deeply") from None


# -- finding the JSON ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Document:
    value: object
    whole: bool  # the whole stripped text was the JSON value (stdlib json)
    notes: tuple[str, ...]
    # After a repair: the strings of the region as our own reading delimits them (stripped).
    strings: frozenset[str] | None = None


_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
# Atomic and possessive: "//////…" must not be split into comments in every possible way.
_SKIP_COMMENTS = r"\s*+(?:(?>//[^\n]*|\#[^\n]*|/\*.*?\*/)\s*+)*+"
# What follows an opening bracket when it starts the answer, even a broken one: a key (quoted or
# not) after "{", an object after "[". Prose brackets ("[v2]", "{draft}") do not.
_OPENS_OBJECT = re.compile(_SKIP_COMMENTS + r"""(?:["']|[^\W\d][\w-]*\s*:)""", re.DOTALL)
_OPENS_ARRAY = re.compile(_SKIP_COMMENTS + r"\{", re.DOTALL)


def _read(text: str) -> ParsedAnswer:
    document = _document(text)
    items, path, shape_notes = _items_of(document.value)
    if len(items) > MAX_FRAGMENTS:
        raise AnswerFormatError(
            f"the answer has {len(items)} fragments; at most {MAX_FRAGMENTS} are read per chunk"
        )
    notes = [*document.notes, *shape_notes]
    in_answer = _Skeleton(text)
    fragments: list[ExtractedFragment] = []
    dropped: list[str] = []
    for number, item in enumerate(items, start=1):
        fragment, problem = _fragment(item)
        # The standard decoder only reads what the text spells: a fragment it read is in the
        # answer by construction. A repaired region is checked.
        if fragment is not None and problem is None and document.strings is not None:
            problem = in_answer.missing_text_of(fragment)
        if fragment is not None and problem is None and document.strings is not None:
            fragment, problem = _as_delimited(fragment, document.strings)
        if fragment is None or problem is not None:
            dropped.append(f"fragment {number}: {problem}")
            notes.append(f"dropped fragment {number}: {problem}")
            continue
        fragments.append(fragment)
    if dropped and not fragments:
        shown = "; ".join(dropped[:_MAX_REPORTED_DROPS])
        more = len(dropped) - _MAX_REPORTED_DROPS
        suffix = f" (and {more} more)" if more > 0 else ""
        raise AnswerFormatError(f"no usable fragment in the answer: {shown}{suffix}")
    strict = document.whole and path == "fragments" and not notes and not any(
        fragment.notes for fragment in fragments
    )
    return ParsedAnswer(fragments=tuple(fragments), strict=strict, notes=tuple(notes))


def _document(text: str) -> _Document:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except ValueError:  # JSONDecodeError, or an integer over Python's digit limit
            pass
        else:
            return _Document(value, whole=True, notes=())
    body, notes = text, []
    for match in _FENCE.finditer(text):
        inner = match.group(1).strip()
        if inner[:1] in ("{", "["):
            body = inner
            notes.append("read the JSON inside a code fence")
            break
    return _scan_for_answer(body, notes)


def _scan_for_answer(body: str, notes: list[str]) -> _Document:
    # Try each "{" or "[" in order: prose before the JSON may hold brackets of its own. The first
    # value holding fragments wins; an empty answer ("[]") only when no other follows. A broken
    # value that starts like the answer *is* the answer: reading an object nested inside it
    # would silently return part of it, so it is repaired whole or refused.
    decoder = json.JSONDecoder()
    empty: _Document | None = None
    first_problem: AnswerFormatError | None = None
    position = 0
    for _ in range(_MAX_START_ATTEMPTS):
        start = _next_bracket(body, position)
        if start == -1:
            break
        try:
            value, end = decoder.raw_decode(body, start)
        except ValueError as exc:
            if _opens_answer(body, start):
                return _repaired(body, start, exc, notes)
            position = max(getattr(exc, "pos", start), start + 1)
            continue
        position = end
        if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            continue  # "[1]", "[see above]": prose, not fragments
        found = _Document(value, whole=False, notes=tuple(notes + _around(body, start, end)))
        try:
            items, _, _ = _items_of(value)
        except AnswerFormatError as problem:
            first_problem = first_problem or problem
            continue
        if items:
            return found
        empty = empty or found
    if empty is not None:
        return empty
    if first_problem is not None:
        raise first_problem
    raise AnswerFormatError("the answer contains no JSON object")


def _next_bracket(text: str, position: int) -> int:
    found = [i for i in (text.find("{", position), text.find("[", position)) if i != -1]
    return min(found, default=-1)


def _opens_answer(text: str, start: int) -> bool:
    pattern = _OPENS_OBJECT if text[start] == "{" else _OPENS_ARRAY
    return pattern.match(text, start + 1) is not None


def _around(body: str, start: int, end: int) -> list[str]:
    notes = []
    if body[:start].strip():
        notes.append("read the JSON after prose")
    if body[end:].strip():
        notes.append("ignored the text after the JSON")
    return notes


def _repaired(body: str, start: int, exc: ValueError, notes: list[str]) -> _Document:
    message = getattr(exc, "msg", str(exc)[:80])
    where = getattr(exc, "pos", start)
    invalid = f"the answer is not valid JSON ({message} at character {where})"
    # Only as far as a region json-repair may be given: past that it is too long either way.
    window = body[: start + MAX_REPAIR_CHARS + 1]
    scan = _inspect(window, start)
    if scan.end is None and len(window) < len(body):
        raise AnswerFormatError(f"{invalid}, and too long to repair")
    if scan.end is None and scan.looks_truncated:
        raise AnswerFormatError(f"{invalid}; it may be truncated")
    end = scan.end if scan.end is not None else len(body.rstrip())
    if end - start > MAX_REPAIR_CHARS:
        raise AnswerFormatError(f"{invalid}, and too long to repair")
    if not scan.regular:
        # Beyond the slips listed in _inspect, json-repair guesses, and some of its guesses
        # look far ahead at every step (minutes for 20 KB of garbage): ask the model instead.
        raise AnswerFormatError(invalid)
    try:
        value = json_repair.loads(body[start:end], skip_json_loads=True)
    except Exception:  # json-repair's own failures (RecursionError included) mean "unreadable"
        raise AnswerFormatError(invalid) from None
    if not isinstance(value, dict | list):
        raise AnswerFormatError(invalid)
    around = _around(body, start, end)
    strings = frozenset(
        _storable(_ESCAPE.sub(_unescaped, raw)).strip() for raw in scan.strings)
    return _Document(value, whole=False, notes=(*notes, *around, "repaired the JSON (json-repair)"),
                     strings=strings)


def _as_delimited(fragment: ExtractedFragment, strings: frozenset[str]
                  ) -> tuple[ExtractedFragment, str | None]:
    """The fragment with only texts that are whole strings as the region's own quotes delimit
    them: json-repair guesses where a broken string ends ('Ana's idea' -> "Ana's idea'}") and
    drops some escapes. A changed content or quote is a reason to drop the fragment."""
    if fragment.content not in strings:
        return fragment, "the repair changed its content"
    if fragment.quote and fragment.quote not in strings:
        return fragment, "the repair changed its quote"
    changed = [
        name for name in ("subcategory", "context", "insight")
        if (value := getattr(fragment, name)) and value not in strings
        and not _NUMBER_TEXT.fullmatch(value)
    ]
    if not changed:
        return fragment, None

    def kept(name: str) -> str:
        return "" if name in changed else str(getattr(fragment, name))

    return dataclasses.replace(
        fragment, subcategory=kept("subcategory"), context=kept("context"),
        insight=kept("insight"),
        notes=(*fragment.notes, *(f"{name} left empty: the repair changed it" for name in changed)),
    ), None


# A number read as text ("subcategory 3 read as text") was never a string of the region.
_NUMBER_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


@dataclasses.dataclass(frozen=True, slots=True)
class _Scan:
    end: int | None  # just after the bracket closing the value, None when it never closes
    in_string: bool
    open_brackets: str
    last: str  # the last significant character outside strings and comments
    regular: bool  # JSON but for the slips json-repair is trusted with
    strings: tuple[str, ...] = ()  # each string's raw text between its quotes

    @property
    def looks_truncated(self) -> bool:
        # A value cut mid-string, or anywhere but right after a closing bracket, or with a
        # list item (an object inside an array) still open, was cut: repairing it would keep a
        # part and lose the rest. Only closers missing after a complete item are repaired.
        if self.in_string or self.last not in ("}", "]"):
            return True
        first_array = self.open_brackets.find("[")
        return first_array != -1 and "{" in self.open_brackets[first_array:]


_TOKEN = re.compile(
    r"""(?P<space>\s+)
    | (?P<comment>//[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<punct>[{}\[\]:,])
    | (?P<quote>["'])
    | (?P<number>[-+]?\.?[0-9][\w.+-]*)
    | (?P<word>-?[^\W\d][\w$-]*)
    | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_STRING_END = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}
# A quote closes its string when what follows could follow a string in JSON (or an unquoted
# key): so an unescaped inner quote ("he said "no" twice") or an apostrophe ('Ana's') stays in.
_CLOSES = re.compile(r"""\s*+(?:[,:}\]{\["'/#]|\Z|[^\W\d][\w$-]*+\s*+:)""")
_LITERALS = frozenset({"true", "false", "null", "True", "False", "None", "NaN", "Infinity",
                       "-Infinity"})
_KEY, _COLON, _VALUE, _AFTER = range(4)
# json-repair looks far ahead at each quote that might close a string; a few are fine.
_MAX_STRAY_QUOTES = 16


def _inspect(text: str, start: int) -> _Scan:
    """Walk a JSON-ish value from its opening bracket to the bracket closing it.

    It is `regular` when it is JSON but for trailing commas, comments, single quotes, raw
    newlines or a few stray quotes inside strings, unquoted keys, Python literals and missing
    commas.
    """
    stack: list[str] = []
    state, regular, last = _VALUE, True, ""
    strays = 0
    strings: list[str] = []
    i = start
    while (match := _TOKEN.match(text, i)) is not None:
        kind, token, i = match.lastgroup, match.group(), match.end()
        if kind in ("space", "comment"):
            continue
        top = stack[-1] if stack else ""
        key_here = state == _KEY or (state == _AFTER and top == "{")  # a missing comma is fine
        value_here = state == _VALUE or (state == _AFTER and top == "[")
        if kind == "quote":
            if token == "'" and not (key_here or value_here):
                regular, last = False, token  # an apostrophe in prose, not a string
                continue
            end, inner_quotes = _string_end(text, i, token)
            if end is None:
                return _Scan(None, True, "".join(stack), last, regular)
            strings.append(text[i:end - 1])
            i, last = end, token
            strays += inner_quotes
            regular = regular and strays <= _MAX_STRAY_QUOTES
            state = _COLON if key_here else _AFTER
            regular = regular and (key_here or value_here)
            continue
        last = token[-1]
        if token in ("{", "["):
            regular = regular and value_here
            stack.append(token)
            state = _KEY if token == "{" else _VALUE
        elif token in ("}", "]"):
            closes = "{" if token == "}" else "["
            regular = regular and top == closes and state in (
                (_KEY, _AFTER) if token == "}" else (_VALUE, _AFTER))
            if stack:
                stack.pop()
            if not stack:
                return _Scan(i, False, "", last, regular, tuple(strings))
            state = _AFTER
        elif token == ":":
            regular = regular and state == _COLON
            state = _VALUE
        elif token == ",":
            regular = regular and state == _AFTER
            state = _KEY if top == "{" else _VALUE
        elif kind == "word" and key_here:
            state = _COLON  # an unquoted key
        elif kind == "number" or (kind == "word" and token in _LITERALS):
            regular = regular and value_here
            state = _AFTER
        else:
            regular = False  # an unquoted value, or stray punctuation
    return _Scan(None, False, "".join(stack), last, regular, tuple(strings))


def _string_end(text: str, i: int, quote: str) -> tuple[int | None, int]:
    """Just after the quote closing a string, and how many quotes inside it did not close it."""
    pattern = _STRING_END[quote]
    inner = 0
    while (found := pattern.search(text, i)) is not None:
        if found.group() == "\\":
            i = found.start() + 2
            continue
        i = found.start() + 1
        if _CLOSES.match(text, i):
            return i, inner
        inner += 1
    return None, inner


# -- the shape around the fragments ---------------------------------------------------------------


def _items_of(document: object) -> tuple[list[Any], str, list[str]]:
    """The fragment items, the path they were found at ("fragments" when exactly as asked)."""
    if isinstance(document, list):
        if len(document) == 1 and isinstance(document[0], dict) and not _is_fragment(document[0]):
            try:
                items, path, notes = _find(document[0], ["[0]"], 1)
            except AnswerFormatError:
                pass
            else:
                return items, path, notes
        return document, "[]", ["read a bare array"]
    return _find(document, [], 0)


def _find(value: object, path: list[str], depth: int) -> tuple[list[Any], str, list[str]]:
    if isinstance(value, list):
        where = ".".join(path)
        return value, where, [f"read the fragments inside '{_shown_key(where)}'"]
    if not isinstance(value, dict):
        raise AnswerFormatError('the JSON object has no "fragments" list')
    if "fragments" in value:
        inner = value["fragments"]
        where = ".".join([*path, "fragments"])
        if isinstance(inner, list):
            notes = [] if where == "fragments" else [f"read the fragments inside '{where}'"]
            return inner, where, notes
        if inner is None:
            return [], where, [f"read '{where}': null as no fragments"]
        if isinstance(inner, dict) and _is_fragment(inner):
            return [inner], where, [f"read a single fragment object inside '{where}'"]
        if isinstance(inner, dict) and depth < _MAX_WRAPPER_DEPTH:
            return _find(inner, [*path, "fragments"], depth + 1)
        raise AnswerFormatError('the "fragments" value is not a list')
    if depth < _MAX_WRAPPER_DEPTH:
        for key, inner in value.items():
            if isinstance(inner, dict | list) and _key_of(key) in _CONTAINER_KEYS:
                try:
                    return _find(inner, [*path, key], depth + 1)
                except AnswerFormatError:
                    continue
    if _is_fragment(value):
        inside = f" inside '{_shown_key('.'.join(path))}'" if path else ""
        return [value], ".".join(path), [f"read a single fragment object{inside}"]
    lists = [
        (key, inner) for key, inner in value.items()
        if isinstance(inner, list) and inner and all(isinstance(item, dict) for item in inner)
    ]
    if len(lists) == 1:
        key, inner = lists[0]
        return _find(inner, [*path, key], depth + 1)
    if len(value) == 1 and depth < _MAX_WRAPPER_DEPTH:
        ((key, inner),) = value.items()
        if isinstance(inner, dict):
            return _find(inner, [*path, key], depth + 1)
    raise AnswerFormatError('the JSON object has no "fragments" list')


def _is_fragment(value: dict[str, Any]) -> bool:
    return any(
        _FIELD_ALIASES.get(_key_of(key)) == "content" and isinstance(inner, str)
        for key, inner in value.items()
    )


def _key_of(key: object) -> str:
    # Field and wrapper names are short; a long key is no known name.
    return label_key(key) if isinstance(key, str) and len(key) <= _SHOWN_CHARS else ""


def _shown_key(key: object) -> str:
    text = _storable(str(key))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


# -- one fragment ----------------------------------------------------------------------------------


def _fragment(item: object) -> tuple[ExtractedFragment | None, str | None]:
    """The fragment read from one item, or the reason it is unusable."""
    if not isinstance(item, dict):
        return None, "not an object"
    notes: list[str] = []
    fields = _fields_of(item, notes)
    missing = [
        name for name in ANSWER_FIELDS
        if name not in ("content", "quote") and fields.get(name) is None
    ]

    content = _text(fields.get("content"), "content", notes)
    if not content:
        return None, "no content"
    if len(content) > MAX_CONTENT_CHARS:
        return None, f"content is longer than {MAX_CONTENT_CHARS} characters"
    if not any(char.isalnum() for char in content):
        return None, "content has no letters or digits"
    quote = _text(fields.get("quote"), "quote", notes)
    if not quote:
        notes.append("no quote: the content is grounded instead")
    category = _enum(fields.get("category"), "category", Category.lookup, Category.GENERAL, notes)
    subcategory = _text(fields.get("subcategory"), "subcategory", notes)
    fragment_type = _enum(fields.get("fragment_type"), "fragment_type", FragmentType.lookup,
                          FragmentType.PARAPHRASE, notes)
    context = _text(fields.get("context"), "context", notes)
    insight = _text(fields.get("insight"), "insight", notes)
    relevance = _relevance(fields.get("relevance"), notes)
    confidence = _confidence(fields.get("confidence"), notes)
    tags = _tags(fields.get("tags"), notes)
    if missing:
        notes.append("missing fields read as defaults: " + ", ".join(missing))
    fragment = ExtractedFragment(
        content=content, quote=quote, category=category, subcategory=subcategory,
        fragment_type=fragment_type, context=context, insight=insight, relevance=relevance,
        confidence=confidence, tags=tags, notes=tuple(notes),
        raw=_raw_record(item) if notes else {},
    )
    return fragment, None


def _fields_of(item: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The item's values by field name; other spellings of a name are read with a note."""
    chosen = {name: name for name in ANSWER_FIELDS if name in item}
    for key in item:
        if key in chosen.values():
            continue
        name = _FIELD_ALIASES.get(_key_of(key))
        if name is not None and name not in chosen:
            chosen[name] = key
    notes.extend(
        f"field '{_shown_key(chosen[name])}' read as {name}"
        for name in ANSWER_FIELDS
        if name in chosen and chosen[name] != name
    )
    taken = set(chosen.values())
    extra = [_shown_key(key) for key in item if key not in taken]
    if extra:
        more = len(extra) - 5
        notes.append(
            "extra fields kept in raw: " + ", ".join(extra[:5])
            + (f" (and {more} more)" if more > 0 else "")
        )
    return {name: item[key] for name, key in chosen.items()}


def _text(value: object, field: str, notes: list[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _cleaned(value, field, notes).strip()
    if isinstance(value, int | float) and not isinstance(value, bool) and _finite(value):
        notes.append(f"{field} {_show(value)} read as text")
        return str(value)
    notes.append(f"{field} {_show(value)} is not text: ignored")
    return ""


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _cleaned(value: str, field: str, notes: list[str]) -> str:
    # NUL and lone surrogates cannot be stored (PostgreSQL text, UTF-8): they carry no meaning.
    if _UNSTORABLE.search(value) is None:
        return value
    paired = _SURROGATE_PAIR.sub(_paired, value)
    if _UNSTORABLE.search(paired) is None:
        return paired
    notes.append(f"removed characters that cannot be stored from {field}")
    return _UNSTORABLE.sub("", paired)


def _storable(value: str) -> str:
    # json-repair leaves "\ud83d\ude00" as two halves: pair them first (😀), then drop the rest.
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub("", _SURROGATE_PAIR.sub(_paired, value))


def _paired(match: re.Match[str]) -> str:
    high, low = match.group()[0], match.group()[1]
    return chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00))


def _enum(value: object, field: str, lookup: Callable[[str], Any], fallback: Any,
          notes: list[str]) -> Any:
    label = value if isinstance(value, str) else _text(value, field, notes)
    label = _storable(label).strip()
    if not label:
        return fallback
    found = lookup(label)
    if found is None:
        notes.append(f"{field} {_show(label)} is not in the taxonomy: read as {fallback.value}")
        return fallback
    if label != found.value:
        notes.append(f"{field} {_show(label)} read as {found.value}")
    return found


_SCORE = re.compile(r"([+-]?[0-9]{1,9}(?:[.,][0-9]{1,9})?)\s*(%|/\s*10(?:[.,]0+)?)?")


def _score(value: object, bands: Mapping[str, float]) -> tuple[float | int | None, str]:
    """A score as a number and how it was written: number, text, percent, of-ten or band."""
    if isinstance(value, bool):  # JSON true/false are not numbers, whatever Python says
        return None, "bad"
    if isinstance(value, int):
        return value, "number"
    if isinstance(value, float):
        return (value, "number") if math.isfinite(value) else (None, "bad")
    if not isinstance(value, str) or len(value) > _SHOWN_CHARS:
        return None, "bad"
    band = _BAND_WORDS.get(label_key(value), "")
    if band in bands:
        return bands[band], "band"
    match = _SCORE.fullmatch(value.strip())
    if match is None:
        return None, "bad"
    number = float(match.group(1).replace(",", "."))
    suffix = match.group(2) or ""
    return number, "percent" if suffix == "%" else "of-ten" if suffix else "text"


def _relevance(value: object, notes: list[str]) -> int:
    if value is None:
        return DEFAULT_RELEVANCE
    number, written = _score(value, RELEVANCE_BAND_VALUES)
    if number is None:
        notes.append(f"relevance {_show(value)} is not a number: read as {DEFAULT_RELEVANCE}")
        return DEFAULT_RELEVANCE
    if written == "percent":
        number /= 10
    whole = round(number) if isinstance(number, float) else number
    relevance = min(10, max(1, whole))
    if relevance != whole:
        notes.append(f"relevance {_show(value)} clamped to {relevance}")
    elif written != "number" or isinstance(value, float):
        notes.append(f"relevance {_show(value)} read as {relevance}")
    return int(relevance)


def _confidence(value: object, notes: list[str]) -> float:
    if value is None:
        return DEFAULT_CONFIDENCE
    number, written = _score(value, _CONFIDENCE_BY_BAND)
    if number is None:
        notes.append(f"confidence {_show(value)} is not a number: read as {DEFAULT_CONFIDENCE}")
        return DEFAULT_CONFIDENCE
    percent = written == "percent" or (written in ("number", "text") and 1 < number <= 100)
    if percent:
        number /= 100
    elif written == "of-ten":
        number /= 10
    confidence = 1.0 if number > 1 else 0.0 if number < 0 else float(number)
    if confidence != number:
        notes.append(f"confidence {_show(value)} clamped to {confidence}")
    elif percent:
        notes.append(f"confidence {_show(value)} read as a percentage: {confidence}")
    elif written != "number":
        notes.append(f"confidence {_show(value)} read as {confidence}")
    return confidence


_TAG_SEPARATORS = re.compile(r"[,;]")


def _tags(value: object, notes: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = _TAG_SEPARATORS.split(value)
        notes.append("tags given as one string")
    elif isinstance(value, list):
        items = value
    else:
        notes.append(f"tags {_show(value)} is not a list: ignored")
        return ()
    tags: dict[str, None] = {}  # insertion-ordered set
    not_text = 0
    removed: list[str] = []
    for item in items:
        if not isinstance(item, str):
            not_text += 1
            continue
        tag = _cleaned(item, "tags", removed).strip().lower()
        if tag:
            tags.setdefault(tag, None)
    notes.extend(removed[:1])
    if not_text:
        notes.append(f"ignored {not_text} tags that are not text")
    if len(tags) > MAX_TAGS:
        notes.append(f"kept the first {MAX_TAGS} of {len(tags)} tags")
    return tuple(tags)[:MAX_TAGS]


def _finite(value: float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _show(value: object) -> str:
    """A value as a note shows it: short, JSON-like."""
    if isinstance(value, str):
        text = _storable(value)
        return "'" + (text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…") + "'"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, int | float):
        try:
            text = repr(value)
        except ValueError:  # an integer over Python's digit limit
            return "a very large number"
        return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"
    return "an object" if isinstance(value, dict) else "a list"


def _raw_record(item: dict[str, Any]) -> dict[str, Any]:
    record = _json_safe(item, 0)
    assert isinstance(record, dict)
    return record


def _json_safe(value: object, depth: int) -> object:
    # The raw record is stored (JSON, PostgreSQL): finite numbers, storable strings, small.
    if type(value) is str:
        return value if len(value) <= _RAW_STRING_CHARS and _UNSTORABLE.search(value) is None \
            else _storable(value[:_RAW_STRING_CHARS])
    if isinstance(value, str):
        return _storable(value[:_RAW_STRING_CHARS])
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _show(value)
    if depth >= _RAW_DEPTH:
        return "…"
    if isinstance(value, list):
        return [_json_safe(inner, depth + 1) for inner in value[:_RAW_LIST_ITEMS]]
    if isinstance(value, dict):
        return {
            _storable(str(key)[:200]): _json_safe(inner, depth + 1)
            for key, inner in itertools.islice(value.items(), _RAW_KEYS)
        }
    return _storable(str(value)[:_RAW_STRING_CHARS])


# -- the fragment's text is in the answer ----------------------------------------------------------

_ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f",
    '"': '"', "'": "'", "\\": "\\", "/": "/",
}
_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is exactly str.isalnum() plus "_"


def _unescaped(match: re.Match[str]) -> str:
    high, low, single, other = match.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if single is not None:
        return chr(int(single, 16))
    return _SIMPLE_ESCAPES.get(other, match.group())


def _skeleton(text: str) -> str:
    """Case-folded letters and digits only: what must survive any re-spelling of a text."""
    return _NOT_ALNUM.sub("", text.casefold())


class _Skeleton:
    """The answer's skeleton (escapes decoded), built once and only when a fragment is read."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._skeleton: str | None = None

    def missing_text_of(self, fragment: ExtractedFragment) -> str | None:
        if self._skeleton is None:
            self._skeleton = _skeleton(_ESCAPE.sub(_unescaped, self._text))
        if _skeleton(fragment.content) not in self._skeleton:
            return "its content is not in the answer"
        if fragment.quote and _skeleton(fragment.quote) not in self._skeleton:
            return "its quote is not in the answer"
        return None
