"""Deterministic MIU lint: is a fragment self-contained, and are its boundaries clean?

The checks are heuristics over English and Portuguese markers, kept simple on purpose: the
same text always gets the same verdict, and the model's own claim is never consulted.

- `dangling_pronoun`: the fragment opens with a third-person pronoun, a demonstrative or a
  relative ("this", "they", "which", "isso", "ela", "que"), whose antecedent lies outside.
  First-person openings ("I", "we", "eu", "nós") are fine: the speaker is known from the source.
- `dangling_connective`: it opens with a word that continues earlier text ("also", "but",
  "however", "também", "mas", "porém").
- `too_short`: fewer than three words cannot hold a subject and a predicate.
- `no_predicate`: no verb-like word (an auxiliary or common verb, a word right after a subject
  pronoun, or a verb ending such as -ed/-ing, -ou/-ava/-ando/-ar/-i).
- `no_sentence_end`: it does not end with . ! ? … (optionally followed by a closing quote).
- `unsplit_contrast`: a contrast (", but", "; however", ", mas", "no entanto"…) joins two
  clauses of at least three words each, both with a verb-like word: two claims that should be
  two fragments ("tired, but happy with my life" is one claim).
- `span_starts_mid_clause` / `span_ends_mid_clause`: with the source and span given, the span
  starts or ends inside a clause (e.g. mid-sentence after a plain word, or inside a word).
- `mixes speakers: A, B`: with the speakers whose turns the span overlaps given (a
  transcript), two or more of them: one MIU holds one person's words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORDS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*\s*$")
_CLAUSE_PUNCTUATION = ".!?…;:,"
_SENTENCE_PUNCTUATION = ".!?…;:"
_QUOTES_AND_DASHES = "\"'“”‘’«»()[]—–-"


def _word_set(*lines: str) -> frozenset[str]:
    """Space-separated words as a set (keeps long marker lists readable)."""
    return frozenset(" ".join(lines).split())


_EN_DANGLING = _word_set(
    "this that these those it its they them their theirs he him his she her hers "
    "which who whom whose such",
)
_PT_DANGLING = _word_set(
    "isso isto aquilo ele ela eles elas esse essa esses essas este esta estes estas aquele "
    "aquela aqueles aquelas dele dela deles delas disso disto daquilo nisso nisto naquilo "
    "nesse nessa neste nesta desse dessa deste desta lhe lhes que qual quais cujo cuja",
)
_EN_CONNECTIVES = _word_set(
    "also but however and or nor so therefore thus moreover furthermore besides",
)
_PT_CONNECTIVES = _word_set(
    "também mas porém contudo entretanto todavia portanto e ou nem além",
)

_EN_VERBS = _word_set(
    "am is are was were be been being have has had do does did will would can could shall "
    "should may might must i'm i've i'll i'd it's that's don't doesn't didn't can't won't "
    "isn't wasn't aren't weren't haven't hasn't think thought believe feel felt know knew "
    "want wanted love like hate need say said go went make made get got see saw take took "
    "come came give gave find found tell told become became learn learnt try keep kept start "
    "remember fear hope wish grow grew leave left live lose lost decide work read write wrote "
    "mean meant seem seems",
)
_PT_VERBS = _word_set(
    "é são foi fui era eram sou somos está estão estava estou estive tem têm tinha tenho "
    "tive teve vou vai vamos ia pode posso podia quero quer queria acho sei sabe sabia faz "
    "fiz fez disse digo diz gosto penso sinto acredito preciso consigo vejo vi "
    "saí caí pedi vivi comi li ri ser estar ter ir fazer dizer",
)
_SUBJECTS = _word_set("i we you he she they it eu nós você vocês ele ela eles elas gente")
_EN_VERB_ENDINGS = ("ed", "ing", "n't")
_PT_VERB_ENDINGS = (
    "ou", "ei", "ava", "avam", "ia", "iam", "amos", "emos", "imos", "ando", "endo", "indo",
    "aram", "eram", "iram", "ar", "er", "ir", "ria", "riam", "asse", "esse", "isse", "i",
)  # fmt: skip

_EN_LEADING_PHRASES = (r"on the other hand\b", r"in addition\b", r"as well\b")
_PT_LEADING_PHRASES = (r"no entanto\b", r"além disso\b", r"por isso\b", r"por outro lado\b")
_EN_CONTRASTS = (
    r",\s*but\s", r";\s*but\s", r"[;,]\s*however\b", r";\s*nevertheless\b", r",\s*yet\s",
    r"[.!?…]\s+(?:but|however|nevertheless)\b",
)  # fmt: skip
_PT_CONTRASTS = (
    r",\s*mas\s", r";\s*mas\s", r"[;,]\s*porém\b", r"\bno entanto\b", r"\bcontudo\b",
    r"\bentretanto\b", r"\btodavia\b", r"[.!?…]\s+(?:mas|porém)\b",
)  # fmt: skip


@dataclass(frozen=True)
class MiuCheck:
    """The two MIU flags and the names of the checks that failed."""

    is_complete: bool
    has_clean_boundaries: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class _Markers:
    dangling: frozenset[str]
    connectives: frozenset[str]
    verbs: frozenset[str]
    verb_endings: tuple[str, ...]
    contrasts: re.Pattern[str]
    leading_phrases: re.Pattern[str]


def _markers(english: bool, portuguese: bool) -> _Markers:
    def pick(en: frozenset[str], pt: frozenset[str]) -> frozenset[str]:
        return (en if english else frozenset()) | (pt if portuguese else frozenset())

    def either(en: tuple[str, ...], pt: tuple[str, ...]) -> tuple[str, ...]:
        return (en if english else ()) + (pt if portuguese else ())

    leading = either(_EN_LEADING_PHRASES, _PT_LEADING_PHRASES)
    return _Markers(
        dangling=pick(_EN_DANGLING, _PT_DANGLING),
        connectives=pick(_EN_CONNECTIVES, _PT_CONNECTIVES),
        verbs=pick(_EN_VERBS, _PT_VERBS),
        verb_endings=either(_EN_VERB_ENDINGS, _PT_VERB_ENDINGS),
        contrasts=re.compile("|".join(either(_EN_CONTRASTS, _PT_CONTRASTS)), re.IGNORECASE),
        leading_phrases=re.compile(r"\W*(?:" + "|".join(leading) + ")", re.IGNORECASE),
    )


_BY_LANGUAGE = {"en": _markers(True, False), "pt": _markers(False, True)}
_ANY_LANGUAGE = _markers(True, True)


def _markers_for(language: str) -> _Markers:
    """Markers for a language code ("en", "pt-BR"…); unknown codes get both languages."""
    base = language.strip().lower().replace("_", "-").split("-")[0]
    return _BY_LANGUAGE.get(base, _ANY_LANGUAGE)


def lint_fragment(
    text: str,
    *,
    language: str,
    source: str | None = None,
    span: tuple[int, int] | None = None,
    speakers: Sequence[str] = (),
) -> MiuCheck:
    """Lint a fragment's text; with `source` and `span`, also lint where the span sits; with
    `speakers` (those whose turns the span overlaps), flag a span mixing two or more."""
    markers = _markers_for(language)
    completeness = _completeness_reasons(text, _words(text), markers)
    boundaries = _contrast_reasons(text, markers)
    if source is not None and span is not None:
        boundaries += _span_reasons(source, span)
    distinct = list(dict.fromkeys(speakers))
    if len(distinct) > 1:
        boundaries.append(mixes_speakers_reason(distinct))
    return MiuCheck(
        is_complete=not completeness,
        has_clean_boundaries=not boundaries,
        reasons=tuple(completeness + boundaries),
    )


def mixes_speakers_reason(speakers: Sequence[str]) -> str:
    """The lint reason for a span over several speakers' turns: "mixes speakers: A, B"."""
    return "mixes speakers: " + ", ".join(speakers)


def _words(text: str) -> list[str]:
    return [word.lower().replace("’", "'") for word in _WORDS.findall(text)]


def _completeness_reasons(text: str, words: list[str], markers: _Markers) -> list[str]:
    reasons: list[str] = []
    if words and words[0] in markers.dangling:
        reasons.append("dangling_pronoun")
    elif (words and words[0] in markers.connectives) or markers.leading_phrases.match(text):
        reasons.append("dangling_connective")
    if len(words) < 3:
        reasons.append("too_short")
    elif not _has_verb(words, markers):
        reasons.append("no_predicate")
    if not _SENTENCE_END.search(text):
        reasons.append("no_sentence_end")
    return reasons


def _has_verb(words: list[str], markers: _Markers) -> bool:
    for previous, word in zip(["", *words], words, strict=False):
        if word in markers.verbs or previous in _SUBJECTS or _has_verb_ending(word, markers):
            return True
    return False


def _has_verb_ending(word: str, markers: _Markers) -> bool:
    if len(word) <= 4 or not word.endswith(markers.verb_endings):
        return False
    # "-ia" is also a common noun ending, but those nouns carry an accent (infância, família)
    # while imperfect verbs do not (fazia, vivia).
    return word.isascii() or not word.endswith(("ia", "iam"))


def _contrast_reasons(text: str, markers: _Markers) -> list[str]:
    for match in markers.contrasts.finditer(text):
        before = re.split(r"[.!?…;:]", text[: match.start()])[-1]
        after = re.split(r"[.!?…;]", text[match.end() :])[0]
        if _is_clause(before, markers) and _is_clause(after, markers):
            return ["unsplit_contrast"]
    return []


def _is_clause(text: str, markers: _Markers) -> bool:
    """At least three words with a verb-like one: a claim of its own, not a qualifier."""
    words = _words(text)
    return len(words) >= 3 and _has_verb(words, markers)


def _span_reasons(source: str, span: tuple[int, int]) -> list[str]:
    start, end = span
    if not 0 <= start < end <= len(source):
        raise ValueError(f"span {span} is outside the source")
    reasons: list[str] = []
    if not _opens_clause(source, start):
        reasons.append("span_starts_mid_clause")
    if not _closes_clause(source, start, end):
        reasons.append("span_ends_mid_clause")
    return reasons


def _opens_clause(source: str, start: int) -> bool:
    """Start of text or of a line, or after clause punctuation (quotes and dashes skipped)."""
    i = start
    while i > 0 and (_is_blank(source[i - 1]) or source[i - 1] in _QUOTES_AND_DASHES):
        i -= 1
    return i == 0 or source[i - 1] in "\r\n" or source[i - 1] in _CLAUSE_PUNCTUATION


def _closes_clause(source: str, start: int, end: int) -> bool:
    """End of text or of a line, or clause punctuation at the end of or right after the span."""
    if end == len(source):
        return True
    if source[end].isalnum():
        return False  # the span stops inside a word
    following = end
    while following < len(source) and _is_blank(source[following]):
        following += 1
    if following == len(source) or source[following] in "\r\n":
        return True
    last = source[start:end].rstrip().rstrip(_QUOTES_AND_DASHES)
    ends_with_punctuation = bool(last) and last[-1] in _CLAUSE_PUNCTUATION
    return ends_with_punctuation or source[following] in _SENTENCE_PUNCTUATION


def _is_blank(char: str) -> bool:
    """Whitespace that does not end a line."""
    return char.isspace() and char not in "\r\n"
