"""Chunking: exact code-point offsets, budgets respected, overlap of whole sentences."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.chunking import Chunk, chunk_text, estimate_tokens, sentence_spans, split_chunk

PORTUGUESE = (
    "Olá! Meu nome é João e nasci em São Paulo. Eu sempre quis ser médico… mas não deu.\r\n"
    "\r\n"
    "A minha avó dizia: “Coragem não é ausência de medo.” Isso mudou a minha vida 🙏🏽.\r\n"
    "Depois, fui para Lisboa. Lá aprendi a ouvir as pessoas 👨‍👩‍👧 com atenção."
)

SYMBOLS = [". ", "! ", "? ", "… ", "\r\n", "\r\n\r\n", "\n\n", "😀", "👍🏽", "e\u0301", "\u00a0"]
ALPHABET = st.sampled_from([*"abcdeçãéíõúÁ ", *SYMBOLS])
TEXTS = st.lists(ALPHABET, max_size=300).map("".join)


def assert_exact_and_ordered(text: str, chunks: list[Chunk]) -> None:
    """The invariants every chunking must keep."""
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.text
    for before, after in pairwise(chunks):
        assert before.start < after.start
        assert before.end < after.end
        assert text[before.end : after.start].strip() == "" or after.start < before.end
    covered: set[int] = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())


def test_blank_text_has_no_chunks() -> None:
    assert chunk_text("", max_tokens=10) == []
    assert chunk_text(" \r\n\t\u00a0 ", max_tokens=10) == []


def test_short_text_is_one_chunk_trimmed_of_whitespace() -> None:
    text = "\r\n  Eu gosto de café. \r\n"

    chunks = chunk_text(text, max_tokens=100)

    assert chunks == [Chunk(0, 4, 21, "Eu gosto de café.")]


def test_accented_emoji_and_crlf_text_keeps_exact_offsets() -> None:
    chunks = chunk_text(PORTUGUESE, max_tokens=15)

    assert len(chunks) > 3
    assert_exact_and_ordered(PORTUGUESE, chunks)
    assert all(estimate_tokens(chunk.text) <= 15 for chunk in chunks)


def test_chunks_prefer_paragraph_breaks_over_sentence_breaks() -> None:
    first = "One short sentence here. Another short sentence follows it."
    second = "A new paragraph starts. It goes on for a while longer."
    text = f"{first}\n\n{second}"

    chunks = chunk_text(text, max_tokens=estimate_tokens(first) + 10)

    assert chunks[0].text == first
    assert chunks[1].text == second


def test_sentence_longer_than_budget_is_split_between_words() -> None:
    text = "palavra " * 40 + "fim."

    chunks = chunk_text(text, max_tokens=10)

    assert len(chunks) > 1
    assert_exact_and_ordered(text, chunks)
    for chunk in chunks:
        assert estimate_tokens(chunk.text) <= 10
        assert text[chunk.start - 1 : chunk.start].strip() == ""  # starts at a word


def test_word_longer_than_budget_is_split_without_breaking_an_emoji() -> None:
    text = "a👍🏽" * 20

    chunks = chunk_text(text, max_tokens=1)

    assert "".join(chunk.text for chunk in chunks) == text
    assert all(not chunk.text.startswith("🏽") for chunk in chunks)


def test_overlap_repeats_whole_sentences_from_the_previous_chunk() -> None:
    sentences = [f"Sentence number {n} is here." for n in range(12)]
    text = " ".join(sentences)

    chunks = chunk_text(text, max_tokens=25, overlap_tokens=8)

    assert len(chunks) > 2
    assert_exact_and_ordered(text, chunks)
    for before, after in pairwise(chunks):
        assert after.start < before.end  # they overlap...
        assert after.text.split(".")[0] + "." in sentences  # ...starting on a whole sentence


def test_custom_counter_that_exceeds_any_budget_still_makes_progress() -> None:
    text = "abc def. ghi"

    chunks = chunk_text(text, max_tokens=1, overlap_tokens=5, count_tokens=lambda s: 99)

    assert [chunk.text for chunk in chunks] == list("abcdef.ghi")
    assert_exact_and_ordered(text, chunks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, -1)])
def test_invalid_budgets_are_refused(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("text", max_tokens=max_tokens, overlap_tokens=overlap)


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, max_tokens=st.integers(1, 40), overlap=st.integers(0, 20))
def test_any_text_is_chunked_exactly_within_budget(
    text: str, max_tokens: int, overlap: int
) -> None:
    chunks = chunk_text(text, max_tokens=max_tokens, overlap_tokens=overlap)

    assert_exact_and_ordered(text, chunks)
    assert all(estimate_tokens(chunk.text) <= max_tokens for chunk in chunks)
    assert chunks == chunk_text(text, max_tokens=max_tokens, overlap_tokens=overlap)


def test_sentences_split_at_english_and_portuguese_punctuation() -> None:
    text = 'Olá, João! Você está bem? Eu acho que sim... mas não sei. Ele disse: "Não." Fim'

    spans = [text[s.start : s.end] for s in sentence_spans(text)]

    assert spans == [
        "Olá, João!",
        "Você está bem?",
        "Eu acho que sim... mas não sei.",
        'Ele disse: "Não."',
        "Fim",
    ]


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = (
        "Mr. Smith met Dr. Costa. A Sra. Lima e o Sr. Reis vieram, e.g. ontem. J. K. Rowling wrote."
    )

    spans = [text[s.start : s.end] for s in sentence_spans(text)]

    assert spans == [
        "Mr. Smith met Dr. Costa.",
        "A Sra. Lima e o Sr. Reis vieram, e.g. ontem.",
        "J. K. Rowling wrote.",
    ]


def test_blank_line_ends_a_sentence_but_a_single_line_break_does_not() -> None:
    text = "First paragraph without a stop\r\n\r\nSecond one wraps\nonto a new line."

    spans = [text[s.start : s.end] for s in sentence_spans(text)]

    assert spans == ["First paragraph without a stop", "Second one wraps\nonto a new line."]


def test_split_chunk_halves_at_a_sentence_near_the_middle() -> None:
    source = "Prefácio. " + PORTUGUESE
    chunk = chunk_text(source, max_tokens=1000)[0]

    head, tail = split_chunk(chunk)

    assert (head.index, tail.index) == (chunk.index, chunk.index)
    assert head.text == source[head.start : head.end]
    assert tail.text == source[tail.start : tail.end]
    assert head.start == chunk.start and tail.end == chunk.end
    assert source[head.end : tail.start].strip() == ""
    assert head.text.endswith((".", "!", "?", "…", "”"))
    assert len(chunk.text) / 4 <= tail.start - chunk.start <= 3 * len(chunk.text) / 4


def test_split_chunk_without_sentences_splits_at_a_space() -> None:
    source = "xx " + "um dois três quatro cinco seis"
    chunk = Chunk(3, 3, len(source), source[3:])

    head, tail = split_chunk(chunk)

    assert (head.text, tail.text) == ("um dois três", "quatro cinco seis")
    assert (head.start, tail.start) == (3, 16)
    assert source[tail.start : tail.end] == tail.text


def test_split_chunk_of_one_word_splits_between_characters() -> None:
    head, tail = split_chunk(Chunk(0, 10, 16, "ação😀é"))

    assert head.text + tail.text == "ação😀é"
    assert (head.end, tail.start) == (13, 13)


def test_single_character_chunk_cannot_be_split() -> None:
    with pytest.raises(ValueError):
        split_chunk(Chunk(0, 0, 1, "é"))


@settings(max_examples=200, deadline=None)
@given(text=TEXTS.filter(lambda t: len(t.split()) >= 2))
def test_split_chunk_halves_are_exact_for_any_text(text: str) -> None:
    chunk = chunk_text(text, max_tokens=10_000)[0]

    head, tail = split_chunk(chunk)

    assert head.text == text[head.start : head.end] and head.text
    assert tail.text == text[tail.start : tail.end] and tail.text
    assert chunk.start == head.start < head.end <= tail.start < tail.end == chunk.end
