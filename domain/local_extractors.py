"""Offline rule-based MIU extractors: free, deterministic stand-ins for an LLM.

Each extractor takes chunk text and returns exactly the JSON-able answer an LLM gives for the
extraction prompt, `{"fragments": [...]}`, with every `quote` copied verbatim from the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from domain.subjects import Subject, speaker_is_subject

Extraction = dict[str, list[dict[str, Any]]]

MIN_WORDS = 4
FAST_MIN_WORDS = 6  # the cheap extractor skips short sentences instead of resolving them

# ---------------------------------------------------------------- lexicon (English + Portuguese)
# Space-separated entries; "_" stands for a space inside a phrase. An entry matches at the start
# of a word and may continue ("believ" matches "believes"); a trailing "$" asks for the whole
# word ("son$" must not match "sonho").
_LEXICON: dict[str, dict[str, str]] = {
    "meta_cognitive": {
        "self_awareness": "i_notice i_noticed i've_noticed i_have_noticed i_realiz catch_myself "
        "caught_myself aware hear_myself percebo$ percebi$ perceber$ percebia$ notei$ me_pego "
        "consciên",
        "self_reflection": "looking_back used_to_think distrust doubt certaint humbling "
        "first_impression mistake i've_learned i_have_learned hoje_eu_entendo duvid certez reflet",
    },
    "emotional": {
        "negative_emotion": "angry anger furious afraid fear scared ashamed shame guilt lonely "
        "hurt cry cried panic worry anxious stung impatient insecure frustrat raiva medo "
        "vergonha culpa chor triste magoad ansios nervos brava$ bravo$ incomod irrit infeliz "
        "horrível ofendid machuc",
        "positive_emotion": "love joy happy proud pride relief cheer laugh hope amo$ adoro amor$ "
        "feliz alegr orgulh alívio esperança acalma calma$",
        "regret_longing": "regret miss$ saudade arrepend",
    },
    "values_beliefs": {
        "honesty": "honest truth lie$ lies$ lying pretend verdade mentir mentira",
        "fairness": "fair unfair justice respect deserve dignity justo$ justa$ justiça injust "
        "respeit merec humilh",
        "core_beliefs": "believe belief faith principle matter should$ must$ acredit fé$ "
        "princípio deve$ importa",
        "responsibility": "safety safe$ responsib duty obligation protect loyal segurança "
        "responsab obrigação proteg dever$ lealdade",
    },
    "cognitive": {
        "decision_making": "decid decision choos chose choice worst_reasonable decisão escolh "
        "planilha",
        "reasoning": "i_think think$ thought understand understood reason logic calculat "
        "equation penso pensar entend lógic raciocín calcul acho_que",
        "learning": "learn aprend",
        "problem_solving": "solve fix$ fixing fixed figure_out resolv consert soluç",
    },
    "social": {
        "relationships": "friend colleague trust relationship marriage amig colega confi "
        "relação relacion",
        "belonging": "community belong people$ comunidade pertenc pessoas$",
        "group_roles": "team staff crew principal$ student kids$ parents customer boss equipe "
        "brigada funcionári aluno cliente chefe$ sociedade cozinheiros",
        "conflict": "conflict argument disagree fight conflito discut briga concorrente",
    },
    "behavioral": {
        "routines": "wake woke routine habit every_morning every_day every_sunday every_night "
        "usually acordo rotina hábito todo_dia todos_os_dias costumo toda_semana",
        "work_practices": "swim knit build check carry grade$ grading drive$ cook nado$ "
        "cozinhar$ cozinho$ cozinhando$ provo$ testo$ testar compro$ anot posto$ limp",
        "coping": "cope deal_with dealt_with avoid breathe calm_down lidar lido$ evit respir",
    },
    "communicative": {
        "expression_style": "blunt explain explanation analog talk speak tone voice words$ "
        "explic falo$ falar fala$ convers tom_de_voz voz$ palavra",
        "listening_asking": "listen ask question escut ouvi pergunt",
        "writing": "write wrote written comment email e-mail message letter escrev mensage "
        "legenda carta$",
    },
    "biographical": {
        "origins": "born$ grew_up grow_up hometown childhood nasci$ cresci$ infância criada$ "
        "criado$ bairro",
        "family": "father mother dad$ mom$ brother sister son$ sons$ daughter husband wife$ "
        "grandmother grandfather married family pai$ mãe$ irmã irmão filho filha marido esposa "
        "avó$ avô$ casad neta$ família",
        "education": "college university degree graduat scholarship license faculdade "
        "universidade estudei formei diploma",
        "career": "career salary firm$ job$ jobs$ worked retire promot carreira emprego salário "
        "escritório trabalhei advogad profiss",
    },
}
# Dict order above is the tie-break: on equal hits the more psychological category wins.
CATEGORIES: tuple[str, ...] = tuple(_LEXICON)


def _alternative(entry: str) -> str:
    whole = entry.endswith("$")
    phrase = re.escape(entry.rstrip("$").replace("_", " "))
    body = phrase.replace("'", "['’]").replace("\\ ", r"\s+")
    return body + (r"\b" if whole else r"\w*")


def _words(entries: str) -> re.Pattern[str]:
    alternatives = "|".join(_alternative(entry) for entry in entries.split())
    return re.compile(r"\b(?:" + alternatives + ")", re.IGNORECASE)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_SUBCATEGORY_PATTERNS = {
    (category, sub): _words(entries)
    for category, subs in _LEXICON.items()
    for sub, entries in subs.items()
}

# ---------------------------------------------------------------------------- cue patterns
_FIRST_PERSON = _words(
    "i$ i'm$ i've$ i'd$ i'll$ me$ my$ mine$ myself$ we$ our$ us$ eu$ meu$ minha$ meus$ minhas$ "
    "mim$ comigo$ nós$ nosso$ nossa$ a_gente$ acho$ acredito$ lembro$ sinto$ sei$ tenho$ sou$ "
    "estou$ fui$ fiz$ gosto$ prefiro$ quero$ costumo$ penso$ percebo$ aprendi$ decidi$ "
    "comecei$ tento$ faço$ digo$"
)
_EVALUATIVE = _words(
    "important matter best$ worst$ better$ worse$ good$ bad$ wrong$ should$ must$ never$ "
    "always$ love hate proud afraid importante melhor$ pior$ bom$ boa$ ruim$ errad certo$ deve$ "
    "nunca$ sempre$ amo$ odeio$ orgulho medo$"
)
_HABIT = _words(
    "always$ usually$ every_morning every_day every_night every_week every_sunday every_spring "
    "every_january every_time whenever$ never$ often$ tend_to sempre$ costumo$ geralmente$ "
    "normalmente$ todo_dia todos_os_dias toda_semana todo_ano toda_vez nunca$ quase_sempre"
)
_PAST_MARKER = _words(
    "i_remember once$ one_day last_year last_spring last_week when_i_was lembro$ uma_vez "
    "quando_eu_era naquela no_ano_passado foi_uma"
)
# Irregular preterites anchor English narration: "-ed" alone is often an adjective ("ashamed").
_PAST_EN_IRREGULAR = _words(
    "was$ were$ had$ went$ did$ came$ got$ took$ made$ left$ became$ told$ said$ thought$ felt$ "
    "knew$ saw$ began$ found$ gave$ kept$ lost$ met$ spent$ taught$ wrote$ bought$ brought$"
)
_PAST_EN_REGULAR = re.compile(r"\b\w{3,}ed\b", re.IGNORECASE)
_PAST_PT = re.compile(r"\b\w{3,}(?:ei|ou|iu|ava|avam)\b", re.IGNORECASE)
_NOT_PAST_PT = frozenset({"estou"})  # present tense that looks like a preterite ("-ou")
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_EXAMPLE = _words("for_example for_instance such_as like_when por_exemplo")
_CAUSAL = _words(
    "because therefore that's_why which_is_why so_that since$ porque$ por_isso então$ "
    "portanto$ pois$ por_causa"
)
_SUMMARY = _words("in_the_end looking_back all_in_all no_fim resumindo hoje_eu")
_HEDGE = _words(
    "maybe$ perhaps$ probably$ i_guess sort_of kind_of talvez$ provavelmente$ meio_que não_sei_se"
)
_INTENSIFIER = _words("deep really$ very$ most$ enorme muito$ demais$ profund maior$")

_CONTRAST = r"(?:but|however|yet|mas|porém|no entanto|entretanto|contudo|só que)\b,?\s+"
_LEADING_CONTRAST = re.compile(_CONTRAST, re.IGNORECASE)
_INNER_CONTRAST = re.compile(r"[,;]\s+" + _CONTRAST, re.IGNORECASE)
# A clause opening with a consequence marker or a pronoun continues the previous one:
# cause→effect stays together and the pronoun keeps its antecedent.
_CONTINUES = _words(
    "so$ therefore$ that's_why$ that_is_why$ this_is_why$ because$ then$ and_so$ hence$ thus$ "
    "então$ por_isso$ daí$ portanto$ porque$ aí$ e_aí$ assim$ foi_por_isso$ that$ this$ it$ "
    "those$ these$ he$ she$ they$ isso$ isto$ aquilo$ ele$ ela$ eles$ elas$ esse$ essa$ este$ "
    "esta$"
)
_SPEAKER_LABEL = re.compile(r"\s*([A-ZÀ-Ý][\w'’.-]*(?: [A-ZÀ-Ý][\w'’.-]*){0,3}):\s+")
# Any "Name: " opening; taken as a label only when it names the subject ("Marta da Silva").
_ANY_LABEL = re.compile(r"\s*([^\s:][^:\n]{0,99}?):\s+")
_INTERVIEWERS = _word_set(
    "interviewer entrevistador entrevistadora q p host question pergunta moderator moderador "
    "moderadora reporter repórter journalist jornalista apresentador apresentadora"
)
_HEADING = re.compile(r"\s*#{1,6}\s")
_BOUNDARY = re.compile(r"[.!?…]+[\"”’»)\]]*(?=\s|$)")
_ABBREVIATIONS = _word_set("mr mrs ms dr dra sr sra st prof vs etc e.g i.e jr nº")
_STOPWORDS = {
    "en": _word_set(
        "the and is i you to of it that was my in with for this what have when be are they he "
        "she not"
    ),
    "pt": _word_set(
        "de que não é um uma para com eu meu minha na do da os mas por mais foi ele ela isso "
        "muito quando como você"
    ),
}


# ------------------------------------------------------------------------------ segmentation
@dataclass(frozen=True, slots=True)
class _Clause:
    """A sentence, or one side of a contrast, spoken by one speaker in one paragraph."""

    start: int
    end: int
    paragraph: int
    speaker: str | None
    question: str | None  # the interviewer's last question before it
    opens_contrast: bool = False


def detect_language(text: str) -> str:
    """'pt' or 'en', by counting each language's most frequent function words."""
    tokens = re.findall(r"\w+", text.lower())
    pt = sum(token in _STOPWORDS["pt"] for token in tokens)
    en = sum(token in _STOPWORDS["en"] for token in tokens)
    return "pt" if pt > en else "en"


def _lines(text: str) -> Iterator[tuple[int, str]]:
    offset = 0
    for line in text.splitlines(keepends=True):
        yield offset, line.rstrip("\r\n")
        offset += len(line)


def _sentence_spans(line: str) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _BOUNDARY.finditer(line):
        before = re.search(r"([\w.]+)$", line[start : match.start()])
        if match.group().startswith(".") and before and before.group(1).lower() in _ABBREVIATIONS:
            continue
        yield start, match.end()
        start = match.end()
    yield start, len(line)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_question(sentence: str) -> bool:
    return sentence.rstrip('"”’»)] ').endswith("?")


def _split_contrasts(text: str, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    lead = _LEADING_CONTRAST.match(text, start, end)
    opens = lead is not None
    if lead:
        start = lead.end()
    for inner in _INNER_CONTRAST.finditer(text, start, end):
        left, right = text[start : inner.start()], text[inner.end() : end]
        # Too short a side is a phrase, not a second claim ("Yes, but only once.").
        if _word_count(left) >= MIN_WORDS and _word_count(right) >= MIN_WORDS:
            yield start, inner.start(), opens
            start, opens = inner.end(), True
    yield start, end, opens


def _word_count(text: str) -> int:
    return len(re.findall(r"\w+", text))


class _Turns:
    """Whose words a line holds. Without a subject, everyone's but the interviewers'; with
    one, only the subject's: any other speaker is context, and so is unlabelled text before
    the chunk's first label, unless the prompt named the speaker the chunk opens with (a
    chunk without any label is the subject's own text: an essay, a diary)."""

    def __init__(self, text: str, subject: Subject | None) -> None:
        self.subject = subject
        self._known: dict[str, bool] = {}
        self.unlabelled = subject is not None and not any(
            self.label(line) for _, line in _lines(text))

    def label(self, line: str) -> tuple[str, int] | None:
        """(speaker, end of the label) when the line opens with "Name: "."""
        if self.subject is not None:
            broad = _ANY_LABEL.match(line)
            if broad and self.is_subject(broad.group(1)):
                return broad.group(1), broad.end()
        label = _SPEAKER_LABEL.match(line)
        return (label.group(1), label.end()) if label else None

    def is_subject(self, speaker: str) -> bool:
        if speaker not in self._known:
            self._known[speaker] = self.subject is not None and speaker_is_subject(
                speaker, self.subject)
        return self._known[speaker]

    def is_context(self, speaker: str | None) -> bool:
        if self.subject is None:
            return speaker is not None and speaker.lower() in _INTERVIEWERS
        if speaker is None:
            return not self.unlabelled
        return not self.is_subject(speaker)


def _segment(text: str, *, split_contrasts: bool, subject: Subject | None = None,
             opening_speaker: str | None = None) -> list[_Clause]:
    """The interviewee's (the subject's) non-question clauses; headings and the interviewer's
    (the other speakers') turns are dropped, and so are the speaker labels."""
    clauses: list[_Clause] = []
    turns = _Turns(text, subject)
    speaker: str | None = opening_speaker if subject is not None else None
    question: str | None = None
    for paragraph, (offset, line) in enumerate(_lines(text)):
        if not line.strip() or _HEADING.match(line):
            continue
        body_start = 0
        label = turns.label(line)
        if label:
            speaker, body_start = label
        if turns.is_context(speaker):
            question = " ".join(line[body_start:].split())
            continue
        for rel_start, rel_end in _sentence_spans(line[body_start:]):
            base = offset + body_start
            start, end = _trimmed(text, base + rel_start, base + rel_end)
            if start == end or _is_question(text[start:end]):
                continue
            if not split_contrasts:
                clauses.append(_Clause(start, end, paragraph, speaker, question))
                continue
            for piece_start, piece_end, opens in _split_contrasts(text, start, end):
                clause = _Clause(piece_start, piece_end, paragraph, speaker, question, opens)
                clauses.append(clause)
    return clauses


def _groups(text: str, clauses: list[_Clause], max_size: int = 3) -> Iterator[list[_Clause]]:
    group: list[_Clause] = []
    for clause in clauses:
        joins = (
            group
            and len(group) < max_size
            and clause.paragraph == group[-1].paragraph
            and not clause.opens_contrast
            and _CONTINUES.match(text, clause.start) is not None
        )
        if group and not joins:
            yield group
            group = []
        group.append(clause)
    if group:
        yield group


# ------------------------------------------------------------------------------ classification
@dataclass(frozen=True, slots=True)
class _Reading:
    """What the cue patterns say about one piece of text."""

    category: str
    subcategory: str
    hits: int
    tags: tuple[str, ...]


def _classify(quote: str, language: str) -> _Reading:
    scores: dict[str, int] = {}
    best_sub: dict[str, tuple[int, str]] = {}
    tags: list[str] = []
    for (category, sub), pattern in _SUBCATEGORY_PATTERNS.items():
        found = [_tag(match.group()) for match in pattern.finditer(quote)]
        if not found:
            continue
        scores[category] = scores.get(category, 0) + len(found)
        if len(found) > best_sub.get(category, (0, ""))[0]:
            best_sub[category] = (len(found), sub)
        tags.extend(tag for tag in found if tag not in tags)
    if not scores:
        return _fallback(quote, language)
    if "biographical" in scores and _YEAR.search(quote):
        scores["biographical"] += 1  # a dated statement is first of all a life event
    # max() keeps the first of equal scores, and dict order follows CATEGORIES.
    category = max((c for c in CATEGORIES if c in scores), key=lambda c: scores[c])
    return _Reading(category, best_sub[category][1], scores[category], tuple(tags[:5]))


def _tag(matched: str) -> str:
    return " ".join(matched.lower().replace("’", "'").split())


def _fallback(quote: str, language: str) -> _Reading:
    # No keyword: a dated or narrated statement is biography, a first-person one is conduct.
    if _is_past_narration(quote, language):
        return _Reading("biographical", "life_events", 0, ())
    if _FIRST_PERSON.search(quote):
        return _Reading("behavioral", "actions", 0, ())
    return _Reading("cognitive", "general", 0, ())


def _is_past_narration(quote: str, language: str) -> bool:
    if _PAST_MARKER.search(quote) or _YEAR.search(quote):
        return True
    if language == "pt":
        verbs = [m for m in _PAST_PT.findall(quote) if m.lower() not in _NOT_PAST_PT]
        return len(verbs) >= 2
    irregular = len(_PAST_EN_IRREGULAR.findall(quote))
    return irregular >= 1 and irregular + len(_PAST_EN_REGULAR.findall(quote)) >= 2


def _fragment_type(quote: str, language: str, sentences: int, first_person: bool) -> str:
    if _HABIT.search(quote):
        return "pattern"
    if _EXAMPLE.search(quote):
        return "example"
    if _is_past_narration(quote, language):
        return "anecdote"
    if _CAUSAL.search(quote):
        return "analysis"
    if sentences >= 3 or _SUMMARY.search(quote):
        return "synthesis"
    return "direct_quote" if first_person else "description"


def _relevance(quote: str, reading: _Reading, first_person: bool) -> int:
    score = 4 + 2 * first_person + min(reading.hits, 3)
    score += bool(_INTENSIFIER.search(quote)) + bool(_CAUSAL.search(quote))
    score -= 2 * (_word_count(quote) < 6)
    return max(1, min(10, score))


def _confidence(quote: str, reading: _Reading, first_person: bool, speaker: str | None) -> float:
    score = 0.55 + 0.15 * first_person + 0.1 * (reading.hits >= 1) + 0.05 * (reading.hits >= 3)
    score += 0.05 * (speaker is not None) - 0.15 * bool(_HEDGE.search(quote))
    return round(max(0.1, min(0.95, score)), 2)


# -------------------------------------------------------------------------------- wording
_INSIGHTS = {
    "en": {
        "biographical": "Places {who} in a life history ({sub}).",
        "cognitive": "Shows how {who} thinks and decides ({sub}).",
        "communicative": "Shows how {who} expresses and explains things ({sub}).",
        "behavioral": "Shows a habitual behaviour of {who} ({sub}).",
        "values_beliefs": "Reveals what {who} holds as right or important ({sub}).",
        "social": "Shows how {who} relates to other people ({sub}).",
        "emotional": "Reveals an emotional response of {who} ({sub}).",
        "meta_cognitive": "Shows {who} reflecting on their own thinking ({sub}).",
    },
    "pt": {
        "biographical": "Situa {who} na própria história de vida ({sub}).",
        "cognitive": "Mostra como {who} pensa e decide ({sub}).",
        "communicative": "Mostra como {who} se expressa e explica ({sub}).",
        "behavioral": "Mostra um comportamento habitual de {who} ({sub}).",
        "values_beliefs": "Revela o que {who} considera certo ou importante ({sub}).",
        "social": "Mostra como {who} se relaciona com outras pessoas ({sub}).",
        "emotional": "Revela uma reação emocional de {who} ({sub}).",
        "meta_cognitive": "Mostra {who} refletindo sobre o próprio pensamento ({sub}).",
    },
}
_NOBODY = {"en": "the speaker", "pt": "a pessoa entrevistada"}


def _context(clause: _Clause, language: str, *, with_question: bool) -> str:
    who = clause.speaker or _NOBODY[language]
    if with_question and clause.question:
        question = clause.question if len(clause.question) <= 200 else clause.question[:197] + "..."
        return ("In answer to: “{q}”" if language == "en" else "Em resposta a: “{q}”").format(
            q=question
        )
    return ("Said by {who}." if language == "en" else "Dito por {who}.").format(who=who)


def _readable(quote: str) -> str:
    # One line, and a capital even when a contrast split cut the sentence's first word off.
    flat = " ".join(quote.split())
    return flat[:1].upper() + flat[1:]


def _insight(reading: _Reading, speaker: str | None, language: str) -> str:
    template = _INSIGHTS[language][reading.category]
    subcategory = reading.subcategory.replace("_", " ")
    return template.format(who=speaker or _NOBODY[language], sub=subcategory)


# ------------------------------------------------------------------------------ extractors
def extract_fast(text: str, *, subject: Subject | None = None,
                 opening_speaker: str | None = None) -> Extraction:
    """One direct-quote fragment per evaluative, or first-person and on-topic, sentence (of
    the subject's turns when a subject is given)."""
    language = detect_language(text)
    fragments: list[dict[str, Any]] = []
    for clause in _segment(text, split_contrasts=False, subject=subject,
                           opening_speaker=opening_speaker):
        quote = text[clause.start : clause.end]
        if _word_count(quote) < FAST_MIN_WORDS:
            continue
        reading = _classify(quote, language)
        first_person = _FIRST_PERSON.search(quote) is not None
        if not (_EVALUATIVE.search(quote) or (first_person and reading.hits)):
            continue
        fragments.append(
            {
                "content": " ".join(quote.split()),
                "quote": quote,
                "category": reading.category,
                "subcategory": "general",
                "fragment_type": "direct_quote",
                "context": _context(clause, language, with_question=False),
                "insight": _insight(
                    replace(reading, subcategory="general"), clause.speaker, language
                ),
                "relevance": 5 + first_person + min(reading.hits, 2),
                "confidence": 0.7 if first_person else 0.5,
                "tags": [reading.category],
            }
        )
    return {"fragments": fragments}


def extract_thorough(text: str, *, subject: Subject | None = None,
                     opening_speaker: str | None = None) -> Extraction:
    """Cause→effect groups split at contrasts, with subcategories, types, tags and scores (of
    the subject's turns when a subject is given)."""
    language = detect_language(text)
    fragments: list[dict[str, Any]] = []
    clauses = _segment(text, split_contrasts=True, subject=subject,
                       opening_speaker=opening_speaker)
    for group in _groups(text, clauses):
        first, last = group[0], group[-1]
        quote = text[first.start : last.end]
        reading = _classify(quote, language)
        first_person = _FIRST_PERSON.search(quote) is not None
        evaluative = _EVALUATIVE.search(quote) is not None
        if _word_count(quote) < MIN_WORDS or not (first_person or evaluative or reading.hits):
            continue
        fragments.append(
            {
                "content": _readable(quote),
                "quote": quote,
                "category": reading.category,
                "subcategory": reading.subcategory,
                "fragment_type": _fragment_type(quote, language, len(group), first_person),
                "context": _context(first, language, with_question=True),
                "insight": _insight(reading, first.speaker, language),
                "relevance": _relevance(quote, reading, first_person),
                "confidence": _confidence(quote, reading, first_person, first.speaker),
                "tags": list(reading.tags) or [reading.subcategory],
            }
        )
    return {"fragments": fragments}


EXTRACTORS: dict[str, Callable[..., Extraction]] = {
    "rules-fast": extract_fast,
    "rules-thorough": extract_thorough,
}


def extract(name: str, text: str, *, subject: Subject | None = None,
            opening_speaker: str | None = None) -> Extraction:
    """Run the named local extractor over `text`; with a subject, over the subject's words."""
    try:
        extractor = EXTRACTORS[name]
    except KeyError:
        raise ValueError(f"unknown local extractor {name!r}; known: {sorted(EXTRACTORS)}") from None
    return extractor(text, subject=subject, opening_speaker=opening_speaker)
