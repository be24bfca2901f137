import numpy as np
import pytest

from voxmesh import audio, errors


@pytest.mark.parametrize(
    ("encoding", "rate", "channels", "accepted"),
    [
        ("ENCODING_UNSPECIFIED", 16000, 1, "send LINEAR16"),
        ("LINEAR16", 7999, 1, "from 8000 to 48000 Hz"),
        ("LINEAR16", 48001, 1, "from 8000 to 48000 Hz"),
        ("LINEAR16", 16000, 3, "send 1 (mono) or 2"),
        ("LINEAR16", 16000, 0, "send 1 (mono) or 2"),
    ],
)
def test_formats_outside_the_accepted_range_are_refused_with_what_is_accepted(encoding, rate, channels, accepted):
    with pytest.raises(errors.InvalidArgument) as caught:
        audio.check_format(encoding, rate, channels)
    assert accepted in str(caught.value)


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (16000, 2), (22050, 1), (44100, 2), (48000, 2)])
def test_streaming_conversion_matches_whole_file_conversion(rate, channels):
    rng = np.random.default_rng(1)
    t = np.arange(rate * 2) / rate
    signal = (np.sin(2 * np.pi * 300 * t) * 8000 + rng.normal(0, 200, t.size)).astype(np.int16)
    samples = np.stack([signal] * channels, axis=1)
    converter = audio.PcmConverter(audio.check_format("LINEAR16", rate, channels))
    step = rate // 10 + 3  # chunks that do not divide the rate evenly
    streamed = b"".join(converter.convert(samples[i : i + step].tobytes()) for i in range(0, len(samples), step))
    streamed += converter.flush()
    whole = audio.to_internal(samples, rate)
    assert abs(len(streamed) - len(whole)) <= 4
    n = min(len(streamed), len(whole)) // 2
    a = np.frombuffer(streamed[: n * 2], "<i2").astype(float)
    b = np.frombuffer(whole[: n * 2], "<i2").astype(float)
    assert np.abs(a - b)[100:-100].max() < 50, "chunk boundaries leave no seams"
    assert len(whole) // 2 == pytest.approx(2 * 16000, abs=2)


def test_16k_mono_is_passed_on_as_it_came():
    converter = audio.PcmConverter(audio.check_format("LINEAR16", 16000, 1))
    chunk = np.arange(-800, 800, dtype="<i2").tobytes()
    assert converter.convert(chunk) is chunk and converter.flush() == b""


def test_unreadable_file_is_invalid_argument():
    with pytest.raises(errors.InvalidArgument):
        audio.read_file(b"not audio at all")


def lying_wav(rate: int, frames: int) -> bytes:
    """A WAV whose header declares `rate` and `frames` 16-bit mono samples (the data holds them, silent)."""
    import struct

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


def test_an_upload_that_declares_an_absurd_rate_is_refused_before_decoding():
    with pytest.raises(errors.InvalidArgument, match="declares a sample rate of 1 Hz"):
        audio.RecordingDecoder(lying_wav(1, 3600), max_seconds=3600, block_s=1.0)


def test_an_upload_longer_than_the_limit_is_refused_from_its_header():
    with pytest.raises(errors.InvalidArgument, match="lasts 120 s; Transcribe takes files of at most 60 s"):
        audio.RecordingDecoder(lying_wav(8000, 8000 * 120), max_seconds=60, block_s=1.0)


def test_an_unreadable_upload_says_so_without_an_object_repr():
    with pytest.raises(errors.InvalidArgument) as caught:
        audio.RecordingDecoder(b"not audio at all", max_seconds=60, block_s=1.0)
    assert "0x" not in str(caught.value) and "BytesIO" not in str(caught.value)
    assert "Format not recognised" in str(caught.value)


def test_decoding_in_blocks_gives_what_decoding_the_whole_file_gives(jfk_path):
    whole = audio.to_internal(*audio.read_file(jfk_path))
    blocks = b"".join(audio.RecordingDecoder(jfk_path.read_bytes(), max_seconds=60, block_s=0.25).blocks())
    assert abs(len(blocks) - len(whole)) <= 4
    samples = np.frombuffer(whole, "<i2").astype(np.float64)
    decoded = np.frombuffer(blocks, "<i2")[: len(samples)].astype(np.float64)
    assert np.abs(samples[: len(decoded)] - decoded).max() <= 2, "the same samples, up to rounding"


def test_pcm_to_float_scales_each_sample_and_lets_the_bytearray_grow_after():
    pcm = bytearray(np.array([-32768, -16384, 0, 1, 16384, 32767], dtype="<i2").tobytes())
    samples = audio.pcm_to_float(pcm)
    assert samples.dtype == np.float32
    assert samples.tolist() == [-1.0, -0.5, 0.0, 1 / 32768, 0.5, 32767 / 32768]
    pcm += bytes(4)  # an utterance's audio keeps arriving after a partial's conversion
    assert len(pcm) == 16 and len(samples) == 6
