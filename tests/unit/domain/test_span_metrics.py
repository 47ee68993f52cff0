"""Span metrics beside IoU matching: words, word-level P/R/F1, match rates at three IoUs."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.model import Span
from domain.quality import match_spans
from domain.span_metrics import (
    SpanMatchRate,
    WordScores,
    span_match_rates,
    word_counts_by_block,
    word_level,
    word_spans,
)

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def texts(text: str, spans: tuple[Span, ...]) -> list[str]:
    return [text[s.start:s.end] for s in spans]


# --- words ----------------------------------------------------------------------------------------


def test_words_are_runs_of_letters_and_digits_with_inner_apostrophes() -> None:
    text = "Don't stop — it’s 2024, l'homme's well-known snake_case 'quoted' café."
    assert texts(text, word_spans(text)) == [
        "Don't", "stop", "it’s", "2024", "l'homme's", "well", "known", "snake", "case",
        "quoted", "café"]


def test_decomposed_accents_stay_in_their_word_and_punctuation_is_no_word() -> None:
    text = "cafe\u0301 ... !!! -- ''"
    assert texts(text, word_spans(text)) == ["cafe\u0301"]
    assert word_spans("") == ()
    assert word_spans("  \n\t ,.;") == ()


def test_non_latin_scripts_are_words_too() -> None:
    text = "Привет, мир 東京 ١٢٣"
    assert texts(text, word_spans(text)) == ["Привет", "мир", "東京", "١٢٣"]


def test_words_of_a_megabyte_are_found_quickly() -> None:
    text = ("The quick brown fox didn't jump, 42 times! " * 25_000)[:1_000_000]
    started = time.perf_counter()
    words = word_spans(text)
    scores = word_level([Span(0, 500_000)], [Span(250_000, 1_000_000)], words)
    elapsed = time.perf_counter() - started
    assert len(words) > 150_000
    assert 0 < scores.overlap_words < scores.predicted_words
    assert elapsed < 5.0, elapsed


# --- word level -------------------------------------------------------------------------------


TEXT = "alpha beta gamma delta epsilon"  # words at 0-5, 6-10, 11-16, 17-22, 23-30
WORDS = word_spans(TEXT)


def test_a_word_counts_when_any_of_its_characters_is_covered() -> None:
    # predicted touches alpha (by one char), beta, and gamma's first char
    predicted = [Span(4, 5), Span(6, 12)]
    # reference covers beta..delta
    reference = [Span(6, 22)]
    scores = word_level(predicted, reference, WORDS)
    assert (scores.predicted_words, scores.reference_words, scores.overlap_words) == (3, 3, 2)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)


def test_whitespace_between_words_covers_no_word() -> None:
    scores = word_level([Span(5, 6)], [Span(0, 5)], WORDS)
    assert scores.predicted_words == 0
    assert (scores.precision, scores.recall, scores.f1) == (0.0, 0.0, 0.0)


def test_precision_and_recall_differ_when_the_sides_differ() -> None:
    scores = word_level([Span(0, 30)], [Span(6, 10)], WORDS)
    assert scores == WordScores.of_counts(predicted=5, reference=1, overlap=1)
    assert (scores.precision, scores.recall) == (0.2, 1.0)
    assert scores.f1 == pytest.approx(2 * 0.2 / 1.2)


def test_empty_sides_follow_match_results_conventions() -> None:
    both_empty = word_level([], [], WORDS)
    assert (both_empty.precision, both_empty.recall, both_empty.f1) == (1.0, 1.0, 1.0)
    no_prediction = word_level([], [Span(0, 5)], WORDS)
    assert (no_prediction.precision, no_prediction.recall, no_prediction.f1) == (0.0, 0.0, 0.0)
    no_reference = word_level([Span(0, 5)], [], WORDS)
    assert (no_reference.precision, no_reference.recall, no_reference.f1) == (0.0, 0.0, 0.0)
    no_words = word_level([Span(0, 5)], [Span(0, 5)], [])
    assert (no_words.precision, no_words.recall, no_words.f1) == (1.0, 1.0, 1.0)


def test_overlapping_and_empty_spans_are_merged_and_ignored() -> None:
    scores = word_level([Span(0, 8), Span(3, 12), Span(20, 20)], [Span(0, 30)], WORDS)
    assert scores.predicted_words == 3  # alpha, beta, gamma; the empty span covers nothing


# --- per block ----------------------------------------------------------------------------------


def test_word_counts_go_to_the_block_holding_their_start() -> None:
    blocks = [Span(6, 17), Span(17, 30)]  # alpha is before the first block: it goes there
    counts = word_counts_by_block([Span(0, 30)], [Span(6, 16)], WORDS, blocks)
    assert counts == [(3, 2, 2), (2, 0, 0)]


def test_blocks_are_reported_in_the_order_given_and_overlaps_go_to_the_later_one() -> None:
    blocks = [Span(11, 30), Span(0, 16)]  # out of order, overlapping on gamma
    counts = word_counts_by_block([Span(0, 30)], [], WORDS, blocks)
    assert counts == [(3, 0, 0), (2, 0, 0)]


def test_word_counts_need_a_block() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        word_counts_by_block([], [], WORDS, [])


# --- span-match rates -----------------------------------------------------------------------------


def test_match_rates_at_three_thresholds() -> None:
    reference = [Span(0, 10), Span(20, 30)]
    predicted = [Span(0, 6), Span(20, 28)]  # IoU 0.6 and 0.8
    rates = span_match_rates(predicted, reference)
    assert [(r.iou, r.tp, r.fp, r.fn) for r in rates] == [
        (0.3, 2, 0, 0), (0.5, 2, 0, 0), (0.7, 1, 1, 1)]
    assert rates[2] == SpanMatchRate(iou=0.7, tp=1, fp=1, fn=1, precision=0.5, recall=0.5,
                                     f1=0.5)


def test_match_rates_count_rejected_matches_as_false_positives() -> None:
    rates = span_match_rates([Span(0, 10)], [Span(0, 8)], thresholds=(0.5,),
                             rejected=[Span(0, 10)])
    assert (rates[0].tp, rates[0].fp, rates[0].fn) == (0, 1, 1)


def test_match_rates_of_empty_sides() -> None:
    rate = span_match_rates([], [], thresholds=(0.5,))[0]
    assert (rate.precision, rate.recall, rate.f1) == (1.0, 1.0, 1.0)


# --- properties ---------------------------------------------------------------------------------

LENGTH = 200


@st.composite
def spans(draw: st.DrawFn, max_size: int = 12) -> list[Span]:
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        start = draw(st.integers(0, LENGTH))
        end = draw(st.integers(start, min(LENGTH, start + 60)))
        out.append(Span(start, end))
    return out


@st.composite
def source_words(draw: st.DrawFn) -> tuple[Span, ...]:
    text = draw(st.text(alphabet="ab' ,.", min_size=0, max_size=LENGTH))
    return word_spans(text)


@st.composite
def blocks(draw: st.DrawFn) -> list[Span]:
    cuts = sorted(draw(st.lists(st.integers(0, LENGTH), min_size=1, max_size=6)))
    return [Span(a, b) for a, b in zip(cuts, [*cuts[1:], LENGTH], strict=True)]


def brute_force(predicted: list[Span], reference: list[Span],
                words: tuple[Span, ...]) -> tuple[int, int, int]:
    p = [any(w.overlap(s) for s in predicted) for w in words]
    r = [any(w.overlap(s) for s in reference) for w in words]
    return sum(p), sum(r), sum(a and b for a, b in zip(p, r, strict=True))


@SETTINGS
@given(spans(), source_words())
def test_identical_span_sets_score_one(same: list[Span], words: tuple[Span, ...]) -> None:
    assert word_level(same, list(reversed(same)), words).f1 == 1.0


@SETTINGS
@given(spans(), spans(), source_words())
def test_swapping_the_sides_swaps_precision_and_recall(
        predicted: list[Span], reference: list[Span], words: tuple[Span, ...]) -> None:
    forward = word_level(predicted, reference, words)
    backward = word_level(reference, predicted, words)
    assert (forward.precision, forward.recall) == (backward.recall, backward.precision)
    assert forward.f1 == pytest.approx(backward.f1)
    assert forward.overlap_words == backward.overlap_words


@SETTINGS
@given(spans(), spans(), source_words())
def test_word_counts_agree_with_a_brute_force_reading(
        predicted: list[Span], reference: list[Span], words: tuple[Span, ...]) -> None:
    scores = word_level(predicted, reference, words)
    assert (scores.predicted_words, scores.reference_words, scores.overlap_words) == \
        brute_force(predicted, reference, words)
    assert 0.0 <= scores.f1 <= 1.0


@SETTINGS
@given(spans(), spans(), source_words(), blocks())
def test_word_counts_by_block_sum_to_the_totals(
        predicted: list[Span], reference: list[Span], words: tuple[Span, ...],
        parts: list[Span]) -> None:
    counts = word_counts_by_block(predicted, reference, words, parts)
    total = word_level(predicted, reference, words)
    assert len(counts) == len(parts)
    assert tuple(map(sum, zip(*counts, strict=True))) == (
        total.predicted_words, total.reference_words, total.overlap_words)


@SETTINGS
@given(spans(), spans(), spans(max_size=3))
def test_match_rates_are_monotone_in_the_threshold(
        predicted: list[Span], reference: list[Span], rejected: list[Span]) -> None:
    loose, middle, strict = span_match_rates(predicted, reference, rejected=rejected)
    assert loose.tp >= middle.tp >= strict.tp
    assert loose.fp <= middle.fp <= strict.fp
    assert middle.tp == match_spans(predicted, reference, 0.5, rejected=rejected).tp
    for rate in (loose, middle, strict):
        assert rate.tp + rate.fp == len(predicted)
        assert rate.tp + rate.fn == len(reference)
