"""The subject of a source: validation, which speaker labels are the subject, whose
sentences coverage counts (domain/subjects.py)."""

from __future__ import annotations

import pytest

from domain.errors import FieldIssue, InvalidInput
from domain.model import Span
from domain.subjects import (
    Subject,
    speaker_is_subject,
    subject_sentences,
    subject_speakers,
    validate_subject,
)

PATH = ("input", "subject")
MARTA = Subject("Marta Silva", ("Dra. Silva", "Martinha"))


def issues_of(raw: object) -> list[FieldIssue]:
    with pytest.raises(InvalidInput) as caught:
        validate_subject(raw, PATH)  # type: ignore[arg-type]
    return caught.value.issues


# ---------------------------------------------------------------- validation


def test_no_subject_is_none() -> None:
    assert validate_subject(None, PATH) is None


def test_a_subject_keeps_each_alias_once_and_not_the_name() -> None:
    subject = validate_subject({"name": "  Marta Silva ",
                                "aliases": ["Marta", "marta", "MARTA SILVA", " Dra. Silva",
                                            "Martinha"]}, PATH)

    assert subject == Subject("Marta Silva", ("Marta", "Dra. Silva", "Martinha"))
    assert validate_subject({"name": "Rui"}, PATH) == Subject("Rui", ())


@pytest.mark.parametrize(("raw", "expected"), [
    ({}, [FieldIssue(("input", "subject", "name"), "is required")]),
    ({"name": "   "}, [FieldIssue(("input", "subject", "name"), "must not be empty")]),
    ({"name": "x" * 201},
     [FieldIssue(("input", "subject", "name"), "must be at most 200 characters")]),
    ({"name": "Ma\x00rta"},
     [FieldIssue(("input", "subject", "name"), "must not contain NUL characters")]),
    ({"name": "Marta", "aliases": ["ok", None, " ", "y" * 201, "a\x00"]}, [
        FieldIssue(("input", "subject", "aliases", "1"), "is required"),
        FieldIssue(("input", "subject", "aliases", "2"), "must not be empty"),
        FieldIssue(("input", "subject", "aliases", "3"), "must be at most 200 characters"),
        FieldIssue(("input", "subject", "aliases", "4"), "must not contain NUL characters"),
    ]),
    ({"name": "Marta", "aliases": [f"a{i}" for i in range(21)]},
     [FieldIssue(("input", "subject", "aliases"), "must have at most 20 aliases")]),
    ({"name": "Marta", "aliases": "Martinha"},
     [FieldIssue(("input", "subject", "aliases"), "must be a list of names")]),
    ({"aliases": ["\ud800"]}, [
        FieldIssue(("input", "subject", "name"), "is required"),
        FieldIssue(("input", "subject", "aliases", "0"),
                   "must be valid Unicode (no lone surrogates)"),
    ]),
    ("Marta", [FieldIssue(("input", "subject"), "must be an object with a name and aliases")]),
])
def test_invalid_subjects_name_every_bad_field(raw: object, expected: list[FieldIssue]) -> None:
    assert issues_of(raw) == expected


def test_twenty_aliases_are_accepted() -> None:
    subject = validate_subject({"name": "Marta", "aliases": [f"a{i}" for i in range(20)]}, PATH)

    assert subject is not None and len(subject.aliases) == 20


# ---------------------------------------------------------------- matching speaker labels


@pytest.mark.parametrize("label", [
    "Marta Silva", "marta silva", "MARTA SILVA", "Márta  Sílva", " Marta Silva: ", "(Marta Silva)",
    "Dra. Marta Silva", "Dr Marta Silva", "Sra. Marta Silva", "Prof. Marta Silva",
    "Marta", "MARTA", "Marta:", "Dra. Silva", "dra silva", "Martinha", "MARTINHA",
    "Silva",  # the alias "Dra. Silva" without its title
])
def test_labels_naming_the_subject(label: str) -> None:
    assert speaker_is_subject(label, MARTA)


@pytest.mark.parametrize("label", [
    "Silva", "Marta Souza", "Marta S", "Interviewer", "Martas", "Dr.", "", "  ", "Mar ta",
    "Marta Silva Costa", "Mr Rui",
])
def test_labels_of_other_speakers(label: str) -> None:
    assert not speaker_is_subject(label, Subject("Marta Silva", ("Martinha",)))


def test_a_single_word_name_and_accented_aliases() -> None:
    joao = Subject("João", ("Sr. Pereira",))

    assert speaker_is_subject("JOAO", joao)
    assert speaker_is_subject("Pereira", joao)  # the alias without its title
    assert speaker_is_subject("Mr. João", joao)
    assert speaker_is_subject("João Pereira", joao)  # a one-word name opens the label
    assert not speaker_is_subject("Pedro João", joao)


def test_subject_speakers_are_the_labels_as_given() -> None:
    labels = ["Interviewer", "MARTA", "Marta Silva", "Rui", "MARTA"]

    assert subject_speakers(labels, MARTA) == ("MARTA", "Marta Silva")
    assert subject_speakers(labels, None) == ()


# ---------------------------------------------------------------- the subject's sentences


def test_subject_sentences_lie_wholly_inside_the_subject_s_turns() -> None:
    text = ("Interviewer: Where did you grow up?\n\n"
            "Marta Silva: I grew up in Porto. It smelled of tar.\n\n"
            "Interviewer: and the house\nMarta Silva: It was small.")
    first = text.index("Marta Silva: I")
    second = text.index("Marta Silva: It")
    turns = [Span(first, text.index("tar.") + 4), Span(second, len(text))]
    sentences = [
        Span(0, text.index("?") + 1),  # the interviewer's
        Span(first, text.index("Porto.") + 6),  # label included: the subject's
        Span(text.index("It smelled"), text.index("tar.") + 4),
        # the interviewer's words running over the label: only the label is the subject's
        Span(text.index("and the house"), second + len("Marta Silva:")),
        Span(text.index("It was"), len(text)),
    ]

    assert subject_sentences(sentences, turns) == (sentences[1], sentences[2], sentences[4])
    assert subject_sentences(sentences, []) == ()
    assert subject_sentences([], turns) == ()


@pytest.mark.parametrize(("label", "expected"), [
    ("Marta Silva", True), ("MARTA SOUZA", True), ("Dra. Marta Silva", True), ("Marta", True),
    ("Rui Marta", False), ("Martinha Silva", False), ("Interviewer", False),
])
def test_a_one_word_name_matches_a_label_that_starts_with_it(label: str, expected: bool) -> None:
    assert speaker_is_subject(label, Subject("Marta")) is expected
