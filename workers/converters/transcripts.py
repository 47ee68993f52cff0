"""Transcripts (VTT, SRT) as text: speakers' turns as paragraphs, every cue a timed segment.

Speakers come from WebVTT voice tags (`<v Marta>`, `<v.loud Marta Silva>`) or from a label
that opens a cue: "MARTA:", "Dr. Lee:", "- Marta:", "[Marta]" (1-4 capitalised words, at most
40 characters). A "Name:" label in mixed case that opens a single cue while other labels recur
is taken for words ("Anyway: …"), not a speaker; written in capitals or in brackets, or in a
transcript where no label recurs, it names one. A speaker lasts until another one is named.
Consecutive cues of one speaker form a turn, written as one paragraph "Marta: words of cue
one words of cue two"; its TURN segment covers the paragraph, label included, and each CUE
segment exactly one cue's words.
A transcript that names nobody has no labels and no turns: its cues run together, with a new
paragraph after a pause of 2 s or more.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from domain.documents import ConversionLimits, ConvertedDocument, SegmentKind
from workers.converters.builder import DocumentBuilder
from workers.converters.cues import Cue, parse_srt, parse_vtt

PAUSE_MS = 2000
_WORD = r"[^\W\d_][\w'’.\-]*"
_PARTICLE = r"(?:da|de|del|der|di|do|dos|du|la|le|van|von)"
_LABEL = re.compile(
    rf"^(?:-\s*)?(?:\[([^\]\n]{{1,40}})\]\s*:?|({_WORD}(?:\s+(?:{_WORD}|{_PARTICLE})){{0,3}}):)"
    r"(?:\s+|$)")


def convert_vtt(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """VTT: turns and cues (see the module docstring)."""
    return _document(parse_vtt(data, limits), limits)


def convert_srt(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """SRT: turns and cues (see the module docstring)."""
    return _document(parse_srt(data, limits), limits)


def split_label(text: str) -> tuple[str | None, str]:
    """(speaker, words) of a cue's text: the leading "Name:" or "[Name]" label, if any."""
    name, words, _strong = _label(text)
    return name, words


def _label(text: str) -> tuple[str | None, str, bool]:
    """(speaker, words, strong): strong for a bracketed or all-capitals label."""
    match = _LABEL.match(text)
    if match is None:
        return None, text, False
    name = (match.group(1) or match.group(2)).strip()
    words = name.split()
    if not name or len(name) > 40 or not words[0][0].isupper() or not all(
            word[0].isupper() or re.fullmatch(_PARTICLE, word) for word in words):
        return None, text, False
    return name, text[match.end():], bool(match.group(1)) or name.isupper()


def _labels(cues: list[Cue]) -> dict[str, bool]:
    """Each label's verdict: a speaker, or words (see the module docstring)."""
    counts: Counter[str] = Counter()
    strong: set[str] = set()
    for cue in cues:
        if cue.voice:
            continue
        name, _words, loud = _label(cue.text)
        if name is not None:
            counts[name] += 1
            if loud:
                strong.add(name)
    recurring = any(count >= 2 for count in counts.values())
    return {name: name in strong or count >= 2 or not recurring
            for name, count in counts.items()}


def _document(cues: list[Cue], limits: ConversionLimits) -> ConvertedDocument:
    builder = DocumentBuilder(limits)
    speakers: list[tuple[str | None, Cue]] = []
    current: str | None = None
    verdicts = _labels(cues)
    for cue in cues:
        speaker, words = (cue.voice, cue.text) if cue.voice else split_label(cue.text)
        if speaker is not None and not cue.voice and not verdicts.get(speaker, False):
            speaker, words = None, cue.text  # "Anyway: …" is what the speaker said
        if speaker is not None:
            current = speaker
        if words:
            speakers.append((current, Cue(cue.start_ms, cue.end_ms, words, current)))
    named = any(speaker for speaker, _ in speakers)
    notes: list[str] = []
    if named:
        _write_turns(builder, speakers)
        notes.append(f"{len({s for s, _ in speakers if s})} speakers named in the transcript")
    else:
        _write_paragraphs(builder, [cue for _, cue in speakers])
    return builder.build(notes=notes, empty="the transcript has no cue text")


def _write_turns(builder: DocumentBuilder, speakers: list[tuple[str | None, Cue]]) -> None:
    turn: list[Cue] = []
    for i, (speaker, cue) in enumerate(speakers):
        turn.append(cue)
        if i + 1 == len(speakers) or speakers[i + 1][0] != speaker:
            _write(builder, turn, speaker)
            turn = []


def _write_paragraphs(builder: DocumentBuilder, cues: list[Cue]) -> None:
    run: list[Cue] = []
    for i, cue in enumerate(cues):
        run.append(cue)
        if i + 1 == len(cues) or cues[i + 1].start_ms - cue.end_ms >= PAUSE_MS:
            _write(builder, run, None)
            run = []


def _write(builder: DocumentBuilder, cues: list[Cue], speaker: str | None) -> None:
    label = f"{speaker}: " if speaker else ""
    start, end = builder.paragraph(label + " ".join(cue.text for cue in cues))
    at = start + len(label)
    timed: Callable[[Cue], dict[str, object]] = lambda cue: {  # noqa: E731
        "time_start_ms": cue.start_ms, "time_end_ms": cue.end_ms, "speaker": speaker}
    for cue in cues:
        builder.segment(SegmentKind.CUE, at, at + len(cue.text), **timed(cue))
        at += len(cue.text) + 1
    if speaker:
        builder.segment(SegmentKind.TURN, start, end, speaker=speaker,
                        time_start_ms=cues[0].start_ms,
                        time_end_ms=max(cue.end_ms for cue in cues))
