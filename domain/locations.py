"""Where a span of a source lies (pure): its pages, time range, speakers and chapter.

Built once per source from its segment map (`domain/documents.py`), a `SegmentIndex`
answers each fragment's location with bisection, never a scan of the thousands of cues.
A span "touches" a segment when the half-open ranges share at least one character; an empty
span touches the segment holding its position.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from domain.documents import Segment, SegmentKind
from domain.model import Span
from domain.sources import count_words


@dataclass(frozen=True, slots=True)
class Location:
    """A span's place in the source, derived from the segments it touches."""

    page: int | None = None
    pages: tuple[int, ...] = ()
    time_start_ms: int | None = None
    time_end_ms: int | None = None
    speaker: str | None = None
    speakers: tuple[str, ...] = ()
    chapter: str | None = None


@dataclass(frozen=True, slots=True)
class SpeakerStats:
    """One speaker's share of a transcript: turns, and words without the labels."""

    speaker: str
    turns: int
    words: int


class _Ranges:
    """Segments of one kind sorted by start, with the furthest end so far (for nesting)."""

    def __init__(self, segments: Iterable[Segment]) -> None:
        self.items = sorted((s for s in segments if s.char_end > s.char_start),
                            key=lambda s: (s.char_start, s.char_end))
        self.starts = [s.char_start for s in self.items]
        self.reach: list[int] = []
        for item in self.items:
            self.reach.append(max(item.char_end, self.reach[-1]) if self.reach else item.char_end)

    def touching(self, start: int, end: int) -> list[Segment]:
        """The segments sharing a character with [start, end), or holding `start` if empty."""
        end = max(end, start + 1)
        first = bisect_right(self.reach, start)  # every earlier segment ends at or before start
        last = bisect_left(self.starts, end)
        return [s for s in self.items[first:last] if s.char_end > start]

    def holding(self, position: int) -> Segment | None:
        """The innermost (latest-starting) segment holding `position`."""
        i = bisect_right(self.starts, position) - 1
        while i >= 0 and self.reach[i] > position:
            if self.items[i].char_end > position:
                return self.items[i]
            i -= 1
        return None

    def before(self, position: int) -> Segment | None:
        """The last segment starting at or before `position`."""
        i = bisect_right(self.starts, position) - 1
        return self.items[i] if i >= 0 else None


class SegmentIndex:
    """A source's segments, indexed for location look-ups; `text` is the normalised text."""

    def __init__(self, text: str, segments: Iterable[Segment]) -> None:
        by_kind: dict[SegmentKind, list[Segment]] = {kind: [] for kind in SegmentKind}
        for segment in segments:
            by_kind[segment.kind].append(segment)
        self._text = text
        self._pages = _Ranges(s for s in by_kind[SegmentKind.PAGE] if s.page is not None)
        self._cues = _Ranges(by_kind[SegmentKind.CUE])
        self._chapters = _Ranges(by_kind[SegmentKind.CHAPTER])
        turns = by_kind[SegmentKind.TURN] or _cue_runs(self._cues.items)
        self._turns = _Ranges(t for t in turns if t.speaker)

    def locate(self, start: int, end: int) -> Location:
        """The location of `text[start:end]`."""
        pages = sorted({s.page for s in self._pages.touching(start, end) if s.page is not None})
        start_ms, end_ms = self._times(start, end)
        turns = self._turns.touching(start, end)
        cues = [c for c in self._cues.touching(start, end) if c.speaker]
        opening = self._turns.holding(start) or (turns[0] if turns else None)
        speaker = opening.speaker if opening else (cues[0].speaker if cues else None)
        ordered = sorted([*turns, *cues], key=lambda s: s.char_start)
        speakers = tuple(dict.fromkeys(s.speaker for s in ordered if s.speaker))
        chapter = self._chapters.holding(start)
        return Location(
            page=pages[0] if pages else None,
            pages=tuple(pages),
            time_start_ms=start_ms,
            time_end_ms=end_ms,
            speaker=speaker,
            speakers=speakers,
            chapter=chapter.heading if chapter else None,
        )

    def speaker_at(self, position: int) -> str | None:
        """The speaker whose turn is under way at `position` (the last one begun before it)."""
        turn = self._turns.holding(position) or self._turns.before(position)
        return turn.speaker if turn else None

    def opening_speaker(self, start: int) -> str | None:
        """Who is speaking where a chunk starting at `start` opens mid-turn; None when the
        chunk opens at a turn's start (its label is in the chunk) or outside any turn."""
        turn = self._turns.holding(start)
        return turn.speaker if turn and turn.char_start < start else None

    def speakers_summary(self) -> list[SpeakerStats]:
        """Each speaker's turns and words (labels excluded), in order of first appearance."""
        tally: dict[str, list[int]] = {}
        for turn in self._turns.items:
            counts = tally.setdefault(turn.speaker or "", [0, 0])
            counts[0] += 1
            counts[1] += count_words(self._text[self._words_start(turn) : turn.char_end])
        return [SpeakerStats(name, turns, words) for name, (turns, words) in tally.items()]

    def turn_spans_of(self, speakers: set[str]) -> list[Span]:
        """The character ranges (labels included) of these speakers' turns, in text order."""
        return [Span(t.char_start, t.char_end) for t in self._turns.items if t.speaker in speakers]

    def cue_spans(self) -> list[Span]:
        """The character ranges of every cue, in text order."""
        return [Span(c.char_start, c.char_end) for c in self._cues.items]

    def turn_starts(self) -> list[int]:
        """Where each turn begins (its label's first character), in text order."""
        return [t.char_start for t in self._turns.items]

    def _times(self, start: int, end: int) -> tuple[int | None, int | None]:
        timed = [c for c in self._cues.touching(start, end) if c.time_start_ms is not None]
        if not timed:
            timed = [t for t in self._turns.touching(start, end) if t.time_start_ms is not None]
        if not timed:
            return None, None
        return timed[0].time_start_ms, timed[-1].time_end_ms

    def _words_start(self, turn: Segment) -> int:
        # The label is "Speaker: "; without it in the text, the words start at the first cue.
        label = f"{turn.speaker}:"
        if self._text.startswith(label, turn.char_start):
            return turn.char_start + len(label)
        cues = self._cues.touching(turn.char_start, turn.char_end)
        return max(turn.char_start, cues[0].char_start) if cues else turn.char_start


def _cue_runs(cues: list[Segment]) -> list[Segment]:
    """Turns made of consecutive cues of one speaker, for a map that has cues but no turns."""
    runs: list[Segment] = []
    for cue in cues:
        if not cue.speaker:
            continue
        last = runs[-1] if runs else None
        if last is not None and last.speaker == cue.speaker:
            runs[-1] = Segment(SegmentKind.TURN, last.char_start, cue.char_end,
                               time_start_ms=last.time_start_ms, time_end_ms=cue.time_end_ms,
                               speaker=cue.speaker)
        else:
            runs.append(Segment(SegmentKind.TURN, cue.char_start, cue.char_end,
                                time_start_ms=cue.time_start_ms, time_end_ms=cue.time_end_ms,
                                speaker=cue.speaker))
    return runs
