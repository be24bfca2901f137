"""The segmenter's state machine: with an energy classifier (isolates the state machine), then with
the real webrtcvad on synthetic and real speech."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import chunks, silence, tone
from voxmesh.services.vad.classifiers import WebrtcClassifier
from voxmesh.services.vad.segmenter import Segmenter, SegmenterConfig, SpeechAudio, SpeechEnded, SpeechStarted

RATE = 16000


class Loud:
    """An energy classifier: isolates the state machine from any model."""

    def __init__(self, frame_ms: int = 30):
        self.frame_bytes = RATE * frame_ms // 1000 * 2

    def classify(self, pcm: bytes) -> list[bool]:
        frames = np.frombuffer(pcm, "<i2").reshape(-1, self.frame_bytes // 2)
        return [bool(v) for v in np.abs(frames).mean(axis=1) > 1000]


loud = Loud()


def run(segmenter: Segmenter, pcm: bytes, chunk_bytes: int = 3200):
    events = []
    for piece in chunks(pcm, chunk_bytes):
        events += segmenter.push(piece)
    return events + segmenter.flush()


def utterances(events):
    """{utterance: (start, end, reason, audio bytes)} with checks that audio is contiguous."""
    found = {}
    for event in events:
        if isinstance(event, SpeechStarted):
            found[event.utterance] = [event.start, None, None, bytearray(), event.start]
        elif isinstance(event, SpeechAudio):
            entry = found[event.utterance]
            assert event.start == entry[4], "audio of an utterance must be contiguous"
            entry[3] += event.pcm
            entry[4] = event.end
        elif isinstance(event, SpeechEnded):
            entry = found[event.utterance]
            assert event.end == entry[4], "an utterance ends where its audio ends"
            entry[1], entry[2] = event.end, event.reason
    return {k: (v[0], v[1], v[2], bytes(v[3])) for k, v in found.items()}


def real_vad(aggressiveness: int = 2) -> WebrtcClassifier:
    return WebrtcClassifier(aggressiveness, frame_ms=30)


def test_silence_gives_no_events():
    assert run(Segmenter(loud), silence(3)) == []


def test_one_burst_is_one_utterance_with_pre_roll_and_no_clipped_onset():
    config = SegmenterConfig(pre_roll_ms=300, speech_start_ms=150, speech_end_ms=500)
    pcm = silence(1.0) + tone(1.0) + silence(1.0)
    found = utterances(run(Segmenter(loud, config), pcm))
    assert list(found) == [1]
    start, end, reason, audio = found[1]
    onset = RATE * 1
    assert start <= onset - int(0.3 * RATE), "the pre-roll reaches 300 ms before the onset"
    assert end >= onset + RATE, "the whole burst is inside the utterance"
    assert reason == "silence"
    assert audio == pcm[start * 2 : end * 2], "the utterance's audio is exactly the stream's samples"


def test_a_blip_shorter_than_the_start_window_starts_nothing():
    config = SegmenterConfig(speech_start_ms=150)
    assert run(Segmenter(loud, config), silence(1) + tone(0.06) + silence(1)) == []


def test_a_pause_shorter_than_the_end_window_does_not_end_the_utterance():
    config = SegmenterConfig(speech_end_ms=500)
    pcm = silence(0.5) + tone(1) + silence(0.3) + tone(1) + silence(1)
    assert len(utterances(run(Segmenter(loud, config), pcm))) == 1
    pcm = silence(0.5) + tone(1) + silence(0.8) + tone(1) + silence(1)
    assert len(utterances(run(Segmenter(loud, config), pcm))) == 2


def test_a_short_piece_of_speech_is_merged_with_the_speech_after_a_pause_shorter_than_the_merge_pause():
    config = SegmenterConfig(speech_end_ms=500, min_utterance_s=3.0, merge_pause_ms=1000)
    pcm = silence(0.5) + tone(1) + silence(0.8) + tone(1) + silence(1.5)
    merged = utterances(run(Segmenter(loud, config), pcm))
    assert len(merged) == 1, "1 s of speech does not end at a 0.8 s pause"
    apart = silence(0.5) + tone(1) + silence(1.3) + tone(1) + silence(1.5)
    assert len(utterances(run(Segmenter(loud, config), apart))) == 2, "a pause of merge_pause_ms ends it"
    long_enough = silence(0.5) + tone(3.5) + silence(0.8) + tone(1) + silence(1.5)
    assert len(utterances(run(Segmenter(loud, config), long_enough))) == 2, "speech over min_utterance_s ends"
    no_merging = SegmenterConfig(speech_end_ms=500, min_utterance_s=0)
    assert len(utterances(run(Segmenter(loud, no_merging), pcm))) == 2


def test_long_speech_is_split_at_the_maximum_and_no_sample_is_lost():
    config = SegmenterConfig(max_utterance_s=2.0, pre_roll_ms=0)
    speech = tone(7.0)
    found = utterances(run(Segmenter(loud, config), silence(0.3) + speech + silence(1)))
    assert len(found) >= 3
    reasons = [found[k][2] for k in sorted(found)]
    assert reasons[:-1] == ["max_length"] * (len(found) - 1)
    for k in sorted(found):
        start, end, _, _ = found[k]
        assert end - start <= 2.0 * RATE
    for a, b in zip(sorted(found), sorted(found)[1:]):
        assert found[b][0] >= found[a][1], "utterances never overlap"
    spans = sorted((found[k][0], found[k][1]) for k in found)
    onset, offset = int(0.3 * RATE), int(7.3 * RATE)
    assert spans[0][0] <= onset and spans[-1][1] >= offset
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end, "no gap between split utterances: no sample of the speech is lost"


def test_split_prefers_a_pause_in_the_last_fifth():
    config = SegmenterConfig(max_utterance_s=2.0, pre_roll_ms=0, speech_end_ms=500)
    # a 120 ms pause 1.75 s into the speech: within the last 20% of the limit, shorter than the end window
    pcm = silence(0.3) + tone(1.75) + silence(0.12) + tone(1.5) + silence(1)
    found = utterances(run(Segmenter(loud, config), pcm))
    first = found[1]
    assert first[2] == "max_length"
    pause = int(2.05 * RATE)
    assert pause < first[1] <= pause + int(0.12 * RATE), "split inside the pause, not at the hard limit"


def test_a_single_unvoiced_frame_does_not_split_a_word():
    config = SegmenterConfig(max_utterance_s=2.0, pre_roll_ms=0, speech_end_ms=500)
    pcm = silence(0.3) + tone(1.75) + silence(0.03) + tone(1.5) + silence(1)
    found = utterances(run(Segmenter(loud, config), pcm))
    assert found[1][1] - found[1][0] > 1.9 * RATE, "a 30 ms dip is not a pause"


def test_stream_end_closes_an_open_utterance():
    found = utterances(run(Segmenter(loud), silence(0.5) + tone(1.0)))
    assert found[1][2] == "stream_end"


@pytest.mark.parametrize("chunk_samples", [1, 7, 160, 333, 4096])
def test_any_chunk_size_gives_the_same_utterances(sample_pcm, chunk_samples):
    reference = utterances(run(Segmenter(real_vad()), sample_pcm, 3200))
    assert utterances(run(Segmenter(real_vad()), sample_pcm, chunk_samples * 2)) == reference


def test_real_synthetic_speech_one_utterance_per_sentence_onsets_kept(sample_pcm):
    """samples/welcome.flac: four espeak sentences, each after 0.5 s of silence and before 0.8 s."""
    found = utterances(run(Segmenter(real_vad()), sample_pcm))
    assert len(found) == 4
    samples = np.frombuffer(sample_pcm, "<i2").astype(np.int32)
    for start, end, reason, _ in found.values():
        assert reason == "silence"
        assert np.abs(samples[max(0, start - 160) : start]).max(initial=0) < 500, "starts in silence"
        assert np.abs(samples[end - 800 : end]).max() < 500, "ends in silence: no word cut at the end"


def test_real_human_speech_onset_is_not_clipped(jfk_pcm):
    found = utterances(run(Segmenter(real_vad()), jfk_pcm))
    assert found, "JFK's speech is found"
    samples = np.abs(np.frombuffer(jfk_pcm, "<i2").astype(np.int32))
    envelope = np.convolve(samples, np.ones(160) / 160, mode="same")
    onset = int(np.argmax(envelope > 0.1 * envelope.max()))
    assert found[1][0] <= onset - int(0.1 * RATE), "the first utterance starts at least 100 ms before the onset"


def webrtc(aggressiveness: int = 2) -> WebrtcClassifier:
    return WebrtcClassifier(aggressiveness, frame_ms=30)


def continued(pcm: bytes, cut_s: float, warm: bool):
    """Segment `pcm` with one segmenter up to `cut_s`, then with a new one from where the first had settled
    (inside the open utterance if there is one), as the gateway does when a VAD replica dies."""
    first = Segmenter(webrtc())
    cut = int(cut_s * RATE) * 2
    events = []
    for piece in chunks(pcm[:cut], 3200):
        events += first.push(piece)
    settled = first.settled
    open_since = first._utterance_start if first.speaking else None
    warmup = min(settled, settled - (open_since if open_since is not None else settled) + 3 * RATE) if warm else 0
    second = Segmenter(
        webrtc(),
        offset=settled,
        warmup=warmup,
        open_since=open_since,
        next_utterance=first.utterances if first.speaking else first.utterances + 1,
    )
    return events + run(second, pcm[(settled - warmup) * 2 :])


def bounds(events):
    return [
        (e.utterance, type(e).__name__, getattr(e, "start", None) or getattr(e, "end", None))
        for e in events
        if not isinstance(e, SpeechAudio)
    ]


@pytest.mark.parametrize("cut_s", [1.0, 2.5, 4.0, 6.5, 9.0])
def test_a_segmenter_that_continues_another_with_a_warm_up_segments_real_speech_the_same(jfk_pcm, cut_s):
    whole = run(Segmenter(webrtc()), jfk_pcm)
    again = continued(jfk_pcm, cut_s, warm=True)
    assert bounds(again) == bounds(whole)
    audio = b"".join(e.pcm for e in again if isinstance(e, SpeechAudio))
    assert audio == b"".join(e.pcm for e in whole if isinstance(e, SpeechAudio)), "no sample lost or sent twice"


def test_without_the_warm_up_a_fresh_classifier_ends_real_speech_early(jfk_pcm):
    # Why the gateway keeps the open utterance's audio for a new VAD to listen to: webrtcvad adapts to
    # the speaker, and a fresh one cut into speech finds pauses the adapted one does not.
    whole = run(Segmenter(webrtc()), jfk_pcm)
    cold = continued(jfk_pcm, 2.5, warm=False)
    assert len([e for e in cold if isinstance(e, SpeechEnded)]) > len([e for e in whole if isinstance(e, SpeechEnded)])


def test_settled_is_where_a_continuation_may_start():
    segmenter = Segmenter(loud)
    segmenter.push(silence(1.0))
    kept = segmenter.config.frames(segmenter.config.pre_roll_ms + segmenter.config.speech_start_ms)
    assert segmenter.settled == segmenter.position - kept * segmenter.frame_samples, "quiet: the kept frames wait"
    events = segmenter.push(tone(0.5))
    assert segmenter.speaking and segmenter.settled == segmenter.position, "speech: every frame read was sent"
    assert isinstance(events[-1], SpeechAudio) and events[-1].end == segmenter.settled


def test_a_continuation_keeps_offsets_and_ids_and_does_not_announce_the_open_utterance_again():
    segmenter = Segmenter(loud, offset=48000, next_utterance=7, open_since=40000)
    events = run(segmenter, tone(0.5) + silence(1.0) + tone(1.0) + silence(1.0))
    said = [e for e in events if not isinstance(e, SpeechAudio)]
    assert [type(e).__name__ for e in said] == ["SpeechEnded", "SpeechStarted", "SpeechEnded"]
    assert said[0].utterance == 7 and said[1].utterance == 8
    assert events[0].start == 48000, "the open utterance's audio continues at the offset"
    assert said[1].start > 48000 + 8000


def test_speech_audio_says_how_long_the_speaker_has_paused_at_its_end():
    # 1 s of speech, 300 ms of silence (not yet an end: the end window is 500 ms), speech again, then the end
    pcm = tone(1.0) + silence(0.3) + tone(0.5) + silence(1.0)
    audio_events = [e for e in run(Segmenter(loud), pcm, chunk_bytes=960) if isinstance(e, SpeechAudio)]
    pauses = [(e.end / RATE, e.pause / RATE) for e in audio_events]
    during_speech = [pause for end, pause in pauses if 0.35 <= end <= 1.0 or 1.35 <= end <= 1.8]
    assert during_speech and all(pause == 0 for pause in during_speech), pauses
    in_the_gap = [pause for end, pause in pauses if 1.1 <= end <= 1.3]
    assert in_the_gap and all(0 < pause <= 0.3 for pause in in_the_gap), pauses
    assert max(pause for _, pause in pauses) < 0.5, "a pause as long as the end window is an end, not a pause"


def test_audio_gathers_to_audio_every_ms_and_the_utterances_are_the_same():
    pcm = tone(2.0) + silence(1.0) + tone(1.2) + silence(1.0)
    events = run(Segmenter(loud, SegmenterConfig(audio_every_ms=300)), pcm)  # 100 ms chunks
    pieces = [e for e in events if isinstance(e, SpeechAudio)]
    ended = {e.utterance for e in events if isinstance(e, SpeechEnded)}
    for piece in pieces:
        last_of_its_utterance = piece is [p for p in pieces if p.utterance == piece.utterance][-1]
        assert len(piece.pcm) >= 300 * 32 or last_of_its_utterance, "audio goes on in pieces of 300 ms or more"
    assert utterances(events) == utterances(run(Segmenter(loud), pcm)), "the same utterances and audio"
    assert ended == {1, 2}


def test_a_speaking_segmenter_settles_no_further_than_the_audio_it_emitted():
    segmenter = Segmenter(loud, SegmenterConfig(audio_every_ms=300))
    events = segmenter.push(tone(0.5))  # started, audio emitted
    emitted_to = max(e.end for e in events if isinstance(e, SpeechAudio))
    assert segmenter.settled == emitted_to
    assert not segmenter.push(tone(0.1)), "100 ms more is held, not emitted"
    assert segmenter.settled == emitted_to and segmenter.position > emitted_to


def test_a_cut_ends_the_open_utterance_where_the_audio_ends_and_speech_after_it_is_a_new_one():
    segmenter = Segmenter(loud)
    events = segmenter.push(silence(0.5) + tone(1.0) + bytes(100))  # 50 samples past the last whole frame
    cut = segmenter.cut()
    assert [type(e) for e in cut][-1] is SpeechEnded
    assert cut[-1].reason == "flush" and cut[-1].end == RATE // 2 + RATE + 50, "everything pushed is in it"
    assert segmenter.cut() == [], "in quiet a cut does nothing"
    events += cut + run(segmenter, tone(1.0) + silence(1.0))
    ended = [(e.utterance, e.reason) for e in events if isinstance(e, SpeechEnded)]
    assert ended == [(1, "flush"), (2, "silence")]
    assert [e.utterance for e in events if isinstance(e, SpeechStarted)] == [1, 2]


def boundaries_kept(segmenter: Segmenter, pcm: bytes, piece_bytes: int = 320) -> list[tuple[int, int]]:
    """Push `pcm` in small pieces; check that no start or end comes before the input reaches the
    `next_boundary` said before it. Returns (position, next_boundary) after each piece."""
    said, bound = [], 0
    for piece in chunks(pcm, piece_bytes):
        events = segmenter.push(piece)
        if any(isinstance(e, SpeechStarted | SpeechEnded) for e in events):
            assert segmenter.position >= bound, "a start or an end came before the boundary said before it"
        bound = segmenter.next_boundary
        assert bound >= segmenter.position
        said.append((segmenter.position, bound))
    return said


@pytest.mark.parametrize("clip", ["sample_pcm", "jfk_pcm"])
def test_no_start_or_end_comes_before_the_next_boundary_it_said(clip, request):
    pcm = request.getfixturevalue(clip)
    said = boundaries_kept(Segmenter(real_vad()), pcm)
    ahead = [bound - position for position, bound in said]
    assert max(ahead) >= int(0.45 * RATE), "in speech, an end is at least most of the end window away"
    assert min(ahead) == 480, "where a start or an end is one frame away, the next frame may bring it"


def test_the_next_boundary_counts_only_the_frames_that_stay_in_the_window():
    """Unvoiced frames before the window's voiced end leave it before they can count: with 8 unvoiced then
    9 voiced frames in the 17-frame end window, an end is 16 frames away, not 8, and comes at the 16th."""
    frame = RATE * 30 // 1000
    segmenter = Segmenter(loud)
    events = segmenter.push(tone(1.02) + silence(0.24) + tone(0.27))
    assert [type(e) for e in events if not isinstance(e, SpeechAudio)] == [SpeechStarted]
    assert segmenter.next_boundary == segmenter.position + 16 * frame
    assert not [e for e in segmenter.push(silence(0.45)) if isinstance(e, SpeechEnded)], "15 frames: no end yet"
    assert [e.reason for e in segmenter.push(silence(0.03)) if isinstance(e, SpeechEnded)] == ["silence"]
    # In quiet, a voiced frame then 4 unvoiced: that frame leaves the start window (4 voiced of 5) first.
    segmenter.push(silence(0.6) + tone(0.03) + silence(0.12))
    assert segmenter.next_boundary == segmenter.position + 4 * frame


def test_the_next_boundary_holds_at_the_length_limit_and_with_merging():
    split = SegmenterConfig(max_utterance_s=2.0, pre_roll_ms=0)
    boundaries_kept(Segmenter(loud, split), silence(0.3) + tone(5.0) + silence(1))
    merged = SegmenterConfig(min_utterance_s=3.0, merge_pause_ms=700)
    boundaries_kept(Segmenter(loud, merged), silence(0.5) + tone(0.8) + silence(0.6) + tone(1.0) + silence(1.5))


def test_the_next_boundary_is_the_position_while_listening_to_a_warm_up_or_following_the_noise(jfk_pcm):
    warm = Segmenter(real_vad(), offset=RATE, warmup=RATE)
    warm.push(jfk_pcm[:RATE])  # half the warm-up
    assert warm.next_boundary == warm.position
    noisy = Segmenter(real_vad(), SegmenterConfig(end_stretch=1.0))
    noisy.push(jfk_pcm[: 2 * RATE])
    assert noisy.next_boundary == noisy.position
