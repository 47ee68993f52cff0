"""With a subject named, the offline extractors read only the subject's turns, never a
label (domain/local_extractors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.local_extractors import EXTRACTORS, extract
from domain.subjects import Subject

TRANSCRIPT = (
    "Interviewer: Where did you grow up? I always loved the river myself, it was important "
    "to me.\n\n"
    "Marta Silva: I grew up in Porto, near the river. My father fixed boats and I spent every "
    "summer in his workshop. It smelled of tar.\n\n"
    "Rui: I think my father was proud of the boats I built.\n\n"
    "MARTA: I believe honest work matters more than money."
)
MARTA = Subject("Marta Silva", ("Dra. Silva",))


def quotes(name: str, text: str, **kwargs: Any) -> list[str]:
    return [fragment["quote"] for fragment in extract(name, text, **kwargs)["fragments"]]


def test_without_a_subject_everyone_but_the_interviewer_is_read() -> None:
    assert quotes("rules-fast", TRANSCRIPT) == [
        "I grew up in Porto, near the river.",
        "My father fixed boats and I spent every summer in his workshop.",
        "I think my father was proud of the boats I built.",
        "I believe honest work matters more than money.",
    ]


def test_with_a_subject_only_the_subject_s_turns_are_read() -> None:
    assert quotes("rules-fast", TRANSCRIPT, subject=MARTA) == [
        "I grew up in Porto, near the river.",
        "My father fixed boats and I spent every summer in his workshop.",
        "I believe honest work matters more than money.",
    ]
    assert quotes("rules-thorough", TRANSCRIPT, subject=MARTA) == [
        "I grew up in Porto, near the river.",
        "My father fixed boats and I spent every summer in his workshop. It smelled of tar.",
        "I believe honest work matters more than money.",
    ]


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_quotes_never_hold_a_label_even_one_the_strict_pattern_misses(name: str) -> None:
    text = ("Entrevistadora: Como foi a infância?\n\n"
            "Marta da Silva: Eu cresci no Porto e sempre amei o rio da minha infância.")
    subject = Subject("Marta da Silva")

    found = quotes(name, text, subject=subject)

    assert found == ["Eu cresci no Porto e sempre amei o rio da minha infância."]
    assert quotes(name, text, subject=Subject("Rui")) == []


def test_a_chunk_opening_mid_turn_follows_the_named_opening_speaker() -> None:
    text = ("and I believe my father was proud of every boat.\n\n"
            "Interviewer: Why?\n\nMarta Silva: Because I worked hard every single day.")

    by_marta = quotes("rules-thorough", text, subject=MARTA, opening_speaker="Marta Silva")
    by_other = quotes("rules-thorough", text, subject=MARTA, opening_speaker="Interviewer")
    unknown = quotes("rules-thorough", text, subject=MARTA)

    assert by_marta == ["and I believe my father was proud of every boat.",
                        "Because I worked hard every single day."]
    assert by_other == unknown == ["Because I worked hard every single day."]


def test_a_text_without_labels_is_the_subject_s_own() -> None:
    text = "I believe honest work matters more than money. I always fixed my own boats."

    assert quotes("rules-fast", text, subject=MARTA) == quotes("rules-fast", text)
    assert quotes("rules-fast", text)
