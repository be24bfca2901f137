"""Fixtures every test layer shares: audio files, and helpers to read them as the mesh does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from voxmesh import audio

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "welcome.flac"
SAMPLE_TEXT = " ".join((ROOT / "samples" / "welcome.txt").read_text().split())
JFK = ROOT.parent / "shared" / "audio" / "jfk.flac"
ALSA = JFK.parent / "alsa_channels.flac"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.fixture(scope="session")
def jfk_path() -> Path:
    if not JFK.exists():
        pytest.skip(f"real speech {JFK} is absent (it lives in ../shared beside the project's checkout)")
    return JFK


def internal_pcm(path: Path) -> bytes:
    """A file as the inner services hear it: 16 kHz mono LINEAR16."""
    samples, rate = audio.read_file(path)
    return audio.to_internal(samples, rate)


def real(path: Path) -> bytes:
    """Real human speech from ../shared/audio as the inner services hear it; the test skips without it."""
    if not path.exists():
        pytest.skip(f"real speech {path} is absent (it lives in ../shared beside the project's checkout)")
    return internal_pcm(path)


def noisy(pcm: bytes, snr_db: float, seed: int = 7) -> bytes:
    """The audio mixed with white noise, the whole clip's power this many dB over the noise's."""
    speech = np.frombuffer(pcm, "<i2").astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 1, len(speech))
    mixed = speech + noise * np.sqrt(np.mean(speech**2) / 10 ** (snr_db / 10))
    return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()


@pytest.fixture(scope="session")
def sample_pcm() -> bytes:
    return internal_pcm(SAMPLE)


@pytest.fixture(scope="session")
def jfk_pcm(jfk_path) -> bytes:
    return internal_pcm(jfk_path)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 16000) * 2)


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(seconds * 16000)) / 16000
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="session")
def tiny_voxtral(tmp_path_factory) -> Path:
    """A tiny random Voxtral (Voxtral-Mini-3B-2507's architecture) and tekken tokenizer, built offline."""
    pytest.importorskip("transformers", reason="the voxtral engines need the test extra (torch, transformers)")
    from tests.tiny_models import build_voxtral

    return build_voxtral(tmp_path_factory.mktemp("tiny-voxtral"))


@pytest.fixture(scope="session")
def tiny_voxtral_realtime(tmp_path_factory) -> Path:
    """A tiny random Voxtral Realtime (Voxtral-Mini-4B-Realtime-2602's architecture), built offline."""
    pytest.importorskip("transformers", reason="the voxtral engines need the test extra (torch, transformers)")
    from tests.tiny_models import build_voxtral_realtime

    return build_voxtral_realtime(tmp_path_factory.mktemp("tiny-voxtral-realtime"))


class MetricsDelta:
    """What the process's Prometheus registry gained since it was made: tests read counts and batch sizes
    there, as an operator would, and production classes keep no counters of their own for them."""

    def __init__(self) -> None:
        self.before = self._snapshot()

    @staticmethod
    def _snapshot() -> dict:
        return {(s.name, frozenset(s.labels.items())): s.value for m in REGISTRY.collect() for s in m.samples}

    def value(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return self._snapshot().get(key, 0.0) - self.before.get(key, 0.0)

    def largest_bucket(self, histogram: str, **labels: str) -> float:
        """The smallest bucket bound that holds every observation made since (0 when none was)."""
        now = self._snapshot()
        total = self.value(f"{histogram}_count", **labels)
        bounds = sorted(
            float(dict(key[1])["le"])
            for key in now
            if key[0] == f"{histogram}_bucket" and {k: v for k, v in key[1] if k != "le"} == labels
        )
        for bound in bounds:
            le = "+Inf" if bound == float("inf") else str(bound)
            if total and self.value(f"{histogram}_bucket", **labels, le=le) == total:
                return bound
        return 0.0
