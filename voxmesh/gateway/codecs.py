"""What a stream's audio is decoded from, once, at the gateway: to 16 kHz mono LINEAR16.

- LINEAR16: 16-bit PCM at 8-48 kHz, mono or stereo (voxmesh.audio.PcmConverter).
- MULAW and ALAW: G.711, one byte per sample (telephony: 8 kHz), decoded by libsndfile, then as LINEAR16.
- OGG_OPUS and WEBM_OPUS: Opus in an Ogg or WebM container (what a browser's MediaRecorder makes), in chunks
  cut anywhere. The container is demuxed and decoded by FFmpeg's libraries through PyAV, on a thread of its
  own per stream that reads the chunks as they come; its rate and channels are the container's own.

Each decoder takes chunks and gives back what they complete. Malformed audio is INVALID_ARGUMENT with a
sentence saying what was wrong; it ends that stream only.
"""

from __future__ import annotations

import asyncio
import io
import queue
import threading
from typing import Protocol

import numpy as np
import soundfile

from voxmesh import SAMPLE_RATE, audio, errors, rpc

CONTAINERS = {"OGG_OPUS": "ogg", "WEBM_OPUS": "webm"}
G711 = {"MULAW": "ULAW", "ALAW": "ALAW"}
DECODE_WAIT_S = 10.0  # the longest a chunk may take to decode before the stream is failed


class Decoder(Protocol):
    async def decode(self, chunk: bytes) -> bytes:
        """16 kHz mono LINEAR16 for what this chunk completes."""

    async def finish(self) -> bytes:
        """What is left at the end of the stream."""


def open_decoder(encoding: str, sample_rate_hz: int, channels: int) -> Decoder:
    """The decoder for a stream's format, or INVALID_ARGUMENT saying what is accepted."""
    if encoding in CONTAINERS:
        return ContainerDecoder(encoding)
    if encoding in G711:
        return G711Decoder(encoding, audio.check_format("LINEAR16", sample_rate_hz, channels))
    if encoding == "LINEAR16":
        return PcmDecoder(audio.check_format(encoding, sample_rate_hz, channels))
    raise errors.InvalidArgument(
        f"audio encoding {encoding} is not supported: send LINEAR16 (16-bit signed little-endian PCM), MULAW or "
        "ALAW (G.711), OGG_OPUS or WEBM_OPUS"
    )


class PcmDecoder:
    def __init__(self, fmt: audio.PcmFormat):
        self.format = fmt
        self._converter = audio.PcmConverter(fmt)

    async def decode(self, chunk: bytes) -> bytes:
        rpc.require_whole_samples(chunk, self.format.channels)
        return self._converter.convert(chunk)

    async def finish(self) -> bytes:
        return self._converter.flush()


class G711Decoder(PcmDecoder):
    """G.711 mu-law or A-law, a byte per sample: libsndfile expands each chunk to LINEAR16."""

    def __init__(self, encoding: str, fmt: audio.PcmFormat):
        super().__init__(fmt)
        self.subtype = G711[encoding]

    async def decode(self, chunk: bytes) -> bytes:
        if len(chunk) % self.format.channels:
            raise errors.InvalidArgument(
                f"a G.711 chunk of {len(chunk)} bytes is not a whole number of samples: with {self.format.channels} "
                f"channels, send a multiple of {self.format.channels} bytes"
            )
        if not chunk:
            return b""
        pcm = soundfile.read(
            io.BytesIO(chunk),
            format="RAW",
            subtype=self.subtype,
            samplerate=self.format.sample_rate_hz,
            channels=self.format.channels,
            dtype="int16",
        )[0]
        return self._converter.convert(np.ascontiguousarray(pcm).astype("<i2").tobytes())


class _Pipe(io.RawIOBase):
    """A readable file of the chunks fed to it (the decoder thread's input); b"" once closed."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[bytes | None] = queue.Queue()
        self.waiting = threading.Event()  # the reader is blocked on an empty queue: what came is consumed
        self._rest = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest and not self._ended:
            if self.chunks.empty():
                self.waiting.set()
            chunk = self.chunks.get()
            self.waiting.clear()
            if chunk is None:
                self._ended = True
            else:
                self._rest = chunk
        count = min(len(buffer), len(self._rest))
        buffer[:count] = self._rest[:count]
        self._rest = self._rest[count:]
        return count


class ContainerDecoder:
    """Opus in an Ogg or WebM container, demuxed and decoded by PyAV on a thread of its own."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self._pipe = _Pipe()
        self._out: queue.Queue[bytes] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode-{encoding.lower()}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import av

        try:
            with av.open(self._pipe, mode="r", format=CONTAINERS[self.encoding]) as container:
                if not container.streams.audio:
                    raise ValueError("the container holds no audio stream")
                resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        self._out.put(bytes(out.planes[0])[: out.samples * 2])
                for out in resampler.resample(None):
                    self._out.put(bytes(out.planes[0])[: out.samples * 2])
        except Exception as exc:  # FFmpeg's errors (InvalidDataError, ...) and a stream with no audio
            self._error = exc
        finally:
            self._pipe.waiting.set()

    def _drain(self) -> bytes:
        pieces = []
        while not self._out.empty():
            pieces.append(self._out.get_nowait())
        return b"".join(pieces)

    def _check(self) -> None:
        if self._error is not None:
            raise errors.InvalidArgument(
                f"the {self.encoding} audio could not be decoded ({self._error}); send Opus in "
                f"{'an Ogg' if self.encoding == 'OGG_OPUS' else 'a WebM'} container, from its first byte"
            )

    def _feed(self, chunk: bytes) -> bytes:
        self._pipe.waiting.clear()
        self._pipe.chunks.put(chunk)
        if not self._pipe.waiting.wait(DECODE_WAIT_S):  # until the decoder asks for more (or stops)
            raise errors.InvalidArgument(f"the {self.encoding} audio took over {DECODE_WAIT_S:g} s to decode")
        self._check()
        return self._drain()

    async def decode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        return await asyncio.to_thread(self._feed, chunk)

    async def finish(self) -> bytes:
        self._pipe.chunks.put(None)
        await asyncio.to_thread(self._thread.join, DECODE_WAIT_S)
        self._check()
        return self._drain()
