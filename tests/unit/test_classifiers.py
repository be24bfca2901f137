"""The VAD's classifier engines: Silero finds the utterances of real speech, clean and in noise; each stream
keeps its own state; the engine is chosen by a setting."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ALSA, JFK, chunks, noisy, real
from voxmesh.services.vad import classifiers
from voxmesh.services.vad.segmenter import Segmenter, SegmenterConfig, SpeechEnded, SpeechStarted
from voxmesh.services.vad.service import VadServicer
from voxmesh.settings import VadSettings


def spans(pcm: bytes, engine_name: str = "silero", **config) -> list[tuple[float, float]]:
    """The utterances a segmenter with the engine finds, as (start, end) seconds."""
    engine = classifiers.load_engine(VadSettings(engine=engine_name))
    segmenter = Segmenter(engine.stream(), SegmenterConfig(frame_ms=engine.frame_ms, **config))
    events = [e for piece in chunks(pcm, 3200) for e in segmenter.push(piece)] + segmenter.flush()
    found, start = [], 0
    for event in events:
        if isinstance(event, SpeechStarted):
            start = event.start
        elif isinstance(event, SpeechEnded):
            found.append((start / 16000, event.end / 16000))
    return found


def test_silero_finds_the_utterances_of_real_speech():
    found = spans(real(JFK))
    assert 1 <= len(found) <= 6
    assert found[0][0] <= 0.5 and found[-1][1] >= 10.3, "the whole sentence is inside utterances"
    phrases = spans(real(ALSA))  # 16 short phrases with pauses of 0.25-1.3 s
    assert 8 <= len(phrases) <= 20
    assert phrases[0][0] <= 0.4 and phrases[-1][1] >= 30.5


def test_silero_keeps_the_utterances_of_real_speech_in_heavy_noise_where_webrtcvad_hears_only_speech():
    pcm = real(ALSA)
    clean = spans(pcm)
    in_noise = spans(noisy(pcm, 5.0))
    assert abs(len(in_noise) - len(clean)) <= 3
    assert len(spans(noisy(pcm, 5.0), "webrtcvad")) <= 3, "webrtcvad takes the noise for one long utterance"


def test_silero_hears_no_speech_in_silence_or_noise():
    engine = classifiers.load_engine(VadSettings(engine="silero"))
    assert not any(engine.stream().classify(bytes(16000 * 2 * 2 // 1024 * 1024)))
    quiet_noise = (np.random.default_rng(3).normal(0, 300, 32768)).astype("<i2").tobytes()
    assert sum(engine.stream().classify(quiet_noise)) <= 2


def test_each_stream_keeps_its_own_state():
    pcm = real(JFK)[: 512 * 2 * 200]
    other = noisy(pcm, 0.0, seed=11)
    engine = classifiers.load_engine(VadSettings(engine="silero"))
    alone = engine.stream().probabilities(pcm)
    first, second = engine.stream(), engine.stream()
    interleaved = []
    for offset in range(0, len(pcm), 512 * 2 * 4):
        interleaved.append(first.probabilities(pcm[offset : offset + 512 * 2 * 4]))
        second.probabilities(other[offset : offset + 512 * 2 * 4])
    assert np.allclose(np.concatenate(interleaved), alone, atol=1e-5)


def test_the_vad_engine_is_chosen_by_a_setting(monkeypatch):
    assert VadServicer(VadSettings(engine="webrtcvad")).engine.name == "webrtcvad"
    assert VadServicer(VadSettings(engine="silero")).config.frame_ms == 32
    monkeypatch.setenv("VOXMESH_VAD_ENGINE", "webrtcvad")
    assert VadSettings().engine == "webrtcvad"
    with pytest.raises(ValueError):
        VadSettings(engine="energy")
