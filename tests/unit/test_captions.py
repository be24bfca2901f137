"""Captions from finals: cues cut at word timings, SRT and WebVTT."""

from __future__ import annotations

from voxmesh import captions
from voxmesh.events import Final, Word


def final(start: float, end: float, text: str, words=()) -> Final:
    return Final(
        1,
        start,
        end,
        text=text,
        language="en",
        engine="e",
        engine_compute_s=0,
        queue_wait_s=0,
        engine_busy_wait_s=0,
        words=tuple(words),
    )


def test_a_final_without_words_is_one_cue_over_its_utterance():
    assert captions.cues([final(1.0, 2.5, "hello there")]) == [(1.0, 2.5, "hello there")]


def test_a_long_final_is_cut_at_words_within_the_limits():
    words = [Word(f"word{i:02d}", i * 0.5, i * 0.5 + 0.4) for i in range(30)]
    cues = captions.cues([final(0, 15, " ".join(w.text for w in words), words)])
    assert len(cues) > 1
    assert " ".join(text for _, _, text in cues) == " ".join(w.text for w in words), "no word lost or repeated"
    for start, end, text in cues:
        assert len(text) <= captions.MAX_CUE_CHARS and end - start <= captions.MAX_CUE_S
    assert cues[0][0] == 0.0 and cues[-1][1] == words[-1].end_s


def test_srt_and_vtt_number_and_time_their_cues():
    finals = [final(3.0, 4.0, "second"), final(0.5, 1.25, "first")]
    assert (
        captions.srt(finals) == "1\n00:00:00,500 --> 00:00:01,250\nfirst\n\n2\n00:00:03,000 --> 00:00:04,000\nsecond\n"
    )
    assert captions.vtt(finals).startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.250\nfirst\n")
    assert captions._clock(3725.5, ".") == "01:02:05.500"
