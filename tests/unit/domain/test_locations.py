"""A span's location from the segment map: pages, times, speakers, chapter (domain/locations.py)."""

from __future__ import annotations

from domain.documents import Segment, SegmentKind
from domain.locations import Location, SegmentIndex, SpeakerStats
from domain.model import Span

Cue = tuple[str, int, int]  # words, start ms, end ms


def transcript(*turns: tuple[str, list[Cue]]) -> tuple[str, list[Segment]]:
    """Normalised transcript text (one paragraph per turn) and its TURN and CUE segments."""
    text, segments = "", []
    for speaker, cues in turns:
        if text:
            text += "\n\n"
        turn_start = len(text)
        text += f"{speaker}: "
        for k, (words, start_ms, end_ms) in enumerate(cues):
            if k:
                text += " "
            segments.append(Segment(SegmentKind.CUE, len(text), len(text) + len(words),
                                    time_start_ms=start_ms, time_end_ms=end_ms, speaker=speaker))
            text += words
        segments.append(Segment(SegmentKind.TURN, turn_start, len(text),
                                time_start_ms=cues[0][1], time_end_ms=cues[-1][2],
                                speaker=speaker))
    return text, segments


TEXT, SEGMENTS = transcript(
    ("Interviewer", [("Where did you grow up?", 0, 1_500),
                     ("Tell me about the house.", 1_500, 3_000)]),
    ("Marta Silva", [("I grew up in Porto, near the river.", 3_200, 6_000),
                     ("My father fixed boats and I spent every summer", 6_000, 9_000),
                     ("in his workshop. It smelled of tar.", 9_000, 11_500)]),
    ("Interviewer", [("And your mother?", 12_000, 13_000)]),
    ("Marta Silva", [("She taught.", 13_500, 14_000)]),
)
INDEX = SegmentIndex(TEXT, SEGMENTS)


def span_of(fragment: str, text: str = TEXT) -> tuple[int, int]:
    start = text.index(fragment)
    return start, start + len(fragment)


def test_a_span_over_two_cues_takes_the_first_start_and_the_last_end() -> None:
    where = INDEX.locate(*span_of("My father fixed boats and I spent every summer in his "
                                  "workshop."))

    assert (where.time_start_ms, where.time_end_ms) == (6_000, 11_500)
    assert where.speaker == "Marta Silva"
    assert where.speakers == ("Marta Silva",)
    assert where.page is None and where.pages == () and where.chapter is None


def test_a_span_inside_one_cue_takes_that_cue_s_times() -> None:
    where = INDEX.locate(*span_of("near the river."))

    assert (where.time_start_ms, where.time_end_ms) == (3_200, 6_000)


def test_a_span_reaching_only_the_next_label_counts_that_speaker() -> None:
    start, _ = span_of("It smelled of tar.")
    _, end = span_of("Interviewer: And")
    label_end = TEXT.index("And your mother?")

    where = INDEX.locate(start, label_end - 1)  # up to "Interviewer:" without the words

    assert where.speaker == "Marta Silva"
    assert where.speakers == ("Marta Silva", "Interviewer")
    # the label holds no cue: the times are the cues' the span touches
    assert (where.time_start_ms, where.time_end_ms) == (9_000, 11_500)
    assert INDEX.locate(start, end).speakers == ("Marta Silva", "Interviewer")


def test_speakers_come_in_order_of_appearance_once_each() -> None:
    start, _ = span_of("Tell me about the house.")
    _, end = span_of("She taught.")

    where = INDEX.locate(start, end)

    assert where.speaker == "Interviewer"
    assert where.speakers == ("Interviewer", "Marta Silva")
    assert (where.time_start_ms, where.time_end_ms) == (1_500, 14_000)


def test_a_span_on_a_label_alone_is_timed_by_its_turn() -> None:
    where = INDEX.locate(*span_of("Marta Silva:"))

    assert where.speaker == "Marta Silva"
    assert (where.time_start_ms, where.time_end_ms) == (3_200, 11_500)


def test_a_span_opening_between_turns_takes_the_next_turn_s_speaker() -> None:
    gap = TEXT.index("\n\nMarta Silva")
    where = INDEX.locate(gap + 1, gap + 20)

    assert where.speaker == "Marta Silva"
    assert where.speakers == ("Marta Silva",)


def test_a_sentence_over_a_page_break_touches_both_pages() -> None:
    text = "The first page ends in the middle of a sentence that goes on here. Next."
    brk = text.index("goes")
    index = SegmentIndex(text, [Segment(SegmentKind.PAGE, 0, brk, page=12),
                                Segment(SegmentKind.PAGE, brk, len(text), page=13)])

    across = index.locate(0, text.index("Next") - 1)
    before = index.locate(0, brk)  # ends where page 13 begins: half-open, not touching it
    after = index.locate(*span_of("Next.", text))

    assert (across.page, across.pages) == (12, (12, 13))
    assert (before.page, before.pages) == (12, (12,))
    assert (after.page, after.pages) == (13, (13,))
    assert across.speaker is None and across.speakers == () and across.time_start_ms is None


def test_the_chapter_is_the_one_holding_the_span_s_start() -> None:
    text = "One\n\nIt began in Porto.\n\nTwo\n\nThen Lisbon came."
    two = text.index("Two")
    index = SegmentIndex(text, [
        Segment(SegmentKind.CHAPTER, 0, two - 2, heading="One"),
        Segment(SegmentKind.HEADING, 0, 3, heading="One"),
        Segment(SegmentKind.CHAPTER, two, len(text), heading="Two"),
        Segment(SegmentKind.HEADING, two, two + 3, heading="Two"),
    ])

    assert index.locate(*span_of("It began in Porto.", text)).chapter == "One"
    assert index.locate(*span_of("Then Lisbon came.", text)).chapter == "Two"
    assert index.locate(text.index("Porto"), len(text)).chapter == "One"
    assert index.locate(two - 1, len(text)).chapter is None  # starts in the gap


def test_nested_chapters_name_the_innermost() -> None:
    text = "Part\n\nChapter\n\nWords here."
    index = SegmentIndex(text, [
        Segment(SegmentKind.CHAPTER, 0, len(text), heading="Part"),
        Segment(SegmentKind.CHAPTER, text.index("Chapter"), len(text), heading="Chapter"),
    ])

    assert index.locate(*span_of("Words", text)).chapter == "Chapter"
    assert index.locate(0, 4).chapter == "Part"


def test_cues_without_turns_give_the_speakers_and_the_turns() -> None:
    text = "Where were you born? I was born in Braga."
    cues = [Segment(SegmentKind.CUE, 0, 20, time_start_ms=0, time_end_ms=900, speaker="Ana"),
            Segment(SegmentKind.CUE, 21, len(text), time_start_ms=1_000, time_end_ms=2_000,
                    speaker="Marta")]
    index = SegmentIndex(text, cues)

    assert index.locate(0, len(text)) == Location(time_start_ms=0, time_end_ms=2_000,
                                                  speaker="Ana", speakers=("Ana", "Marta"))
    assert index.speakers_summary() == [SpeakerStats("Ana", 1, 4), SpeakerStats("Marta", 1, 5)]
    assert index.turn_spans_of({"Marta"}) == [Span(21, len(text))]


def test_speakers_summary_counts_turns_and_words_without_labels() -> None:
    assert INDEX.speakers_summary() == [
        SpeakerStats("Interviewer", turns=2, words=10 + 3),
        SpeakerStats("Marta Silva", turns=2, words=24 + 2),
    ]


def test_turn_and_cue_spans() -> None:
    marta = INDEX.turn_spans_of({"Marta Silva"})

    assert [TEXT[s.start:s.end] for s in marta] == [
        "Marta Silva: I grew up in Porto, near the river. My father fixed boats and I spent "
        "every summer in his workshop. It smelled of tar.",
        "Marta Silva: She taught.",
    ]
    assert INDEX.turn_spans_of(set()) == []
    cues = INDEX.cue_spans()
    assert len(cues) == 7
    assert TEXT[cues[3].start:cues[3].end] == "My father fixed boats and I spent every summer"
    assert INDEX.turn_starts() == [0, TEXT.index("Marta Silva: I"),
                                   TEXT.index("Interviewer: And"), TEXT.index("Marta Silva: She")]


def test_the_speaker_under_way_at_a_position() -> None:
    in_words = TEXT.index("near the river")
    marta = TEXT.index("Marta Silva:")

    assert INDEX.speaker_at(in_words) == "Marta Silva"
    assert INDEX.speaker_at(marta - 1) == "Interviewer"  # the gap: the last turn begun
    assert INDEX.opening_speaker(in_words) == "Marta Silva"
    assert INDEX.opening_speaker(marta) is None  # at a turn's start its label is in the chunk
    assert SegmentIndex("text", []).speaker_at(2) is None


def test_many_cues_are_located_by_bisection() -> None:
    turns = [(f"Speaker {n % 3}", [(f"Cue {n}.{k} says a little.", 1000 * (3 * n + k),
                                    1000 * (3 * n + k) + 900) for k in range(3)])
             for n in range(500)]
    text, segments = transcript(*turns)
    index = SegmentIndex(text, segments)

    where = index.locate(*span_of("Cue 321.2 says a little.", text))

    assert (where.time_start_ms, where.time_end_ms) == (965_000, 965_900)
    assert where.speakers == ("Speaker 0",)
    assert len(index.cue_spans()) == 1_500
