"""Audio files read for streaming, and sent in chunks at real-time pace (or as fast as they are taken)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from voxmesh import SAMPLE_RATE, audio

Progress = Callable[[float, float], None]  # (seconds sent, seconds in total)


@dataclass(frozen=True)
class Recording:
    """A file's audio as the gateway takes it: bytes in an encoding, at a rate, interleaved channels."""

    data: bytes
    rate: int
    channels: int
    encoding: str = "LINEAR16"

    @property
    def frame_bytes(self) -> int:
        return (2 if self.encoding == "LINEAR16" else 1) * self.channels

    async def chunks(self, chunk_ms: int, *, realtime: bool, progress: Progress | None = None) -> AsyncIterator[bytes]:
        """Chunks of `chunk_ms`, each at its moment when `realtime`; `progress` after each."""
        frames = len(self.data) // self.frame_bytes
        step = max(1, self.rate * chunk_ms // 1000)
        started = time.monotonic()
        for first in range(0, frames, step):
            if realtime:
                await asyncio.sleep(max(0.0, started + first / self.rate - time.monotonic()))
            yield self.data[first * self.frame_bytes : (first + step) * self.frame_bytes]
            if progress:
                progress(min(frames, first + step) / self.rate, frames / self.rate)


async def audio_file(path: str | Path) -> Recording:
    """Any file libsndfile reads. In a format the gateway takes (8-48 kHz, mono or stereo) it goes as it
    is, so the gateway converts it once; any other is converted to 16 kHz mono here."""
    samples, rate = await asyncio.to_thread(audio.read_file, path)
    if not (audio.MIN_RATE <= rate <= audio.MAX_RATE and samples.shape[1] in audio.CHANNELS):
        pcm = await asyncio.to_thread(audio.to_internal, samples, rate)
        samples, rate = audio.from_internal(pcm), SAMPLE_RATE
    return Recording(samples.tobytes(), rate, samples.shape[1])


async def raw_file(path: Path, encoding: str, rate: int) -> Recording:
    """A headerless mono file in a sample encoding (MULAW, ALAW), sent as it is for the gateway to decode."""
    return Recording(await asyncio.to_thread(path.read_bytes), rate, 1, encoding)
