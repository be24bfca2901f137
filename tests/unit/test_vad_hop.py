"""The gateway's VAD hop keeps a client's flushes in their place in the audio: each goes after the audio
sent before it, once per stream, and a new stream (a failover) gets again the ones not yet settled. It
gathers the audio that comes before the VAD's next boundary into one message."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from voxmesh.gateway.hop import Stream
from voxmesh.gateway.hops import VadHop
from voxmesh.v1 import vad_pb2


class Recording:
    """A call that records what is written to it: ("audio", samples) or ("flush", None)."""

    def __init__(self):
        self.sent: list[tuple[str, int | None]] = []
        self.audio = bytearray()  # every sample written, in order

    async def write(self, request):
        kind = request.WhichOneof("request")
        self.sent.append((kind, len(request.audio) // 2 if kind == "audio" else None))
        self.audio += request.audio

    async def done_writing(self):
        pass


def hop(audio_at_end: bool = True) -> VadHop:
    """A VAD hop whose chain's ASR stream takes the audio at the end (whisper without partials), or as spoken."""

    async def on_vad(response):
        pass

    asr = SimpleNamespace(current=Stream(Recording(), 1, audio_at_end=audio_at_end))  # type: ignore[arg-type]
    chain = SimpleNamespace(config=SimpleNamespace(endpointing=None), on_vad=on_vad, asr=asr)
    return VadHop(chain, 0, 1)  # type: ignore[arg-type]  # only what the hop reads of its chain


async def test_a_flush_goes_after_the_audio_before_it_and_again_on_a_new_stream_until_settled():
    vad = hop()
    first = Stream(Recording(), 1)  # type: ignore[arg-type]
    vad.current = first
    await vad.push(bytes(2 * 1600))
    await vad.flush()
    await vad.push(bytes(2 * 800))
    assert first.call.sent == [("audio", 1600), ("flush", None), ("audio", 800)]

    second = Stream(Recording(), 2)  # type: ignore[arg-type]  # the VAD failed over before settling anything
    vad.current = second
    async with vad.lock:
        await vad._replay(second)
    assert second.call.sent == [("audio", 1600), ("flush", None), ("audio", 800)], "the flush again, in its place"

    await vad._handle(second, vad_pb2.DetectResponse(settled_through_s=0.15))  # the VAD settled past the flush
    third = Stream(Recording(), 3)  # type: ignore[arg-type]
    vad.current = third
    async with vad.lock:
        await vad._replay(third)
    assert ("flush", None) not in third.call.sent, "a settled flush is not sent again"


CHUNK = bytes(2 * 1600)  # 100 ms


async def test_audio_before_the_next_boundary_is_gathered_and_the_chunk_that_reaches_it_goes_at_once():
    vad = hop()
    stream = Stream(Recording(), 1)  # type: ignore[arg-type]
    vad.current = stream
    await vad.push(CHUNK)
    assert stream.call.sent == [("audio", 1600)], "before the VAD said anything, each chunk goes"
    await vad._handle(stream, vad_pb2.DetectResponse(input_through_s=0.1, next_boundary_s=0.45))
    for _ in range(3):
        await vad.push(CHUNK)
    assert stream.call.sent == [("audio", 1600)], "audio up to 0.4 s cannot bring a start or an end: held"
    await vad.push(CHUNK)
    assert stream.call.sent == [("audio", 1600), ("audio", 6400)], "the chunk that reaches 0.45 s goes, in one message"
    await vad.push(CHUNK)
    assert stream.call.sent[-1] == ("audio", 1600), "past the boundary said, each chunk goes until the VAD says more"

    await vad._handle(stream, vad_pb2.DetectResponse(input_through_s=0.6, next_boundary_s=1.5))
    await vad.push(CHUNK)
    await vad.flush()
    assert stream.call.sent[-2:] == [("audio", 1600), ("flush", None)], "a flush sends what is held, then itself"
    await vad.push(CHUNK)
    await vad.end_input()
    assert stream.call.sent[-1] == ("audio", 1600), "the end of input sends what is held"


async def test_a_new_stream_gets_the_held_audio_and_nothing_is_held_for_an_asr_that_hears_audio_as_spoken():
    vad = hop()
    first = Stream(Recording(), 1)  # type: ignore[arg-type]
    vad.current = first
    await vad._handle(first, vad_pb2.DetectResponse(next_boundary_s=1.0))
    await vad.push(CHUNK)
    assert first.call.sent == []
    second = Stream(Recording(), 2)  # type: ignore[arg-type]
    vad.current = second
    async with vad.lock:
        await vad._replay(second)
    await vad.push(CHUNK)
    assert second.call.sent == [("audio", 1600), ("audio", 1600)], "a new VAD has said nothing yet: nothing is held"

    live = hop(audio_at_end=False)  # partials, or a streaming engine, want the audio as it comes
    stream = Stream(Recording(), 1)  # type: ignore[arg-type]
    live.current = stream
    await live._handle(stream, vad_pb2.DetectResponse(next_boundary_s=1.0))
    await live.push(CHUNK)
    assert stream.call.sent == [("audio", 1600)]


async def test_a_new_stream_gets_exactly_the_audio_kept_and_the_buffer_lets_the_rest_go():
    vad = hop(audio_at_end=False)
    first = Stream(Recording(), 1)  # type: ignore[arg-type]
    vad.current = first
    pcm = (np.arange(16000 * 20) % 30011).astype("<i2").tobytes()  # 20 s, every sample told apart by its place
    for offset in range(0, len(pcm), len(CHUNK)):
        await vad.push(pcm[offset : offset + len(CHUNK)])
        settled_s = (offset + len(CHUNK)) / 2 / 16000  # quiet: the VAD settles all it has read
        await vad._handle(first, vad_pb2.DetectResponse(settled_through_s=settled_s))
        kept = (vad.received - vad.start) * 2
        assert len(vad.buffer) <= 2 * kept + len(CHUNK), "what lies before the kept audio goes"
    assert first.call.audio == pcm
    assert vad.start == 16000 * 17, "the last 3 s before the settled offset are kept, for a new VAD to listen to"
    assert vad.audio(18.5, 19.0) == pcm[2 * 16000 * 37 // 2 : 2 * 16000 * 19]

    second = Stream(Recording(), 2)  # type: ignore[arg-type]
    vad.current = second
    async with vad.lock:
        await vad._replay(second)
    assert second.call.audio == pcm[2 * vad.start :], "the new stream gets the kept audio, sample for sample"
