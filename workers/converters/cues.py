"""WebVTT and SubRip parsers: cues with times, their text, and the voice a VTT cue names.

Written here rather than over webvtt-py or srt: neither is in the offline package mirror, and
both formats are small. The parsers are strict where a mistake would misplace a quote (a
timestamp that does not parse, a cue that ends before it starts: a ConversionError naming the
line) and lenient where nothing is lost (cue identifiers, cue settings, NOTE/STYLE/REGION
blocks, styling tags, a BOM).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from domain.documents import ConversionError, ConversionLimits
from workers.converters.builder import clean_line
from workers.converters.text import decode_text

# Times are served as GraphQL Int (32 bits): about 596 hours of recording at most.
MAX_TIME_MS = 2**31 - 1
_VTT_TIME = r"(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_VTT_TIMING = re.compile(rf"^\s*{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t].*)?$")
_SRT_TIME = r"(\d{1,3}):([0-5]\d):([0-5]\d)[,.](\d{3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME}[ \t]*-->[ \t]*{_SRT_TIME}(?:[ \t].*)?$")
_VOICE = re.compile(r"<v(?:\.[^\s>]+)*(?:[ \t]+([^>]*))?>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")


@dataclass(frozen=True, slots=True)
class Cue:
    """One cue: its time range, its text on one line, and the voice a `<v>` tag names."""

    start_ms: int
    end_ms: int
    text: str
    voice: str | None = None


def parse_vtt(data: bytes, limits: ConversionLimits) -> list[Cue]:
    """The cues of a WebVTT file, in file order."""
    lines = _lines(data)
    if not lines or not (lines[0].startswith("WEBVTT") and lines[0][6:7] in ("", " ", "\t")):
        raise ConversionError("line 1: a WebVTT file must start with 'WEBVTT'", line=1)
    cues: list[Cue] = []
    for first, block in _blocks(lines):
        if first == 1 or block[0].split(None, 1)[0] in _SKIPPED_BLOCKS:
            continue
        timing = 0 if "-->" in block[0] else 1
        if timing >= len(block) or "-->" not in block[timing]:
            raise ConversionError(
                f"line {first}: expected a cue timing line such as "
                "'00:00:01.000 --> 00:00:04.000'", line=first)
        start, end = _times(_VTT_TIMING, block[timing], first + timing)
        raw = "\n".join(block[timing + 1:])
        voice = _VOICE.search(raw)
        _add(cues, limits, start, end, raw, voice.group(1) if voice else None)
    return cues


def parse_srt(data: bytes, limits: ConversionLimits) -> list[Cue]:
    """The cues of a SubRip file, in file order."""
    cues: list[Cue] = []
    for first, block in _blocks(_lines(data)):
        timing = 0 if "-->" in block[0] else 1
        if timing == 1 and not block[0].strip().isdigit():
            raise ConversionError(
                f"line {first}: expected a cue number, then a timing line such as "
                "'00:00:01,000 --> 00:00:04,000'", line=first)
        if timing >= len(block):
            raise ConversionError(
                f"line {first}: cue {block[0].strip()} has no timing line", line=first)
        start, end = _times(_SRT_TIMING, block[timing], first + timing)
        _add(cues, limits, start, end, "\n".join(block[timing + 1:]), None)
    return cues


def _lines(data: bytes) -> list[str]:
    return decode_text(data).replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines with the 1-based number of their first line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not current:
                blocks.append((number, current))
            current.append(line)
        else:
            current = []
    return blocks


def _times(pattern: re.Pattern[str], line: str, number: int) -> tuple[int, int]:
    match = pattern.match(line)
    if match is None:
        shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
        raise ConversionError(f"line {number}: '{shown}' is not a valid timestamp", line=number)
    values = [int(g) if g else 0 for g in match.groups()]
    start, end = _ms(values[:4]), _ms(values[4:])
    if end > MAX_TIME_MS:
        raise ConversionError(f"line {number}: '{line.strip()[:60]}' is past "
                              f"{_clock(MAX_TIME_MS)}, the longest recording MMOS takes",
                              line=number)
    if end < start:
        raise ConversionError(
            f"line {number}: the cue ends ({_clock(end)}) before it starts ({_clock(start)})",
            line=number)
    return start, end


def _ms(parts: list[int]) -> int:
    hours, minutes, seconds, millis = parts
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


def _clock(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _add(cues: list[Cue], limits: ConversionLimits, start: int, end: int, raw: str,
         voice: str | None) -> None:
    text = clean_line(html.unescape(_TAG.sub("", raw)))
    if not text:
        return
    if len(cues) >= limits.max_cues:
        raise ConversionError(f"the transcript has more than {limits.max_cues:,} cues, the limit")
    cues.append(Cue(start, end, text, clean_line(voice) or None if voice else None))
