"""VTT and SRT: cues with times, speakers' turns as paragraphs, strict timestamps."""

from __future__ import annotations

import pytest

from domain.documents import ContentFormat, ConversionError, ConversionLimits, SegmentKind
from tests.support.documents import interview_srt, interview_vtt
from workers.converters import Converters

CONVERTERS = Converters()


def _kind(doc, kind):
    return [s for s in doc.segments if s.kind is kind]


@pytest.mark.parametrize(("make", "fmt"), [(interview_vtt, ContentFormat.VTT),
                                           (interview_srt, ContentFormat.SRT)])
def test_every_cue_segment_covers_exactly_its_words_with_its_times_and_speaker(make, fmt):
    # Given a two-hour interview of 1,500 cues
    truth = make()
    # When
    doc = CONVERTERS.convert(truth.data, fmt)
    # Then
    cues = _kind(doc, SegmentKind.CUE)
    assert [(s.time_start_ms, s.time_end_ms, s.speaker, doc.text[s.char_start:s.char_end])
            for s in cues] == truth.cues
    assert truth.cues[-1][1] > 100 * 60_000


@pytest.mark.parametrize(("make", "fmt"), [(interview_vtt, ContentFormat.VTT),
                                           (interview_srt, ContentFormat.SRT)])
def test_each_turn_is_one_labelled_paragraph_with_a_turn_segment(make, fmt):
    truth = make(cues=200)
    doc = CONVERTERS.convert(truth.data, fmt)
    expected = [f"{speaker}: " + " ".join(truth.cues[i][3] for i in range(first, last + 1))
                for speaker, first, last in truth.turns]
    assert doc.text.split("\n\n") == expected
    turns = _kind(doc, SegmentKind.TURN)
    assert [(doc.text[s.char_start:s.char_end], s.speaker, s.time_start_ms, s.time_end_ms)
            for s in turns] == [
        (text, speaker, truth.cues[first][0], truth.cues[last][1])
        for text, (speaker, first, last) in zip(expected, truth.turns, strict=True)]


def test_vtt_voice_tags_styling_entities_notes_and_settings():
    data = ("\ufeffWEBVTT\n\nSTYLE\n::cue { color: red }\n\nNOTE a note\n\n"
            "intro\n00:00:01.000 --> 00:00:03.500 align:start line:0\n"
            "<v.loud Marta Silva><i>I grew up</i> in Porto &amp;\nnear <c.x>the</c> river.\n\n"
            "00:00:04.000 --> 00:00:05.000\nIt was <00:00:04.500>cold.\n\n"
            "1:00:00.000 --> 1:00:01.000\n<v Interviewer>Thank you.</v>\n").encode()
    doc = CONVERTERS.convert(data, ContentFormat.VTT)
    assert doc.text == ("Marta Silva: I grew up in Porto & near the river. It was cold.\n\n"
                        "Interviewer: Thank you.")
    assert [(doc.text[s.char_start:s.char_end], s.time_start_ms, s.time_end_ms, s.speaker)
            for s in _kind(doc, SegmentKind.CUE)] == [
        ("I grew up in Porto & near the river.", 1000, 3500, "Marta Silva"),
        ("It was cold.", 4000, 5000, "Marta Silva"),
        ("Thank you.", 3_600_000, 3_601_000, "Interviewer")]


def test_name_labels_carry_on_until_another_speaker_is_named():
    data = (b"1\n00:00:01,000 --> 00:00:02,000\n- Dr. Lee: Where were you born?\n\n"
            b"2\n00:00:02,500 --> 00:00:04,000\n[Marta] In Porto,\n\n"
            b"3\n00:00:04,000 --> 00:00:06,000\n<i>near the river.</i>\n\n"
            b"4\n00:00:07,000 --> 00:00:08,000\nDR. LEE: And then?\n")
    doc = CONVERTERS.convert(data, ContentFormat.SRT)
    assert doc.text == ("Dr. Lee: Where were you born?\n\nMarta: In Porto, near the river."
                        "\n\nDR. LEE: And then?")
    assert [(s.speaker, s.time_start_ms, s.time_end_ms) for s in _kind(doc, SegmentKind.TURN)] \
        == [("Dr. Lee", 1000, 2000), ("Marta", 2500, 6000), ("DR. LEE", 7000, 8000)]


def test_without_speakers_cues_run_together_with_a_paragraph_after_a_pause():
    data = (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nI grew up\n\n"
            b"00:00:02.100 --> 00:00:03.000\nin Porto. Then I said: go.\n\n"
            b"00:00:05.000 --> 00:00:06.000\nLater.\n")
    doc = CONVERTERS.convert(data, ContentFormat.VTT)
    assert doc.text == "I grew up in Porto. Then I said: go.\n\nLater."
    assert _kind(doc, SegmentKind.TURN) == []
    assert [doc.text[s.char_start:s.char_end] for s in _kind(doc, SegmentKind.CUE)] == [
        "I grew up", "in Porto. Then I said: go.", "Later."]


@pytest.mark.parametrize(("fmt", "data", "message", "line"), [
    (ContentFormat.VTT,
     b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi\n\n00:01:xx.000 --> 00:01:02.000\nyo\n",
     "line 6: '00:01:xx.000 --> 00:01:02.000' is not a valid timestamp", 6),
    (ContentFormat.VTT, b"WEBVTT\n\nid\n00:00:05.000 --> 00:00:02.000\nhi\n",
     "line 4: the cue ends (00:00:02.000) before it starts (00:00:05.000)", 4),
    (ContentFormat.VTT, b"Hello\n\n00:00:01.000 --> 00:00:02.000\nhi\n",
     "line 1: a WebVTT file must start with 'WEBVTT'", 1),
    (ContentFormat.VTT, b"WEBVTT\n\nid\njust text\n",
     "line 3: expected a cue timing line such as '00:00:01.000 --> 00:00:04.000'", 3),
    (ContentFormat.SRT, b"1\r\n00:00:01,000 --> 00:00:0x,000\r\nhi\r\n",
     "line 2: '00:00:01,000 --> 00:00:0x,000' is not a valid timestamp", 2),
    (ContentFormat.SRT, b"1\n00:00:01,000 --> 00:00:02,000\nhi\n\n2\n00:00:09,000 --> "
     b"00:00:08,999\nyo\n", "line 6: the cue ends (00:00:08.999) before it starts "
     "(00:00:09.000)", 6),
    (ContentFormat.SRT, b"1\n00:00:01,000 --> 00:00:02,000\nhi\n\nhello there\nfriend\n",
     "line 5: expected a cue number, then a timing line such as '00:00:01,000 --> "
     "00:00:04,000'", 5),
])
def test_a_broken_cue_is_refused_naming_its_line(fmt, data, message, line):
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(data, fmt)
    assert (caught.value.message, caught.value.line) == (message, line)


def test_a_transcript_past_the_cue_limit_is_refused():
    with pytest.raises(ConversionError) as caught:
        Converters(ConversionLimits(max_cues=100)).convert(interview_vtt(cues=101).data,
                                                          ContentFormat.VTT)
    assert caught.value.message == "the transcript has more than 100 cues, the limit"


def test_a_transcript_of_empty_cues_is_refused():
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<i> </i>\n",
                           ContentFormat.VTT)
    assert caught.value.message == "the transcript has no cue text"


def test_a_time_past_what_a_graphql_int_holds_is_refused_naming_the_line() -> None:
    data = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nfine\n\n999:00:00.000 --> 999:00:01.000\nx\n"
    with pytest.raises(ConversionError) as caught:
        Converters().convert(data, ContentFormat.VTT)
    assert caught.value.line == 6
    assert "596:31:23.647" in caught.value.message


def _srt(*lines: str) -> bytes:
    blocks = [f"{i + 1}\n00:00:{i:02d},000 --> 00:00:{i:02d},900\n{line}\n"
              for i, line in enumerate(lines)]
    return "\n".join(blocks).encode()


def test_a_one_off_label_among_recurring_speakers_is_words_not_a_speaker() -> None:
    data = _srt("Host: Where did you grow up?", "Marta: In Porto.",
                "Anyway: it was a long time ago.", "Host: And school?", "Marta: Hard.",
                "MAYOR: Welcome, everyone.")
    document = Converters().convert(data, ContentFormat.SRT)
    turns = [s.speaker for s in document.segments if s.kind is SegmentKind.TURN]
    assert turns == ["Host", "Marta", "Host", "Marta", "MAYOR"]
    assert "Marta: In Porto. Anyway: it was a long time ago." in document.text


def test_in_a_transcript_where_no_label_recurs_every_label_is_a_speaker() -> None:
    document = Converters().convert(_srt("Host: Welcome.", "Marta: Thank you."),
                                    ContentFormat.SRT)
    assert [s.speaker for s in document.segments if s.kind is SegmentKind.TURN] == [
        "Host", "Marta"]
