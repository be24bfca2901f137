"""The segmenter's thresholds follow the noise: the noise floor and the speech over it, and the end window
that stretches while speech stands low over the noise (voxmesh/services/vad/noise.py)."""

from __future__ import annotations

import numpy as np

from tests.conftest import ALSA, JFK, noisy, real
from tests.unit.test_classifiers import spans
from voxmesh.services.vad.noise import NoiseFloor, frame_energies_db


def test_the_floor_is_the_steady_noise_and_the_snr_the_speech_over_it():
    rng = np.random.default_rng(5)
    frame = 480
    noise = rng.normal(0, 32768 * 10 ** (-40 / 20), frame * 300)  # white noise at -40 dBFS
    speech = np.sin(np.arange(frame * 300) * 0.07) * 32768 * 10 ** (-20 / 20) * np.sqrt(2)  # a -20 dBFS tone
    talking = (np.arange(frame * 300) // (frame * 20)) % 2 == 1  # 0.6 s on, 0.6 s off
    pcm = np.clip(noise + speech * talking, -32768, 32767).astype("<i2").tobytes()
    floor = NoiseFloor(frame_ms=30)
    energies = frame_energies_db(pcm, frame)
    for index, energy in enumerate(energies):
        floor.observe(float(energy), voiced=bool(talking[index * frame]))
    assert abs(floor.floor_db - -40) < 1.5
    assert abs(floor.snr_db - 20) < 2
    assert floor.stretch() < 0.05, "20 dB of speech over the noise is clear: the end window keeps its length"


def test_clear_until_speech_is_heard_and_silence_has_a_floor():
    floor = NoiseFloor(frame_ms=30)
    assert floor.stretch() == 0
    floor.observe(float(frame_energies_db(bytes(960), 480)[0]), voiced=False)
    assert floor.floor_db == -90


def test_in_noise_the_stretched_end_window_keeps_real_speech_in_its_phrases():
    pcm = real(ALSA)  # 16 short phrases; webrtcvad joins some at its pauses, as it should
    clean = spans(pcm, "webrtcvad")
    assert spans(pcm, "webrtcvad", end_stretch=1.0) == clean, "clean speech is segmented as before"
    assert len(spans(noisy(pcm, 10.0), "webrtcvad")) >= len(clean) + 3, "at 10 dB a fixed window cuts phrases"
    for snr_db in (20.0, 10.0):
        kept = spans(noisy(pcm, snr_db), "webrtcvad", end_stretch=1.0)
        assert abs(len(kept) - len(clean)) <= 1, f"at {snr_db:g} dB the stretched window keeps them: {kept}"


def test_the_stretch_leaves_studio_speech_alone_and_bridges_pauses_in_a_hissy_recording(sample_pcm):
    assert spans(sample_pcm, "webrtcvad", end_stretch=2.0) == spans(sample_pcm, "webrtcvad")
    hissy = real(JFK)  # a 1961 broadcast: its speech stands less than 20 dB over the tape's hiss
    assert len(spans(hissy, "webrtcvad", end_stretch=2.0)) < len(spans(hissy, "webrtcvad"))


def test_the_service_follows_the_noise_only_when_a_setting_says_so():
    from voxmesh.services.vad.service import VadServicer
    from voxmesh.settings import VadSettings

    assert VadServicer(VadSettings()).segmenter().noise is None, "off by default: no energies computed"
    following = VadServicer(VadSettings(end_stretch=0.5, noise_gate_db=3)).segmenter()
    assert following.noise is not None
    assert (following.config.end_stretch, following.config.noise_gate_db) == (0.5, 3)
