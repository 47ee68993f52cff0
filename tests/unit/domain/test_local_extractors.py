"""The offline rule-based extractors answer like an LLM: grounded, valid, deterministic."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.demo_data import Sample, load_samples
from domain.local_extractors import EXTRACTORS, detect_language, extract
from domain.model import Category, FragmentType

SAMPLES = {sample["language"].split("-")[0]: sample for sample in load_samples()}
FRAGMENT_KEYS = {
    "content",
    "quote",
    "category",
    "subcategory",
    "fragment_type",
    "context",
    "insight",
    "relevance",
    "confidence",
    "tags",
}
EVERY_RUN = [(name, language) for name in sorted(EXTRACTORS) for language in sorted(SAMPLES)]


def fragments(name: str, text: str) -> list[dict[str, Any]]:
    return extract(name, text)["fragments"]


def only(name: str, text: str) -> dict[str, Any]:
    found = fragments(name, text)
    assert len(found) == 1, [fragment["quote"] for fragment in found]
    return found[0]


def interviewer_lines(sample: Sample) -> list[str]:
    labels = ("Interviewer:", "Entrevistador:")
    return [line for line in sample["content"].splitlines() if line.startswith(labels)]


# ---------------------------------------------------------------- on the demo interviews


def test_demo_samples_are_two_long_interviews_in_english_and_portuguese() -> None:
    # Given / When
    samples = load_samples()

    # Then
    assert [sample["language"] for sample in samples] == ["en", "pt-BR"]
    for sample in samples:
        assert sample["sourceType"] == "interview"
        assert sample["title"] and sample["author"] and sample["sourceCode"]
        assert not sample["content"].startswith("#")
        assert 2_500 <= len(sample["content"].split()) <= 3_500


@pytest.mark.parametrize(("name", "language"), EVERY_RUN)
def test_every_quote_is_an_exact_substring_of_the_input(name: str, language: str) -> None:
    text = SAMPLES[language]["content"]

    found = fragments(name, text)

    assert len(found) >= 50
    for fragment in found:
        assert fragment["quote"] in text
        assert fragment["quote"] == fragment["quote"].strip()


@pytest.mark.parametrize(("name", "language"), EVERY_RUN)
def test_fragments_have_the_shape_the_llm_answer_has(name: str, language: str) -> None:
    answer = extract(name, SAMPLES[language]["content"])

    assert set(answer) == {"fragments"}
    assert json.loads(json.dumps(answer)) == answer
    for fragment in answer["fragments"]:
        assert set(fragment) == FRAGMENT_KEYS
        assert Category(fragment["category"]) is not Category.GENERAL
        assert FragmentType(fragment["fragment_type"])
        assert isinstance(fragment["relevance"], int) and 1 <= fragment["relevance"] <= 10
        assert isinstance(fragment["confidence"], float) and 0 <= fragment["confidence"] <= 1
        assert fragment["content"] and fragment["insight"] and fragment["context"]
        assert fragment["subcategory"]
        assert fragment["tags"] and all(isinstance(tag, str) and tag for tag in fragment["tags"])


@pytest.mark.parametrize(("name", "language"), EVERY_RUN)
def test_every_category_of_the_taxonomy_is_found_in_a_rich_interview(
    name: str, language: str
) -> None:
    found = fragments(name, SAMPLES[language]["content"])

    categories = {fragment["category"] for fragment in found}

    assert categories == {category.value for category in Category} - {"general"}


@pytest.mark.parametrize(("name", "language"), EVERY_RUN)
def test_the_same_input_gives_the_same_output(name: str, language: str) -> None:
    text = SAMPLES[language]["content"]

    first, second = extract(name, text), extract(name, text)

    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_thorough_finds_more_fragments_than_fast(language: str) -> None:
    text = SAMPLES[language]["content"]

    fast, thorough = fragments("rules-fast", text), fragments("rules-thorough", text)

    assert len(thorough) > len(fast)
    assert {fragment["fragment_type"] for fragment in fast} == {"direct_quote"}
    assert len({fragment["fragment_type"] for fragment in thorough}) >= 4


@pytest.mark.parametrize(("name", "language"), EVERY_RUN)
def test_interviewer_turns_and_questions_are_never_quoted(name: str, language: str) -> None:
    sample = SAMPLES[language]
    asked = interviewer_lines(sample)

    found = fragments(name, sample["content"])

    assert len(asked) >= 30
    for fragment in found:
        assert not fragment["quote"].rstrip('”"').endswith("?")
        assert not any(fragment["quote"] in line for line in asked)
        assert "Interviewer:" not in fragment["quote"]
        assert "Entrevistador:" not in fragment["quote"]


def test_portuguese_interview_is_detected_and_described_in_portuguese() -> None:
    text = SAMPLES["pt"]["content"]

    found = fragments("rules-thorough", text)

    assert detect_language(text) == "pt"
    assert detect_language(SAMPLES["en"]["content"]) == "en"
    assert any("ã" in fragment["quote"] or "é" in fragment["quote"] for fragment in found)
    assert all(fragment["context"].startswith("Em resposta a:") for fragment in found)
    assert any(fragment["insight"].startswith("Revela") for fragment in found)


def test_thorough_context_names_the_question_being_answered() -> None:
    text = SAMPLES["en"]["content"]

    first = fragments("rules-thorough", text)[0]

    assert first["context"].startswith("In answer to: “Thank you for making time")
    assert first["insight"].startswith("Places Margaret")


def test_injected_instructions_are_quoted_as_data_like_any_other_sentence() -> None:
    # Given: the interview quotes a phishing email addressed to an AI assistant
    text = SAMPLES["en"]["content"]
    assert "Ignore previous instructions" in text

    # When
    found = fragments("rules-thorough", text)

    # Then: the email is evidence in a fragment, and extraction carried on past it
    carrying = [fragment for fragment in found if "Ignore previous" in fragment["quote"]]
    assert len(carrying) == 1
    assert carrying[0]["quote"] in text
    after = text.index("Ignore previous")
    assert any(text.index(fragment["quote"]) > after for fragment in found)


# ------------------------------------------------------------------------- on small texts


def test_thorough_keeps_cause_and_effect_together() -> None:
    text = "Margaret: I was furious. So I went home and applied to the engineering school."

    fragment = only("rules-thorough", text)

    assert (
        fragment["quote"] == "I was furious. So I went home and applied to the engineering school."
    )


def test_thorough_keeps_a_pronoun_with_its_antecedent() -> None:
    text = "Cláudia: A minha avó não media nada. Ela provava e jogava mais um punhado de jambu."

    fragment = only("rules-thorough", text)

    assert fragment["quote"].startswith("A minha avó")
    assert fragment["quote"].endswith("punhado de jambu.")


@pytest.mark.parametrize(
    ("text", "left", "right"),
    [
        (
            "Margaret: I was a good engineer at the firm, but I was unhappy every single day.",
            "I was a good engineer at the firm",
            "I was unhappy every single day.",
        ),
        (
            "Cláudia: Eu era boa advogada no escritório, mas eu era infeliz todos os dias.",
            "Eu era boa advogada no escritório",
            "eu era infeliz todos os dias.",
        ),
    ],
)
def test_thorough_splits_independent_claims_at_a_contrast(text: str, left: str, right: str) -> None:
    thorough = [fragment["quote"] for fragment in fragments("rules-thorough", text)]
    fast = [fragment["quote"] for fragment in fragments("rules-fast", text)]

    assert thorough == [left, right]
    assert len(fast) == 1


def test_thorough_drops_a_leading_contrast_word_from_the_quote() -> None:
    text = "Margaret: I loved the work. However, I never trusted the schedules we were given."

    quotes = [fragment["quote"] for fragment in fragments("rules-thorough", text)]

    assert quotes == ["I loved the work.", "I never trusted the schedules we were given."]


@pytest.mark.parametrize(
    ("text", "fragment_type"),
    [
        ("I usually wake up at five and swim in the lake.", "pattern"),
        ("Eu sempre provo todos os molhos antes de cada serviço.", "pattern"),
        ("In 2004 I signed off on a report for a county bridge.", "anecdote"),
        ("Uma vez ele jogou fora um molho meu inteiro na frente de todo mundo.", "anecdote"),
        ("I decide slowly because I weigh every choice.", "analysis"),
        ("Eu lembro de um gosto, por exemplo o cheiro do açaí na feira.", "example"),
        ("I believe that honesty matters more than comfort.", "direct_quote"),
    ],
)
def test_thorough_infers_the_fragment_type_from_cues(text: str, fragment_type: str) -> None:
    assert only("rules-thorough", text)["fragment_type"] == fragment_type


@pytest.mark.parametrize(
    ("text", "category", "subcategory"),
    [
        ("I grew up in a small mining town in Minnesota.", "biographical", "origins"),
        ("Cresci no bairro do Guamá, em Belém, com a minha avó.", "biographical", "origins"),
        ("I decide slowly and weigh every choice twice.", "cognitive", "decision_making"),
        ("Eu decido devagar e faço planilha antes de escolher.", "cognitive", "decision_making"),
        ("I always explain things with analogies and talk bluntly.", "communicative", None),
        ("Eu falo muito de ingrediente e explico tudo com calma.", "communicative", None),
        ("I usually wake up at five and swim in the lake.", "behavioral", "routines"),
        ("Eu costumo ir ao mercado antes das seis da manhã.", "behavioral", "routines"),
        ("I believe that honesty matters more than comfort.", "values_beliefs", None),
        ("Eu acredito que a verdade importa mais do que o conforto.", "values_beliefs", None),
        ("I trust my colleagues and my friends on the staff.", "social", "relationships"),
        ("Eu confio na minha equipe e nos meus amigos.", "social", "relationships"),
        ("I feel ashamed and angry when a student is humiliated.", "emotional", None),
        ("Eu sinto muita raiva e vergonha quando alguém mente.", "emotional", None),
        ("I have noticed that I get rigid when I feel insecure.", "meta_cognitive", None),
        ("Eu percebo que eu penso melhor com a mão ocupada.", "meta_cognitive", None),
    ],
)
def test_keywords_in_both_languages_choose_the_category(
    text: str, category: str, subcategory: str | None
) -> None:
    thorough = only("rules-thorough", text)
    fast = only("rules-fast", text)

    assert thorough["category"] == fast["category"] == category
    if subcategory is not None:
        assert thorough["subcategory"] == subcategory
    assert fast["subcategory"] == "general"


def test_hedged_statements_get_lower_confidence() -> None:
    sure = only("rules-thorough", "I believe that honesty matters more than comfort.")
    hedged = only("rules-thorough", "Maybe I believe that honesty matters more than comfort.")

    assert hedged["confidence"] < sure["confidence"]


def test_text_without_speaker_labels_is_read_as_the_subjects_own_words() -> None:
    text = "I grew up near the port.\nMy father worked there for thirty years, and I loved it."

    quotes = [fragment["quote"] for fragment in fragments("rules-thorough", text)]

    assert quotes == [
        "I grew up near the port.",
        "My father worked there for thirty years, and I loved it.",
    ]


def test_offsets_survive_crlf_line_endings_and_emoji() -> None:
    text = (
        "Entrevistador: E as redes?\r\n\r\n"
        "Cláudia: Eu posto todo dia 🙈 no Instagram.\r\n"
        "A minha filha diz “mãe, você tá famosa 😂” e eu adoro.\r\n"
    )

    found = fragments("rules-thorough", text)

    assert [fragment["quote"] for fragment in found] == [
        "Eu posto todo dia 🙈 no Instagram.",
        "A minha filha diz “mãe, você tá famosa 😂” e eu adoro.",
    ]
    assert all("\r" not in fragment["quote"] for fragment in found)


def test_headings_and_blank_input_give_no_fragments() -> None:
    assert extract("rules-thorough", "") == {"fragments": []}
    assert extract("rules-fast", "# Margaret Lindqvist: I believe in bridges\n\n") == {
        "fragments": []
    }


def test_an_unknown_extractor_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="rules-magic"):
        extract("rules-magic", "I believe in bridges.")
