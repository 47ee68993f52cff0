"""Grounding quotes in their source: exact, fuzzy or ungrounded, at original offsets."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.grounding import (
    GroundedSpan,
    _fold,
    _normalise,
    ground_quote,
    merge_overlaps,
    normalise_text,
)
from domain.model import Grounding

SOURCE = (
    "Entrevistador: Como começou?\r\n"
    "Maria: Eu nunca  desisti\r\n dos meus sonhos — nem quando a fábrica fechou. 😀\r\n"
    "Depois… mudei-me para o Porto. Lá, a minha vida mudou por completo.\r\n"
    "Maria: Eu nunca desisti dos meus sonhos. Foi isso que me salvou."
)


def grounded_text(span: GroundedSpan, source: str = SOURCE) -> str:
    assert span.start is not None and span.end is not None
    return source[span.start : span.end]


def test_normalise_folds_whitespace_quotes_dashes_and_ellipses() -> None:
    text = "  “Olá”\u00a0—\r\n ‘sim’…  "

    assert normalise_text(text) == "\"Olá\" - 'sim'..."


def test_exact_quote_is_grounded_at_its_original_offsets() -> None:
    quote = "a minha vida mudou por completo."

    span = ground_quote(SOURCE, quote)

    assert span.grounding is Grounding.EXACT
    assert span.score == 100.0
    assert grounded_text(span) == quote


def test_quote_with_plain_punctuation_grounds_on_typographic_source_across_crlf() -> None:
    quote = "Eu nunca desisti dos meus sonhos - nem quando a fábrica fechou."

    span = ground_quote(SOURCE, quote)

    assert span.grounding is Grounding.EXACT
    assert (
        grounded_text(span)
        == "Eu nunca  desisti\r\n dos meus sonhos — nem quando a fábrica fechou."
    )
    assert normalise_text(grounded_text(span)) == normalise_text(quote)


def test_quote_that_lost_an_accent_is_only_a_fuzzy_match() -> None:
    span = ground_quote(SOURCE, "Eu nunca desisti dos meus sonhos - nem quando a fabrica fechou.")

    assert span.grounding is Grounding.FUZZY
    assert grounded_text(span).endswith("a fábrica fechou")


def test_ellipsis_written_as_three_dots_matches_the_ellipsis_character() -> None:
    span = ground_quote(SOURCE, "Depois... mudei-me para o Porto.")

    assert span.grounding is Grounding.EXACT
    assert grounded_text(span) == "Depois… mudei-me para o Porto."


def test_case_differences_still_ground_exactly() -> None:
    span = ground_quote(SOURCE, "A minha vida mudou por completo")

    assert span.grounding is Grounding.EXACT
    assert grounded_text(span) == "a minha vida mudou por completo"


def test_offsets_after_an_emoji_are_code_point_offsets() -> None:
    span = ground_quote(SOURCE, "Depois")

    assert span.start == SOURCE.index("Depois")
    assert grounded_text(span) == "Depois"


def test_repeated_quote_resolves_to_the_occurrence_in_the_hint_window() -> None:
    quote = "Eu nunca desisti dos meus sonhos"
    second = SOURCE.rindex("Maria:")

    first_span = ground_quote(SOURCE, quote)
    hinted = ground_quote(SOURCE, quote, hint=(second, len(SOURCE)))
    near_start = ground_quote(SOURCE, quote, hint=(0, 20))

    assert first_span.start == SOURCE.index("Eu nunca")
    assert hinted.start == SOURCE.rindex("Eu nunca")
    assert grounded_text(hinted) == quote
    assert near_start.start == first_span.start


def test_whole_word_occurrence_is_preferred_over_one_inside_a_word() -> None:
    source = "The carpet was red. A pet was all I wanted."

    span = ground_quote(source, "pet")

    assert span.start == source.index("A pet") + 2


def test_quote_with_a_small_typo_is_grounded_fuzzily_on_word_boundaries() -> None:
    quote = "a minha vida mudou por compelto"

    span = ground_quote(SOURCE, quote)

    assert span.grounding is Grounding.FUZZY
    assert 85.0 <= span.score < 100.0
    assert grounded_text(span) == "a minha vida mudou por completo"


def test_fuzzy_search_looks_in_the_hint_window_first() -> None:
    quote = "Eu nunca desisti dos meus sonhox"
    second = SOURCE.rindex("Maria:")

    span = ground_quote(SOURCE, quote, hint=(second, len(SOURCE)))

    assert span.grounding is Grounding.FUZZY
    assert span.start == SOURCE.rindex("Eu nunca")


def test_invented_quote_is_ungrounded_with_its_best_score() -> None:
    span = ground_quote(SOURCE, "O meu pai ensinou-me a pescar no rio todos os domingos.")

    assert span == GroundedSpan(Grounding.UNGROUNDED, None, None, span.score)
    assert 0.0 < span.score < 85.0


def test_short_quote_is_never_matched_fuzzily() -> None:
    assert ground_quote(SOURCE, "Portoo").grounding is Grounding.UNGROUNDED
    assert ground_quote(SOURCE, "minha vidda").grounding is Grounding.UNGROUNDED
    assert ground_quote(SOURCE, "mudei-me para").grounding is Grounding.EXACT


def test_empty_or_blank_quote_is_ungrounded() -> None:
    for quote in ("", "   ", "\r\n\u00a0"):
        assert ground_quote(SOURCE, quote) == GroundedSpan(Grounding.UNGROUNDED, None, None, 0.0)


def test_quote_is_not_matched_onto_part_of_an_accented_letter() -> None:
    decomposed = "Eu tomei um cafe\u0301 forte."

    assert ground_quote(decomposed, "um cafe").grounding is Grounding.UNGROUNDED
    span = ground_quote(decomposed, "um café")
    assert span.grounding is Grounding.EXACT
    assert grounded_text(span, decomposed) == "um cafe\u0301"


def test_quote_longer_than_the_source_is_not_grounded_on_it() -> None:
    source = "Eu gosto de ler livros."

    span = ground_quote(source, source + " E também gosto muito de escrever poemas à noite.")

    assert span.grounding is Grounding.UNGROUNDED


WORDS = st.sampled_from(["ação", "café", "Olá", "😀", "—", "“sim”", "mãe", "Pai", "…", "o"])
SEPARATORS = st.sampled_from([" ", "  ", "\r\n", "\u00a0", "\n\n"])


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=40),
    data=st.data(),
)
def test_any_slice_of_whole_words_grounds_exactly_to_an_equal_text(
    words: list[tuple[str, str]], data: st.DataObject
) -> None:
    source = "".join(word + sep for word, sep in words)
    first = data.draw(st.integers(0, len(words) - 1))
    last = data.draw(st.integers(first, len(words) - 1))
    quote = " ".join(word for word, _ in words[first : last + 1])

    span = ground_quote(source, quote)

    assert span.grounding is Grounding.EXACT
    assert (
        normalise_text(grounded_text(span, source)).casefold() == normalise_text(quote).casefold()
    )


def test_grounding_a_hundred_quotes_in_a_long_source_is_fast() -> None:
    sentences = [
        f"Na semana {n} eu aprendi algo novo sobre a cidade número {n}." for n in range(500)
    ]
    source = " ".join(sentences)[:30_000]
    quotes = [sentences[n] for n in range(0, 150, 3)]
    quotes += [s.replace("aprendi", "aprendii") for s in sentences[200:225]]
    quotes += [f"Uma frase inventada número {n} que não existe no texto." for n in range(25)]

    started = time.perf_counter()
    results = [ground_quote(source, quote, hint=(0, 10_000)) for quote in quotes]
    elapsed = time.perf_counter() - started

    grounds = [result.grounding for result in results]
    assert grounds.count(Grounding.EXACT) == 50
    assert grounds.count(Grounding.FUZZY) == 25
    assert grounds.count(Grounding.UNGROUNDED) == 25
    assert elapsed < 2.0


@dataclass(frozen=True)
class Found:
    quote: str
    start: int | None
    end: int | None


def test_merge_overlaps_drops_repeats_from_overlapping_chunks_keeping_the_first() -> None:
    items = [
        Found("a", 0, 100),
        Found("b", 200, 260),
        Found("a again", 2, 100),  # IoU 0.98
        Found("c", 50, 150),  # IoU 0.33 with the first
        Found("Eu  “nunca”", None, None),
        Found('eu "NUNCA"', None, None),
        Found("outra", None, None),
        Found("b again", 200, 260),
    ]

    kept = merge_overlaps(items, lambda f: (f.start, f.end), quote=lambda f: f.quote)

    assert [f.quote for f in kept] == ["a", "b", "c", "Eu  “nunca”", "outra"]


def test_merge_overlaps_keeps_ungrounded_items_when_no_quote_is_given() -> None:
    items = [Found("x", None, None), Found("x", None, None)]

    assert merge_overlaps(items, lambda f: (f.start, f.end)) == items


def _normalise_char_by_char(text: str, casefold: bool) -> tuple[str, list[int]]:
    """The normalisation's definition, one character at a time (the oracle for the fast scan)."""
    out: list[str] = []
    starts: list[int] = []
    space_from = None
    for i, char in enumerate(text):
        if char.isspace():
            space_from = i if space_from is None else space_from
            continue
        if space_from is not None and out:
            out.append(" ")
            starts.append(space_from)
        space_from = None
        for piece in _fold(char, casefold):
            out.append(piece)
            starts.append(i)
    return "".join(out), starts


_TRICKY = st.lists(st.sampled_from(list(
    "ab Z`'\"\t\n\r\x0b\x1c\u00a0\u2003e\u0301ÉçßİǅﬁŉΣ“”‘’–—…\u00ad\u200b😀.,!~"))).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), _TRICKY), st.booleans())
def test_the_run_scan_normalises_exactly_as_the_character_definition(text: str,
                                                                       casefold: bool) -> None:
    # When
    fast = _normalise(text, casefold=casefold)
    # Then
    assert (fast.text, list(fast.starts)) == _normalise_char_by_char(text, casefold)
