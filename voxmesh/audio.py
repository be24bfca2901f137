"""Audio formats: what clients may send, and the one conversion to the internal 16 kHz mono int16."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from voxmesh import SAMPLE_RATE, errors

MIN_RATE, MAX_RATE = 8_000, 48_000
CHANNELS = (1, 2)
# What a whole recording (Transcribe) may declare: any rate libsndfile and soxr handle well, up to 8 channels.
FILE_RATES = (8_000, 192_000)
MAX_FILE_CHANNELS = 8


@dataclass(frozen=True)
class PcmFormat:
    """LINEAR16 (16-bit signed little-endian PCM, channels interleaved) at a rate and channel count."""

    sample_rate_hz: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return 2 * self.channels

    def seconds(self, n_bytes: int) -> float:
        return n_bytes / (self.frame_bytes * self.sample_rate_hz)


INTERNAL = PcmFormat(SAMPLE_RATE, 1)


def check_format(encoding_name: str, sample_rate_hz: int, channels: int) -> PcmFormat:
    """The client's format, or INVALID_ARGUMENT saying what is accepted."""
    if encoding_name != "LINEAR16":
        raise errors.InvalidArgument(
            f"audio encoding {encoding_name} is not supported: send LINEAR16 (16-bit signed little-endian PCM)"
        )
    if not MIN_RATE <= sample_rate_hz <= MAX_RATE:
        raise errors.InvalidArgument(
            f"sample_rate_hz {sample_rate_hz} is not supported: any rate from {MIN_RATE} to {MAX_RATE} Hz is"
        )
    if channels not in CHANNELS:
        raise errors.InvalidArgument(f"channels {channels} is not supported: send 1 (mono) or 2 (stereo, interleaved)")
    return PcmFormat(sample_rate_hz, channels)


class PcmConverter:
    """Converts a stream of LINEAR16 chunks in one format to 16 kHz mono LINEAR16, chunk by chunk.

    Stereo is averaged to mono; other rates go through one streaming soxr resampler per stream, so that
    chunk boundaries leave no seams. `flush()` returns the resampler's tail at the end of the stream.
    """

    def __init__(self, fmt: PcmFormat):
        self.format = fmt
        self._resampler = (
            soxr.ResampleStream(fmt.sample_rate_hz, SAMPLE_RATE, 1, dtype="float32")
            if fmt.sample_rate_hz != SAMPLE_RATE
            else None
        )

    def convert(self, chunk: bytes) -> bytes:
        if self.format.channels == 1 and self._resampler is None:
            return chunk  # already 16 kHz mono: passed on as it came, with no copy
        samples = np.frombuffer(chunk, dtype="<i2")
        if self.format.channels == 2:
            samples = samples.reshape(-1, 2).mean(axis=1)
        if self._resampler is None:
            return samples.astype("<i2").tobytes()
        return float_to_pcm(self._resampler.resample_chunk(samples.astype(np.float32) / 32768.0))

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        return float_to_pcm(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))


def float_to_pcm(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1) as 16-bit PCM bytes, clipped: the inverse of pcm_to_float."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


def pcm_to_float(pcm: bytes | bytearray) -> np.ndarray:
    """16-bit PCM bytes as float32 samples in [-1, 1), the form engines take.

    One new array, scaled in place: a fresh array of seconds of audio costs a page fault per 4 KiB on first
    touch, which is most of this function's time. (The int16 view lets go of the bytearray's buffer as soon
    as it is converted, so the bytearray can still grow.)"""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    samples *= np.float32(1 / 32768)
    return samples


def _unreadable(exc: Exception) -> errors.InvalidArgument:
    reason = getattr(exc, "error_string", "") or "libsndfile does not recognise the data"
    return errors.InvalidArgument(
        f"the audio could not be read ({reason.strip()}); send a file libsndfile reads: WAV, FLAC, OGG, ..."
    )


def read_file(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Any file libsndfile reads (WAV, FLAC, OGG, ...): int16 samples shaped (frames, channels), and the rate.
    The whole file in memory: for the client's own files; the gateway decodes uploads with RecordingDecoder."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        samples, rate = soundfile.read(handle, dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _unreadable(exc) from exc
    return samples, rate


class RecordingDecoder:
    """An uploaded recording decoded block by block to 16 kHz mono LINEAR16, so that memory is bounded by
    the block and not by the file. The header is checked first: its rate, its channels and its length
    (a file that says it lasts longer than `max_seconds` is refused before anything is decoded, and one
    whose data runs past its header's length stops there)."""

    def __init__(self, content: bytes, max_seconds: float, block_s: float):
        try:
            self._file = soundfile.SoundFile(io.BytesIO(content))
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
            raise _unreadable(exc) from exc
        rate, channels, frames = self._file.samplerate, self._file.channels, self._file.frames
        if not FILE_RATES[0] <= rate <= FILE_RATES[1]:
            raise errors.InvalidArgument(
                f"the file declares a sample rate of {rate} Hz; files from {FILE_RATES[0]} to {FILE_RATES[1]} Hz "
                "are accepted"
            )
        if not 1 <= channels <= MAX_FILE_CHANNELS:
            raise errors.InvalidArgument(
                f"the file declares {channels} channels; files of 1 to {MAX_FILE_CHANNELS} channels are accepted"
            )
        self.rate = rate
        self.max_frames = int(max_seconds * rate)
        if frames > self.max_frames:
            raise errors.InvalidArgument(
                f"the file lasts {frames / rate:.0f} s; Transcribe takes files of at most {max_seconds:g} s "
                "(VOXMESH_GATEWAY_MAX_FILE_S): stream longer audio with StreamingTranscribe"
            )
        self.seconds = frames / rate
        self._block = max(1, int(block_s * rate))

    def blocks(self) -> Iterator[bytes]:
        """16 kHz mono LINEAR16, a block at a time (blocking: run it off the event loop)."""
        resampler = (
            soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32") if self.rate != SAMPLE_RATE else None
        )
        read = 0
        try:
            for block in self._file.blocks(blocksize=self._block, dtype="int16", always_2d=True):
                read += len(block)
                if read > self.max_frames:
                    break  # the data goes on past what the header said: the header's length is the limit
                mono = block.astype(np.float32).mean(axis=1) / 32768.0
                yield float_to_pcm(resampler.resample_chunk(mono) if resampler else mono)
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise _unreadable(exc) from exc
        finally:
            self._file.close()
        if resampler is not None:
            yield float_to_pcm(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))


def to_internal(samples: np.ndarray, rate: int) -> bytes:
    """A whole recording (int16, (frames, channels)) as 16 kHz mono LINEAR16."""
    mono = samples.astype(np.float32).mean(axis=1) / 32768.0
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE)
    return float_to_pcm(mono)


def from_internal(pcm: bytes) -> np.ndarray:
    """16 kHz mono LINEAR16 bytes as int16 samples shaped (frames, 1)."""
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, 1)
