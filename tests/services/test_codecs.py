"""Telephony and browser codecs, decoded once at the gateway: real speech (jfk, public domain) encoded by
real encoders (samples/make_codecs.sh: sox for G.711, opusenc for Ogg Opus, ffmpeg for WebM Opus), sent in
chunks through the in-process mesh with the real whisper engine."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.services.conftest import mesh, status_of, stream_events
from voxmesh import text
from voxmesh.client import Client, StreamOptions
from voxmesh.v1 import transcription_pb2 as pb

CODECS = Path(__file__).resolve().parents[2] / "samples" / "codecs"
JFK = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


def config(encoding, rate: int = 0, channels: int = 0) -> pb.StreamingTranscribeRequest:
    return pb.StreamingTranscribeRequest(
        config=pb.StreamingConfig(
            format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=channels),
            post_processing=pb.PostProcessing(enabled=False),
            source=pb.AUDIO_SOURCE_RECORDED,
        )
    )


def pieces(data: bytes, size: int) -> list[pb.StreamingTranscribeRequest]:
    return [pb.StreamingTranscribeRequest(audio=data[i : i + size]) for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("name", "encoding", "rate", "channels", "chunk"),
    [
        ("jfk.ulaw", pb.AudioFormat.MULAW, 8000, 1, 800),  # 100 ms per message, as telephony sends
        ("jfk.alaw", pb.AudioFormat.ALAW, 8000, 1, 800),
        ("jfk.opus", pb.AudioFormat.OGG_OPUS, 0, 0, 997),  # container bytes cut anywhere, pages split
        ("jfk.webm", pb.AudioFormat.WEBM_OPUS, 0, 0, 1499),
    ],
)
async def test_each_codec_of_real_speech_is_transcribed(jfk_path, name, encoding, rate, channels, chunk):
    data = (CODECS / name).read_bytes()
    async with mesh() as (address, _):
        events = await stream_events(address, [config(encoding, rate, channels), *pieces(data, chunk)])
    said = " ".join(e.final.text for e in events if e.WhichOneof("event") == "final")
    assert text.wer(JFK, said) <= 0.15, said
    ends = [e.end_s for e in events if e.WhichOneof("event") == "speech_ended"]
    assert ends and 10.0 <= ends[-1] <= 11.2, "offsets are in the stream's own time (jfk lasts 11 s)"


@pytest.mark.parametrize(
    ("encoding", "data", "expected"),
    [
        (pb.AudioFormat.OGG_OPUS, b"this is not an ogg stream at all" * 200, "the OGG_OPUS audio could not be decoded"),
        (pb.AudioFormat.WEBM_OPUS, bytes(range(256)) * 40, "the WEBM_OPUS audio could not be decoded"),
    ],
)
async def test_a_malformed_container_is_refused_and_other_streams_go_on(jfk_path, encoding, data, expected):
    good = (CODECS / "jfk.opus").read_bytes()
    async with mesh() as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream_events(address, [config(encoding), *pieces(data, 1000)])
        events = await stream_events(address, [config(pb.AudioFormat.OGG_OPUS), *pieces(good, 1000)])
    code, details = status_of(refused)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in details
    assert [e for e in events if e.WhichOneof("event") == "final"], "the next stream is transcribed"


async def test_g711_with_a_partial_sample_of_stereo_is_refused():
    async with mesh() as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream_events(
                address, [config(pb.AudioFormat.MULAW, 8000, 2), pb.StreamingTranscribeRequest(audio=b"abc")]
            )
    code, details = status_of(refused)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "send a multiple of 2 bytes" in details


async def test_the_client_library_streams_raw_g711_for_the_gateway_to_decode(jfk_path):
    async with mesh() as (address, _), Client(address) as client:
        events = [
            e
            async for e in client.stream_file(
                CODECS / "jfk.alaw", pace="fast", raw=("ALAW", 8000), options=StreamOptions(post_processing=False)
            )
        ]
    said = " ".join(e.text for e in events if e.type == "final")
    assert text.wer(JFK, said) <= 0.15, said
