"""Chunking a transcript: no boundary inside a cue, turn starts as the strongest break
(domain/chunking.py `protected` and `strong`)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.chunking import Chunk, chunk_text, estimate_tokens, sentence_spans
from domain.model import Span

WORDS = ["river", "boats", "Porto", "summer", "father", "tar", "house", "I", "we", "fixed"]


def generated_transcript(cues: int, seed: int = 7) -> tuple[str, list[Span], list[int]]:
    """Text of alternating turns, its cues' spans and its turn starts. Cues hold one to three
    sentences, or end mid-sentence (the next cue finishes it); a turn's last cue ends one."""
    rnd = random.Random(seed)
    text, spans, starts = "", [], []
    made = 0
    while made < cues:
        starts.append(len(text) + 2 if text else 0)
        text += ("\n\n" if text else "") + rnd.choice(["Interviewer", "Marta Silva"]) + ": "
        for k in range(min(rnd.randint(1, 5), cues - made)):
            sentences = [" ".join(rnd.choices(WORDS, k=rnd.randint(3, 9))).capitalize() + "."
                         for _ in range(rnd.randint(1, 3))]
            words = " ".join(sentences)
            if k % 2 == 0 and made + 1 < cues and rnd.random() < 0.5:
                words = words[:-1] + " and"  # runs on into the next cue
            text += (" " if k else "") + words
            spans.append(Span(len(text) - len(words), len(text)))
            made += 1
        if not text.endswith("."):
            text += " " + "tar."
            spans[-1] = Span(spans[-1].start, len(text))
    return text, spans, starts


def strictly_inside(position: int, spans: list[Span]) -> bool:
    return any(s.start < position < s.end for s in spans)


def test_no_chunk_boundary_falls_inside_a_cue() -> None:
    text, cues, turns = generated_transcript(1_500)
    assert len(cues) == 1_500 and len(text) > 50_000

    chunks = chunk_text(text, max_tokens=120, overlap_tokens=30, protected=cues, strong=turns)

    assert len(chunks) > 100
    assert not [c.index for c in chunks
                if strictly_inside(c.start, cues) or strictly_inside(c.end, cues)]
    assert all(estimate_tokens(c.text) <= 120 for c in chunks)
    plain = chunk_text(text, max_tokens=120, overlap_tokens=30)
    cut = [c for c in plain if strictly_inside(c.start, cues) or strictly_inside(c.end, cues)]
    assert cut  # without the hint the same text is cut inside cues


def test_a_cue_is_cut_only_when_nothing_else_fits() -> None:
    text = "One two three. Four five six. Seven eight nine."
    whole = [Span(0, len(text))]

    chunks = chunk_text(text, max_tokens=5, protected=whole)

    assert [c.text for c in chunks] == ["One two three.", "Four five six.", "Seven eight nine."]


def test_a_clean_break_in_the_first_half_beats_a_cut_in_the_second() -> None:
    text = "Aaaa bbbb. Cccc dddd eeee ffff gggg. Hhhh iiii jjjj kkkk. Llll."
    cue = Span(text.index("Cccc"), text.index("Llll") - 1)  # two sentences in one cue

    plain = chunk_text(text, max_tokens=12)
    hinted = chunk_text(text, max_tokens=12, protected=[cue])

    assert [c.text for c in plain] == ["Aaaa bbbb. Cccc dddd eeee ffff gggg.",
                                       "Hhhh iiii jjjj kkkk. Llll."]
    assert [c.text for c in hinted] == ["Aaaa bbbb.",
                                        "Cccc dddd eeee ffff gggg. Hhhh iiii jjjj kkkk.",
                                        "Llll."]


def test_overlap_never_starts_inside_a_cue() -> None:
    text = "Aaaa bbbb. Cccc dddd. Eeee ffff. Gggg hhhh. Iiii jjjj."
    cue = Span(text.index("Cccc"), text.index("Eeee") + 10)  # "Cccc dddd. Eeee ffff."

    plain = chunk_text(text, max_tokens=9, overlap_tokens=4)
    hinted = chunk_text(text, max_tokens=9, overlap_tokens=4, protected=[cue])

    assert [c.start for c in plain] == [0, text.index("Eeee")]  # the overlap cuts the cue
    assert [c.text for c in hinted] == ["Aaaa bbbb. Cccc dddd. Eeee ffff.",
                                        "Gggg hhhh. Iiii jjjj."]


def test_a_turn_start_is_the_strongest_break() -> None:
    text = ("Marta: " + "word " * 20 + "end.\n\nRui: Yes.\n\nAnd more of what Rui says.\n\n"
            "Then the rest.")
    rui = text.index("Rui:")

    plain = chunk_text(text, max_tokens=38)
    hinted = chunk_text(text, max_tokens=38, strong=[0, rui])

    assert plain[0].end == text.index("Rui says.") + len("Rui says.")  # the latest paragraph
    assert hinted[0].end == rui - 2
    assert hinted[1].text.startswith("Rui: Yes.")


def test_a_strong_position_inside_a_sentence_is_no_break() -> None:
    text = "Marta: I grew up in Porto and Rui: was there. Then more."

    assert chunk_text(text, max_tokens=8, strong=[text.index("Rui")]) == chunk_text(
        text, max_tokens=8)


SENTENCES = st.lists(
    st.sampled_from(["Aa bb.", "Cc dd ee ff gg hh ii.", "Jj?", "Kk ll mm!", "\n\n", "Nn…"]),
    max_size=60).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(text=SENTENCES, budget=st.integers(1, 30), overlap=st.integers(0, 10))
def test_cues_of_whole_sentences_change_nothing(text: str, budget: int, overlap: int) -> None:
    # Pieces are sentences: a cue holding one whole sentence hides no break.
    cues = [s for s in sentence_spans(text) if estimate_tokens(text[s.start:s.end]) <= budget]
    expected = chunk_text(text, max_tokens=budget, overlap_tokens=overlap)

    assert chunk_text(text, max_tokens=budget, overlap_tokens=overlap, protected=cues,
                      strong=[0]) == expected


def test_no_hints_is_the_plain_chunking() -> None:
    text, _, _ = generated_transcript(50, seed=3)

    chunks: list[Chunk] = chunk_text(text, max_tokens=60, overlap_tokens=10, protected=(),
                                     strong=())

    assert chunks == chunk_text(text, max_tokens=60, overlap_tokens=10)
