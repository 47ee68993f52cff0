"""Relationship rules and lexical suggestions (pure domain, no I/O)."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.model import RelationshipType
from domain.relationships import (
    Passage,
    check_link,
    content_words,
    contradiction_cues,
    is_negated,
    similarity,
    suggest,
)


def p(fragment_id: int, source_id: int, text: str, language: str = "en") -> Passage:
    return Passage(fragment_id, source_id, text, language)


def test_content_words_drop_stop_words_and_negations() -> None:
    assert content_words("I don't NEVER trust the team’s calls") == [
        "don't", "trust", "team's", "calls"]


def test_similarity_ignores_function_words() -> None:
    assert similarity("I trust my team.", "They trust the team!") == 100.0
    assert similarity("I trust my team.", "Gardens need water.") < 35.0
    assert similarity("the and of", "I trust") == 0.0


@pytest.mark.parametrize(("text", "language", "negated"), [
    ("I don't trust them.", "en", True),
    ("I can't say.", "en", True),
    ("No one came.", "en", True),
    ("Eu não confio neles.", "pt-BR", True),
    ("Nunca mais.", "pt", True),
    ("Eu moro no Rio.", "pt", False),  # "no" is "in the" in Portuguese
    ("Eu moro no Rio.", "", False),
    ("I trust them.", "en", False),
])
def test_negation_is_detected_per_language(text: str, language: str, negated: bool) -> None:
    assert is_negated(text, language) is negated


def test_polarity_difference_and_antonyms_are_contradiction_cues() -> None:
    assert contradiction_cues(p(1, 1, "I always plan ahead."),
                              p(2, 2, "I never plan ahead.")) == [
        "negation", "antonyms:always/never"]
    assert contradiction_cues(p(1, 1, "I love public speaking."),
                              p(2, 2, "I hate public speaking.")) == ["antonyms:hate/love"]
    assert contradiction_cues(p(1, 1, "I plan ahead."), p(2, 2, "I plan ahead too.")) == []


def test_contradiction_ranks_above_a_plain_echo() -> None:
    # Given
    anchor = p(1, 1, "I always trust my team with hard decisions.")
    echo = p(2, 2, "I trust my team with hard decisions.")
    opposite = p(3, 3, "I never trust my team with hard decisions.")
    # When
    found = suggest(anchor, [echo, opposite])
    # Then
    assert [(s.candidate_id, s.relationship_type) for s in found] == [
        (3, RelationshipType.CONTRADICTS), (2, RelationshipType.SUPPORTS)]
    assert found[0].score > found[1].score


def test_change_over_time_suggests_evolves_from() -> None:
    found = suggest(p(1, 1, "Eu confio na equipe para decidir.", "pt"),
                    [p(2, 2, "Hoje em dia eu confio na equipe para decidir.", "pt")])
    assert found[0].relationship_type is RelationshipType.EVOLVES_FROM
    assert found[0].cues == ("change:hoje em dia",)


def test_very_similar_texts_of_equal_length_support_each_other() -> None:
    found = suggest(p(1, 1, "Deadlines make me focus on what matters."),
                    [p(2, 2, "Deadlines make me focus on what matters most.")])
    assert found[0].relationship_type is RelationshipType.SUPPORTS


def test_same_source_candidates_and_weak_matches_are_not_suggested() -> None:
    anchor = p(1, 1, "I trust my team.")
    found = suggest(anchor, [p(2, 1, "I trust my team."), p(3, 2, "Gardens need water."),
                             p(1, 1, "I trust my team.")])
    assert found == []


def test_suggestions_are_capped() -> None:
    anchor = p(1, 1, "I trust my team.")
    found = suggest(anchor, [p(i, i, "I trust my team.") for i in range(2, 30)], limit=5)
    assert [s.candidate_id for s in found] == [2, 3, 4, 5, 6]


def test_self_link_bad_confidence_and_long_notes_are_refused_together() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_link(7, 7, 1.5, "n" * 2001)
    assert [i.path for i in caught.value.issues] == [
        ("input", "relatedFragmentId"), ("input", "confidence"), ("input", "notes")]


def test_nan_confidence_is_refused() -> None:
    with pytest.raises(InvalidInput):
        check_link(1, 2, float("nan"), None)


def test_a_much_longer_text_containing_the_other_elaborates_it_despite_a_negation() -> None:
    found = suggest(p(1, 1, "Deadlines make me focus."),
                    [p(2, 2, "Deadlines make me focus, because without a date on the wall I "
                             "drift between projects and never finish the important ones.")],
                    min_similarity=0)
    assert found[0].relationship_type is RelationshipType.ELABORATES


def test_a_change_over_time_explains_a_flipped_polarity() -> None:
    found = suggest(p(1, 1, "I trust my manager with every decision."),
                    [p(2, 2, "I no longer trust my manager with every decision.")])
    assert found[0].relationship_type is RelationshipType.EVOLVES_FROM
    assert found[0].cues == ("change:no longer",)
