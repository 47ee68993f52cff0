"""Reading a model's extraction answer: tolerant of wrapping, strict about the shape."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_CONTENT_CHARS = 5000
MAX_TAGS = 20
MAX_FRAGMENTS = 500
DEFAULT_RELEVANCE = 5
DEFAULT_CONFIDENCE = 0.5

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
_OUT_OF_TEN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*10\s*$")
_MAX_START_ATTEMPTS = 20
_MAX_REPORTED_ERRORS = 3


class AnswerFormatError(ValueError):
    """The answer is not JSON of the required shape; `problem` says why, for the repair prompt."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class ExtractedFragment(BaseModel):
    """One fragment as the model proposed it; nothing here is trusted until grounded."""

    model_config = ConfigDict(extra="ignore")

    content: str = Field(max_length=MAX_CONTENT_CHARS)
    quote: str = ""
    category: str = ""
    subcategory: str = ""
    fragment_type: str = ""
    context: str = ""
    insight: str = ""
    relevance: int = Field(default=DEFAULT_RELEVANCE, ge=1, le=10)
    confidence: float = Field(default=DEFAULT_CONFIDENCE, ge=0.0, le=1.0)
    tags: list[str] = Field(default_factory=list)

    @field_validator("content", mode="before")
    @classmethod
    def _content_is_text(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("content is empty")
        return value

    @field_validator(
        "quote", "category", "subcategory", "fragment_type", "context", "insight", mode="before"
    )
    @classmethod
    def _optional_text(cls, value: object) -> object:
        # Models write null or numbers for fields they have nothing to say about.
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("relevance", mode="before")
    @classmethod
    def _relevance_in_range(cls, value: object) -> object:
        if value is None:
            return DEFAULT_RELEVANCE
        number = _number(value, "relevance")
        return min(10, max(1, round(number)))

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence_in_range(cls, value: object) -> object:
        if value is None:
            return DEFAULT_CONFIDENCE
        if isinstance(value, str) and value.strip().endswith("%"):
            return min(1.0, max(0.0, _number(value.strip()[:-1], "confidence") / 100))
        number = _number(value, "confidence")
        if number > 1:
            # A percentage such as 85 means 0.85.
            number /= 100
        return min(1.0, max(0.0, number))

    @field_validator("tags", mode="before")
    @classmethod
    def _normalised_tags(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            return value
        tags: list[str] = []
        for item in value:
            tag = str(item).strip().lower()
            if tag and tag not in tags:
                tags.append(tag)
        return tags[:MAX_TAGS]


class ExtractionAnswer(BaseModel):
    """The whole answer for one chunk."""

    model_config = ConfigDict(extra="ignore")

    fragments: list[ExtractedFragment] = Field(max_length=MAX_FRAGMENTS)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = _OUT_OF_TEN.match(value)
        try:
            number = float(match.group(1) if match else value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value[:20]!r}") from None
    else:
        raise ValueError(f"{name} must be a number")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number")
    return number


def parse_answer(text: str | None) -> ExtractionAnswer:
    """Parse a model answer, tolerating code fences, prose around the JSON and a bare list."""
    if text is None or not text.strip():
        raise AnswerFormatError("the answer is empty")
    document = _first_json_value(_unfenced(text))
    payload = _as_answer_payload(document)
    try:
        return ExtractionAnswer.model_validate(payload)
    except ValidationError as exc:
        raise AnswerFormatError(_describe(exc)) from None


def _unfenced(text: str) -> str:
    # Prefer the first fenced block that holds JSON; otherwise read the text as is.
    for match in _FENCE.finditer(text):
        inner = match.group(1).strip()
        if inner[:1] in ("{", "["):
            return inner
    return text


def _first_json_value(text: str) -> object:
    # Try each "{" or "[" in order: prose before the JSON may hold brackets of its own. A failed
    # attempt that had already read a JSON string is the answer itself, broken (often truncated):
    # reading an object nested inside it would silently return part of the answer.
    decoder = json.JSONDecoder()
    position = 0
    for _ in range(_MAX_START_ATTEMPTS):
        start = _next_bracket(text, position)
        if start == -1:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            if '"' in text[start : exc.pos + 1]:
                raise AnswerFormatError(
                    f"the answer is not valid JSON ({exc.msg} at character {exc.pos}); "
                    "it may be truncated"
                ) from None
            position = max(exc.pos, start + 1)
            continue
        if _looks_like_answer(value):
            return value
        position = end
    raise AnswerFormatError("the answer contains no JSON object")


def _next_bracket(text: str, position: int) -> int:
    found = [i for i in (text.find("{", position), text.find("[", position)) if i != -1]
    return min(found, default=-1)


def _looks_like_answer(value: object) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _as_answer_payload(document: object) -> dict[str, Any]:
    if isinstance(document, list):
        return {"fragments": document}
    if not isinstance(document, dict):
        raise AnswerFormatError("the answer is not a JSON object")
    if "fragments" in document:
        return document
    if "content" in document:
        return {"fragments": [document]}
    lists = [value for value in document.values() if isinstance(value, list)]
    if len(lists) == 1:
        return {"fragments": lists[0]}
    raise AnswerFormatError('the JSON object has no "fragments" list')


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:_MAX_REPORTED_ERRORS]:
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    more = exc.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "; ".join(problems) + suffix


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
