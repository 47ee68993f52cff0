"""MIU lint: deterministic completeness and boundary checks in English and Portuguese."""

from __future__ import annotations

import pytest

from domain.miu import MiuCheck, lint_fragment

CLEAN = MiuCheck(is_complete=True, has_clean_boundaries=True, reasons=())


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "I left the bank because nothing I did there mattered."),
        ("en", "We always argued about politics at dinner."),
        ("en", "My mother taught me to read before I went to school!"),
        ("en-US", '"I never gave up," I told her.'),
        ("pt", "Eu saí do banco porque nada do que eu fazia importava."),
        ("pt", "Sempre quis ser médico desde criança."),
        ("pt-BR", "Meu pai trabalhava na fábrica todos os dias…"),
        ("pt", "A gente morava numa casa pequena perto do rio."),
        ("pt_PT", "– Eu nunca desisti dos meus sonhos, disse ela."),
    ],
)
def test_self_contained_statement_passes_every_check(language: str, text: str) -> None:
    assert lint_fragment(text, language=language) == CLEAN


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "This made me realise that money was not enough."),
        ("en", "They never understood why I quit."),
        ("en", "Which is why I moved to Porto in 1999."),
        ("en", "“That was the day I decided to leave.”"),
        ("pt", "Isso mudou a minha vida para sempre."),
        ("pt", "Ela nunca entendeu por que eu saí."),
        ("pt-BR", "Esse foi o momento em que eu decidi partir."),
        ("pt", "Que foi a razão de eu ter saído de casa."),
    ],
)
def test_leading_pronoun_or_demonstrative_is_dangling(language: str, text: str) -> None:
    check = lint_fragment(text, language=language)

    assert not check.is_complete
    assert check.reasons == ("dangling_pronoun",)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "Also, I hated the commute to the city."),
        ("en", "But I never told my father about it."),
        ("en", "On the other hand, I was scared of failing."),
        ("pt", "Também odiava o trânsito de Lisboa."),
        ("pt", "Mas eu nunca contei isso ao meu pai."),
        ("pt", "No entanto, eu nunca desisti dos meus sonhos."),
    ],
)
def test_leading_connective_depends_on_earlier_text(language: str, text: str) -> None:
    check = lint_fragment(text, language=language)

    assert not check.is_complete
    assert check.reasons == ("dangling_connective",)


def test_first_person_opening_is_not_dangling() -> None:
    assert lint_fragment("I think honesty matters most.", language="en").is_complete
    assert lint_fragment("Eu acho que a honestidade importa.", language="pt").is_complete


@pytest.mark.parametrize(
    ("language", "text", "reason"),
    [
        ("en", "My childhood in Lisbon.", "no_predicate"),
        ("pt", "Minha infância em Lisboa.", "no_predicate"),
        ("en", "I did.", "too_short"),
        ("pt", "Eu fui.", "too_short"),
        ("en", "I grew up poor and I never forgot it", "no_sentence_end"),
        ("pt", "Eu cresci pobre e nunca esqueci disso", "no_sentence_end"),
    ],
)
def test_fragment_without_a_whole_sentence_is_incomplete(
    language: str, text: str, reason: str
) -> None:
    check = lint_fragment(text, language=language)

    assert not check.is_complete
    assert check.has_clean_boundaries
    assert check.reasons == (reason,)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "I loved the job, but I quit after a single year."),
        ("en", "I loved the job; however, I quit after a year."),
        ("en", "I loved the job. However, I quit after a year."),
        ("pt", "Eu gostava do trabalho, mas saí depois de um ano."),
        ("pt", "Eu gostava do trabalho; porém saí depois de um ano."),
        ("pt-BR", "Eu gostava do trabalho, no entanto saí depois de um ano."),
        ("pt", "Eu gostava muito do trabalho, contudo pedi demissão logo."),
    ],
)
def test_contrast_joining_two_claims_is_an_unclean_boundary(language: str, text: str) -> None:
    check = lint_fragment(text, language=language)

    assert check.is_complete
    assert not check.has_clean_boundaries
    assert check.reasons == ("unsplit_contrast",)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "I was tired, but happy with my life."),
        ("en", "Small, but mighty, she always was."),
        ("pt", "Eu estava cansado, mas feliz."),
    ],
)
def test_contrast_inside_one_claim_is_clean(language: str, text: str) -> None:
    assert lint_fragment(text, language=language).has_clean_boundaries


def test_unknown_language_uses_english_and_portuguese_markers() -> None:
    assert lint_fragment("Isso mudou tudo na minha vida.", language="fr").reasons == (
        "dangling_pronoun",
    )
    assert lint_fragment("This changed everything for me.", language="").reasons == (
        "dangling_pronoun",
    )
    english_only = lint_fragment("Isso mudou tudo na minha vida.", language="en")
    assert "dangling_pronoun" not in english_only.reasons


SOURCE = "Maria: Eu cresci em Lisboa.\r\nDepois, mudei-me para o Porto, onde trabalhei anos."


def span_of(text: str) -> tuple[int, int]:
    start = SOURCE.index(text)
    return start, start + len(text)


@pytest.mark.parametrize(
    "quote",
    [
        "Eu cresci em Lisboa.",
        "Maria: Eu cresci em Lisboa.",
        "Depois, mudei-me para o Porto, onde trabalhei anos.",
        "mudei-me para o Porto, onde trabalhei anos.",
        "mudei-me para o Porto,",
        "Eu cresci em Lisboa",
    ],
)
def test_span_on_clause_boundaries_is_clean(quote: str) -> None:
    check = lint_fragment(quote, language="pt", source=SOURCE, span=span_of(quote))

    assert "span_starts_mid_clause" not in check.reasons
    assert "span_ends_mid_clause" not in check.reasons


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        ("cresci em Lisboa.", "span_starts_mid_clause"),
        ("resci em Lisboa.", "span_starts_mid_clause"),
        ("Eu cresci em Lis", "span_ends_mid_clause"),
        ("mudei-me para o", "span_ends_mid_clause"),
    ],
)
def test_span_cutting_into_a_clause_is_unclean(quote: str, reason: str) -> None:
    check = lint_fragment(quote, language="pt", source=SOURCE, span=span_of(quote))

    assert not check.has_clean_boundaries
    assert reason in check.reasons


def test_span_outside_the_source_is_refused() -> None:
    with pytest.raises(ValueError):
        lint_fragment("texto", language="pt", source="curto", span=(2, 99))


def test_lint_is_deterministic() -> None:
    text = "Isso mudou tudo, mas eu nunca contei a ninguém"

    first = lint_fragment(text, language="pt")

    assert first == lint_fragment(text, language="pt")
    assert first.reasons == ("dangling_pronoun", "no_sentence_end", "unsplit_contrast")
