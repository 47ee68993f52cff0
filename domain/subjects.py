"""The subject of a source (pure): the person the clone is about, and which words are theirs.

A transcript's other speakers are context, not material: `speaker_is_subject` tells a turn's
label apart, and `subject_sentences` keeps the sentences coverage should count.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import FieldIssue, InvalidInput
from domain.model import Span
from domain.text import is_valid_unicode

NAME_MAX = 200
MAX_ALIASES = 20
# Courtesy titles a speaker label may carry ("Dra. Marta Silva"), compared without the dot.
_TITLES = frozenset({"dr", "dra", "prof", "mr", "mrs", "ms", "sr", "sra"})


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a source is about: a name and the other names the person goes by."""

    name: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The name, then the aliases."""
        return (self.name, *self.aliases)


def validate_subject(raw: Mapping[str, Any] | None, path: tuple[str, ...]) -> Subject | None:
    """A subject from `{"name": ..., "aliases": [...]}`, None for None; raises InvalidInput.

    Aliases are kept once each (compared case-insensitively, first spelling kept) and the name
    is removed from them."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput.single(path, "must be an object with a name and aliases")
    issues: list[FieldIssue] = []
    name = _name(raw.get("name"), (*path, "name"), issues)
    aliases: list[str] = []
    given = raw.get("aliases")
    if given is not None and not isinstance(given, list | tuple):
        issues.append(FieldIssue((*path, "aliases"), "must be a list of names"))
    elif given:
        if len(given) > MAX_ALIASES:
            issues.append(FieldIssue((*path, "aliases"),
                                     f"must have at most {MAX_ALIASES} aliases"))
        for i, value in enumerate(given):
            alias = _name(value, (*path, "aliases", str(i)), issues)
            if alias is not None:
                aliases.append(alias)
    if issues:
        raise InvalidInput(issues)
    seen = {(name or "").casefold()}
    unique: list[str] = []
    for alias in aliases:
        if alias.casefold() not in seen:
            seen.add(alias.casefold())
            unique.append(alias)
    return Subject(name or "", tuple(unique))


def _name(value: Any, path: tuple[str, ...], issues: list[FieldIssue]) -> str | None:
    if value is None:
        issues.append(FieldIssue(path, "is required"))
        return None
    text = str(value).strip()
    if not text:
        issues.append(FieldIssue(path, "must not be empty"))
        return None
    if len(text) > NAME_MAX:
        issues.append(FieldIssue(path, f"must be at most {NAME_MAX} characters"))
    if "\x00" in text:
        issues.append(FieldIssue(path, "must not contain NUL characters"))
    elif not is_valid_unicode(text):
        issues.append(FieldIssue(path, "must be valid Unicode (no lone surrogates)"))
    return text


def speaker_is_subject(label: str, subject: Subject) -> bool:
    """Whether a speaker label names the subject.

    Both sides are compared as keys: accents stripped (NFKD without combining marks), case
    folded, whitespace collapsed, surrounding punctuation dropped, and a leading title (Dr,
    Dra, Prof, Mr, Mrs, Ms, Sr, Sra, with or without a dot) ignored. A label is the subject
    when its key equals the key of the name or of an alias, or when it is a single word equal
    to the first word of the name ("Marta" for "Marta Silva"), or when the name is a single
    word equal to the label's first word (the label "Marta Silva" for the name "Marta"). Case
    never matters, so "MARTA SILVA" and "MARTA" match too; "Silva" alone matches only as an
    alias.
    """
    key = _key(label)
    if not key:
        return False
    if any(key == _key(name) for name in subject.names):
        return True
    name = _key(subject.name)
    if " " not in key:
        return key == name.split(" ")[0]
    return " " not in name and key.split(" ")[0] == name


def subject_speakers(labels: Iterable[str], subject: Subject | None) -> tuple[str, ...]:
    """The labels, as given and once each in their order, that name the subject."""
    if subject is None:
        return ()
    found: list[str] = []
    for label in labels:
        if label not in found and speaker_is_subject(label, subject):
            found.append(label)
    return tuple(found)


def subject_sentences(sentences: Sequence[Span], turns: Sequence[Span]) -> tuple[Span, ...]:
    """The sentences lying wholly inside one of the subject's turns (turns with their label).

    A sentence that begins before a turn and reaches only into it (the previous speaker's
    words running over the label "Marta Silva: ") is not the subject's, nor is one spanning
    two turns; a turn's first sentence, label included, is."""
    ordered = sorted(turns, key=lambda t: (t.start, t.end))
    starts = [t.start for t in ordered]
    ends: list[int] = []
    for turn in ordered:  # the furthest end so far: turns may nest or overlap
        ends.append(max(turn.end, ends[-1]) if ends else turn.end)
    kept: list[Span] = []
    for sentence in sentences:
        i = bisect_right(starts, sentence.start) - 1
        if i >= 0 and ends[i] >= sentence.end:
            kept.append(sentence)
    return tuple(kept)


def _key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = _strip_punctuation(" ".join(plain.casefold().split())).split(" ")
    if len(words) > 1 and words[0].rstrip(".") in _TITLES:
        words = words[1:]
    return _strip_punctuation(" ".join(words))


def _strip_punctuation(text: str) -> str:
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end].strip()
