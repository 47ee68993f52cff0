"""Prepared fragments carry their location, and a span over two speakers fails its
boundaries (domain/extraction.py, domain/miu.py)."""

from __future__ import annotations

from domain.chunking import Chunk
from domain.documents import Segment, SegmentKind
from domain.extraction import PreparedFragment, prepare_fragments
from domain.locations import SegmentIndex
from domain.miu import lint_fragment
from domain.model import Category, FragmentType, Grounding
from domain.parsing import ExtractedFragment

INTERVIEWER = "Interviewer: Where did you grow up? Tell me about the house."
MARTA = ("Marta Silva: I grew up in Porto, near the river. My father fixed boats and I spent "
         "every summer in his workshop. It smelled of tar.")
TEXT = f"{INTERVIEWER}\n\n{MARTA}"
MARTA_AT = len(INTERVIEWER) + 2


def cue(words: str, start_ms: int, end_ms: int, speaker: str) -> Segment:
    start = TEXT.index(words)
    return Segment(SegmentKind.CUE, start, start + len(words), time_start_ms=start_ms,
                   time_end_ms=end_ms, speaker=speaker)


SEGMENTS = [
    Segment(SegmentKind.TURN, 0, len(INTERVIEWER), time_start_ms=0, time_end_ms=3_000,
            speaker="Interviewer"),
    cue("Where did you grow up? Tell me about the house.", 0, 3_000, "Interviewer"),
    Segment(SegmentKind.TURN, MARTA_AT, len(TEXT), time_start_ms=3_200, time_end_ms=11_500,
            speaker="Marta Silva"),
    cue("I grew up in Porto, near the river.", 3_200, 6_000, "Marta Silva"),
    cue("My father fixed boats and I spent every summer in his workshop.", 6_000, 9_000,
        "Marta Silva"),
    cue("It smelled of tar.", 9_000, 11_500, "Marta Silva"),
    Segment(SegmentKind.PAGE, 0, MARTA_AT, page=1),
    Segment(SegmentKind.PAGE, MARTA_AT, len(TEXT), page=2),
    Segment(SegmentKind.CHAPTER, 0, len(TEXT), heading="Childhood"),
]
INDEX = SegmentIndex(TEXT, SEGMENTS)
CHUNK = Chunk(0, 0, len(TEXT), TEXT)


def answer(quote: str) -> ExtractedFragment:
    return ExtractedFragment(content=quote, quote=quote, category=Category.BIOGRAPHICAL,
                             subcategory="origins", fragment_type=FragmentType.DIRECT_QUOTE,
                             context="", insight="", relevance=7, confidence=0.8, tags=(),
                             notes=(), raw={})


def prepared(*quotes: str, segments: SegmentIndex | None = INDEX) -> list[PreparedFragment]:
    return prepare_fragments(TEXT, CHUNK, [answer(q) for q in quotes], language="en",
                             segments=segments)


def test_a_grounded_fragment_gets_its_location() -> None:
    [fragment] = prepared("My father fixed boats and I spent every summer in his workshop. "
                          "It smelled of tar.")

    assert fragment.grounding is Grounding.EXACT
    assert (fragment.speaker, fragment.mixes_speakers) == ("Marta Silva", False)
    assert (fragment.time_start_ms, fragment.time_end_ms) == (6_000, 11_500)
    assert (fragment.page_first, fragment.page_last, fragment.chapter) == (2, 2, "Childhood")
    assert fragment.has_clean_boundaries and fragment.is_complete


def test_a_fragment_over_two_speakers_is_flagged() -> None:
    [fragment] = prepared("Tell me about the house.\n\nMarta Silva: I grew up in Porto, near "
                          "the river.")

    assert fragment.mixes_speakers
    assert not fragment.has_clean_boundaries
    assert fragment.speaker == "Interviewer"
    assert (fragment.page_first, fragment.page_last) == (1, 2)
    assert (fragment.time_start_ms, fragment.time_end_ms) == (0, 6_000)


def test_an_ungrounded_fragment_or_no_segment_map_has_no_location() -> None:
    [lost] = prepared("I was born on the moon and I liked it there.")
    [plain] = prepared("I grew up in Porto, near the river.", segments=None)

    for fragment in (lost, plain):
        assert (fragment.speaker, fragment.mixes_speakers, fragment.page_first,
                fragment.page_last, fragment.time_start_ms, fragment.time_end_ms,
                fragment.chapter) == (None, False, None, None, None, None, None)
    assert lost.grounding is Grounding.UNGROUNDED and plain.grounding is Grounding.EXACT


def test_the_lint_names_the_mixed_speakers() -> None:
    text = "I grew up in Porto, near the river."

    mixed = lint_fragment(text, language="en", speakers=("Interviewer", "Marta Silva",
                                                         "Interviewer"))
    alone = lint_fragment(text, language="en", speakers=("Marta Silva",))

    assert mixed.reasons == ("mixes speakers: Interviewer, Marta Silva",)
    assert (mixed.is_complete, mixed.has_clean_boundaries) == (True, False)
    assert alone == lint_fragment(text, language="en")
    assert alone.has_clean_boundaries
