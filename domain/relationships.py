"""Relationships between fragments: lexical suggestions with contradiction cues (EN/PT) and the
rules every stored link obeys.

Suggestions are for a person to accept (`relateFragments`), never written on their own. A
candidate is scored by lexical similarity of content words (rapidfuzz over the texts with stop
words removed); the relationship type proposed follows cues in the two texts:

- an antonym pair spans the two (always/never, love/hate, sempre/nunca, amo/odeio…)
  → `contradicts`;
- one side speaks of a change over time (used to, no longer, costumava, hoje em dia…)
  → `evolves_from`;
- texts of similar length whose polarity differs (one side negated: not/never/não/nunca…)
  → `contradicts`;
- one text contains most of the other and is clearly longer → `elaborates`;
- very similar → `supports`; otherwise → `related_to`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz

from domain.errors import FieldIssue, InvalidInput
from domain.model import RelationshipType

MIN_SIMILARITY = 35.0  # below this, two fragments share too little to propose anything
SUPPORT_SIMILARITY = 70.0
ELABORATION_CONTAINMENT = 90.0
ELABORATION_LENGTH_RATIO = 1.5
MAX_NOTES_CHARS = 2000
CONTRADICTION_BONUS = 0.1  # of the 0..1 score

# A contradicts B is the same claim as B contradicts A: one link per pair for these types.
SYMMETRIC_TYPES = frozenset({RelationshipType.CONTRADICTS, RelationshipType.CONFLICTS_WITH,
                             RelationshipType.RELATED_TO})


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP_WORDS = _word_set("""
a an the and or but if then so of to in on at by for with from as into about over under is are
was were be been being am do does did have has had i me my mine we us our you your he him his
she her it its they them their this that these those there here what which who whom when where
why how all any some such than too very just also can could would should will shall may might
must
o a os as um uma uns umas e ou mas se então de do da dos das em no na nos nas por para com sem
como ao aos à às é são era eram foi foram ser ter tem tinha eu me meu minha nós nosso nossa
você vocês ele ela eles elas isso isto aquilo esse essa este esta que quem qual quando onde
porque muito muita também já só lhe seu sua
""")

_NEGATIONS_EN = _word_set("not no never nothing nobody none neither nor nowhere cannot")
_NEGATIONS_PT = _word_set("não nao nunca jamais nada ninguém nenhum nenhuma nem")
# "no" is a negation in English and "in the" in Portuguese: it counts only in English text.
_NEGATIONS_ANY = (_NEGATIONS_EN | _NEGATIONS_PT) - {"no"}

_ANTONYMS: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(left.split()), frozenset(right.split())) for left, right in (
        ("always", "never"), ("love loved loves", "hate hated hates"),
        ("like liked likes", "dislike disliked dislikes"),
        ("agree agreed agrees", "disagree disagreed disagrees"),
        ("trust trusted trusts", "distrust distrusted distrusts mistrust"),
        ("easy", "hard difficult"), ("best", "worst"), ("better", "worse"),
        ("increase increased", "decrease decreased"), ("success succeeded", "failure failed"),
        ("sempre", "nunca jamais"), ("amo amava adoro adorava", "odeio odiava detesto detestava"),
        ("gosto gostava", "detesto detestava"), ("concordo concordava", "discordo discordava"),
        ("fácil facil", "difícil dificil"), ("confio confiava", "desconfio desconfiava"),
        ("melhor", "pior"), ("sucesso", "fracasso"),
    ))

_CHANGE_PHRASES = (
    "used to", "no longer", "not anymore", "any more", "anymore", "nowadays", "these days",
    "i changed", "changed my mind", "back then", "at first", "over time",
    "costumava", "costumavam", "não mais", "hoje em dia", "antigamente", "mudei de ideia",
    "naquela época", "com o tempo", "no começo", "hoje eu",
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


@dataclass(frozen=True, slots=True)
class Passage:
    """A fragment's text as the suggester sees it."""

    fragment_id: int
    source_id: int
    text: str
    language: str = ""  # BCP 47 tag of the source ("en", "pt-BR"); empty when unknown


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A proposed link from the anchor to `candidate_id`, with the evidence for it."""

    candidate_id: int
    relationship_type: RelationshipType
    score: float  # 0..1, the order of suggestions
    similarity: float  # 0..100, lexical similarity of content words
    cues: tuple[str, ...]


def words(text: str) -> list[str]:
    """Casefolded words with typographic apostrophes folded; contractions stay whole."""
    folded = unicodedata.normalize("NFC", text).replace("’", "'").replace("‘", "'").casefold()
    return _WORD.findall(folded)


def content_words(text: str) -> list[str]:
    """Words that carry meaning: stop words and negations removed."""
    return [w for w in words(text) if w not in _STOP_WORDS and w not in _NEGATIONS_ANY]


def _negations(language: str) -> frozenset[str]:
    base = language.split("-")[0].lower()
    return {"en": _NEGATIONS_EN, "pt": _NEGATIONS_PT}.get(base, _NEGATIONS_ANY)


def similarity(a: str, b: str) -> float:
    """0..100: how much the two texts say with the same content words."""
    left, right = " ".join(content_words(a)), " ".join(content_words(b))
    if not left or not right:
        return 0.0
    return float(fuzz.token_set_ratio(left, right))


def is_negated(text: str, language: str = "") -> bool:
    """True when the text carries a negation (not, never, n't, não, nunca…)."""
    negations = _negations(language)
    return any(w in negations or w.endswith("n't") for w in words(text))


def contradiction_cues(a: Passage, b: Passage) -> list[str]:
    """Why two texts on one topic may contradict: polarity differs, or antonyms span them."""
    cues = []
    if is_negated(a.text, a.language) != is_negated(b.text, b.language):
        cues.append("negation")
    left, right = set(words(a.text)), set(words(b.text))
    for one, other in _ANTONYMS:
        if (left & one and right & other) or (left & other and right & one):
            pair = sorted((left | right) & (one | other))
            cues.append("antonyms:" + "/".join(pair))
    return cues


def change_cues(a: str, b: str) -> list[str]:
    """Phrases that speak of a change over time in either text (used to, costumava…)."""
    found = []
    for text in (a, b):
        padded = " " + " ".join(words(text)) + " "
        found += [p for p in _CHANGE_PHRASES if f" {p} " in padded and p not in found]
    return [f"change:{p}" for p in found]


def classify(anchor: Passage, candidate: Passage,
             score: float) -> tuple[RelationshipType, list[str]]:
    """The relationship type the cues point to, and the cues."""
    shorter, longer = sorted((anchor.text, candidate.text), key=len)
    comparable = len(longer) < ELABORATION_LENGTH_RATIO * len(shorter)
    cues = contradiction_cues(anchor, candidate)
    antonyms = [cue for cue in cues if cue != "negation"]
    if antonyms:
        return RelationshipType.CONTRADICTS, cues
    # A change over time explains a flipped polarity ("I no longer…", "costumava…").
    change = change_cues(anchor.text, candidate.text)
    if change:
        return RelationshipType.EVOLVES_FROM, change
    # Polarity only says something about claims of similar size: a long text holds many
    # clauses, and a negation in one of them is not a denial of the short one.
    if cues and comparable:
        return RelationshipType.CONTRADICTS, cues
    contained = fuzz.partial_ratio(" ".join(content_words(shorter)),
                                   " ".join(content_words(longer)))
    if contained >= ELABORATION_CONTAINMENT and not comparable:
        return RelationshipType.ELABORATES, [f"contains:{round(contained)}"]
    if score >= SUPPORT_SIMILARITY:
        return RelationshipType.SUPPORTS, []
    return RelationshipType.RELATED_TO, []


def suggest(anchor: Passage, candidates: Iterable[Passage], *, limit: int = 10,
            min_similarity: float = MIN_SIMILARITY) -> list[Suggestion]:
    """Candidates from other sources worth linking to the anchor, best first."""
    found = []
    for candidate in candidates:
        if candidate.source_id == anchor.source_id or candidate.fragment_id == anchor.fragment_id:
            continue
        lexical = similarity(anchor.text, candidate.text)
        if lexical < min_similarity:
            continue
        kind, cues = classify(anchor, candidate, lexical)
        # A contradiction is the most useful thing to surface: it ranks above an equal echo.
        bonus = CONTRADICTION_BONUS if kind is RelationshipType.CONTRADICTS else 0.0
        score = round((1 - CONTRADICTION_BONUS) * lexical / 100 + bonus, 4)
        found.append(Suggestion(candidate.fragment_id, kind, score, lexical, tuple(cues)))
    found.sort(key=lambda s: (-s.score, s.candidate_id))
    return found[:limit]


def check_link(fragment_id: int, related_id: int, confidence: float,
               notes: str | None) -> None:
    """Refuse a self-link, a confidence outside 0..1 and overlong notes (nothing is written)."""
    issues = []
    if fragment_id == related_id:
        issues.append(FieldIssue(("input", "relatedFragmentId"),
                                 "must differ from fragmentId: a fragment cannot relate to itself"))
    if not 0.0 <= confidence <= 1.0:
        issues.append(FieldIssue(("input", "confidence"), "must be between 0 and 1"))
    if notes is not None and len(notes) > MAX_NOTES_CHARS:
        issues.append(FieldIssue(("input", "notes"),
                                 f"has {len(notes)} characters; the limit is {MAX_NOTES_CHARS}"))
    if issues:
        raise InvalidInput(issues)
