import numpy as np
import pytest

from voxmesh import audio, errors


@pytest.mark.parametrize(("encoding", "rate", "channels", "accepted"), [
    ("ENCODING_UNSPECIFIED", 16000, 1, "send LINEAR16"), ("LINEAR16", 7999, 1, "from 8000 to 48000 Hz"),
    ("LINEAR16", 48001, 1, "from 8000 to 48000 Hz"), ("LINEAR16", 16000, 3, "send 1 (mono) or 2"),
    ("LINEAR16", 16000, 0, "send 1 (mono) or 2"),
])
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


def test_unreadable_file_is_invalid_argument():
    with pytest.raises(errors.InvalidArgument):
        audio.read_file(b"not audio at all")
