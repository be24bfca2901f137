"""Uploads that lie about themselves, against the real gateway process: refused from their header, or
decoded within a bounded memory."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile

from voxmesh.v1 import transcription_pb2 as pb
from voxmesh.v1 import transcription_pb2_grpc

pytestmark = pytest.mark.e2e

MEMORY_BOUND = 50 << 20  # what one Transcribe may add to the gateway's resident memory


def wav_declaring(rate: int, frames: int) -> bytes:
    data = bytes(frames * 2)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def silent_flac(minutes: int, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with soundfile.SoundFile(out, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        minute = np.zeros(rate * 60, dtype="int16")
        for _ in range(minutes):
            f.write(minute)
    return out.getvalue()


class PeakRss:
    """The highest resident memory of a process while the block runs, above what it had before."""

    def __init__(self, pid: int):
        self.status = Path(f"/proc/{pid}/status")
        self.before = self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        line = next(line for line in self.status.read_text().splitlines() if line.startswith("VmRSS"))
        return int(line.split()[1]) * 1024

    def __enter__(self) -> PeakRss:
        self.before = self.peak = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def added(self) -> int:
        return self.peak - self.before


async def transcribe(target: str, content: bytes):
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        return await transcription_pb2_grpc.TranscriptionStub(channel).Transcribe(pb.TranscribeRequest(content=content))


async def test_lying_uploads_are_refused_or_decoded_within_a_bounded_memory(stack):
    gateway = stack.replicas_of("gateway")[0].process.pid
    refused = {
        "a 7 KB WAV declaring 1 Hz and an hour": (wav_declaring(1, 3600), "declares a sample rate of 1 Hz"),
        "a 180 KB FLAC of two hours of silence": (
            silent_flac(120),
            "lasts 7200 s; Transcribe takes files of at most 3600 s",
        ),
    }
    for name, (content, words) in refused.items():
        with PeakRss(gateway) as memory, pytest.raises(grpc.aio.AioRpcError) as caught:
            await transcribe(stack.gateway, content)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert words in caught.value.details(), name
        assert memory.added < MEMORY_BOUND, name

    half_an_hour = silent_flac(30)
    assert len(half_an_hour) < 100_000
    with PeakRss(gateway) as memory:
        reply = await transcribe(stack.gateway, half_an_hour)
    assert reply.duration_s == pytest.approx(1800) and list(reply.utterances) == []
    print(f"\n30 minutes decoded with the gateway's memory up {memory.added / 2**20:.1f} MiB at most")
    assert memory.added < MEMORY_BOUND, "decoded block by block: 30 minutes at 16 kHz would be 58 MB at once"
