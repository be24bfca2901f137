"""The clips bench/fidelity.py runs: real human speech from ../shared/audio, synthetic speech from espeak-ng
(and mbrola voices where installed), a user's own files with their references, and the noises they are mixed
with (white, and a babble of synthetic talkers) at a given SNR."""

from __future__ import annotations

import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxmesh import SAMPLE_RATE
from voxmesh.audio import pcm_to_float, read_file, to_internal

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "audio"

SENTENCES = [
    "The storm moved east before noon, and the harbour opened again by evening.",
    "Please send the report to the second office on Tuesday morning.",
    "Seven small boats waited near the bridge while the tide turned.",
    "She painted the kitchen a pale shade of green last spring.",
    "Our train left twenty minutes late because of a signal fault near the river.",
    "A cold wind blew across the empty market square.",
    "He checked the numbers twice and found the same mistake both times.",
    "The library closes early on public holidays and reopens the next day at nine.",
    "Bring a warm coat, since the nights in the mountains are colder than you expect.",
    "They planted forty oak trees along the northern edge of the park.",
    "The committee will vote on the new budget after a short break.",
    "Fresh bread was stacked on the counter beside a jar of honey.",
    "Turn left at the old mill, then follow the stone wall to the farm gate.",
    "Most of the letters arrived on time, but three were lost in the post.",
    "The engineer explained how the pump moves water up the hill.",
    "After the concert, the crowd walked slowly back toward the station.",
]
VOICES = [("en-us", 160), ("en-gb-x-rp", 185), ("en-us+f3", 150), ("en-gb-scotland", 200)]
MBROLA_VOICES = [("mb-us1", 150), ("mb-us2", 175)]  # used where /usr/share/mbrola/<voice> is installed


def read_file_as_internal(path: str | Path) -> np.ndarray:
    """A file as float32 16 kHz mono, converted as the mesh converts it."""
    return pcm_to_float(to_internal(*read_file(Path(path))))


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # float32, 16 kHz mono
    reference: str
    synthetic: bool


def espeak(sentence: str, voice: str, rate: int) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", sentence], capture_output=True, check=True
    ).stdout
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        Path(tmp.name).write_bytes(wav)
        return read_file_as_internal(tmp.name)


def synthetic_clips(seed: int) -> list[Clip]:
    rng = random.Random(seed)
    voices = list(VOICES)
    voices += [(v, r) for v, r in MBROLA_VOICES if Path("/usr/share/mbrola", v.removeprefix("mb-")).exists()]
    clips = []
    for index, (voice, rate) in enumerate(voices):
        chosen = rng.sample(SENTENCES, 5)
        pieces = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)]
        for sentence in chosen:
            pieces.append(espeak(sentence, voice, rate))
            pieces.append(np.zeros(int(rng.uniform(0.2, 1.4) * SAMPLE_RATE), np.float32))
        clips.append(Clip(f"synthetic {index + 1}: {voice} {rate} wpm", np.concatenate(pieces), " ".join(chosen), True))
    return clips


def human_clips() -> list[Clip]:
    clips = []
    jfk = SHARED / "jfk.flac"
    if jfk.exists():
        reference = (
            "And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country."
        )
        clips.append(Clip("human: jfk", read_file_as_internal(jfk), reference, False))
    alsa = SHARED / "alsa_channels.flac"
    if alsa.exists():
        clips.append(
            Clip("human: alsa_channels", read_file_as_internal(alsa), (SHARED / "alsa_channels.txt").read_text(), False)
        )
    return clips


def user_clips(files: list[str], references: str) -> list[Clip]:
    table = {}
    for line in Path(references).read_text().splitlines():
        if line.strip():
            name, _, reference = line.partition("\t")
            table[name.strip()] = reference.strip()
    clips = []
    for file in files:
        path = Path(file)
        reference = table.get(path.name, table.get(path.stem))
        if reference is None:
            raise SystemExit(f"{references} has no line for {path.name}")
        clips.append(Clip(f"file: {path.name}", read_file_as_internal(path), reference, False))
    return clips


def babble(length: int, seed: int) -> np.ndarray:
    """Five synthetic talkers saying other sentences, overlaid at random offsets, looped to `length`."""
    rng = random.Random(seed)
    mix = np.zeros(length, np.float32)
    for talker in range(5):
        voice, rate = VOICES[talker % len(VOICES)]
        speech = np.concatenate([espeak(s, voice, rate + rng.randint(-20, 20)) for s in rng.sample(SENTENCES, 6)])
        start = rng.randrange(len(speech))
        mix += np.resize(np.roll(speech, -start), length)
    return mix


def mixed(clean: np.ndarray, noise_kind: str, snr_db: float, seed: int) -> np.ndarray:
    if noise_kind == "white":
        noise = np.random.default_rng(seed).normal(0, 1, len(clean)).astype(np.float32)
    else:
        noise = babble(len(clean), seed)
    speech_power = float(np.mean(clean**2))
    noise_power = float(np.mean(noise**2))
    scale = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    out = clean + scale * noise
    peak = float(np.max(np.abs(out)))
    return out / peak * 0.9 if peak > 0.9 else out
