"""The gateway's VAD hop keeps a client's flushes in their place in the audio: each goes after the audio
sent before it, once per stream, and a new stream (a failover) gets again the ones not yet settled."""

from __future__ import annotations

from types import SimpleNamespace

from voxmesh.gateway.hop import Stream
from voxmesh.gateway.hops import VadHop
from voxmesh.v1 import vad_pb2


class Recording:
    """A call that records what is written to it: ("audio", samples) or ("flush", None)."""

    def __init__(self):
        self.sent: list[tuple[str, int | None]] = []

    async def write(self, request):
        kind = request.WhichOneof("request")
        self.sent.append((kind, len(request.audio) // 2 if kind == "audio" else None))

    async def done_writing(self):
        pass


def hop() -> VadHop:
    async def on_vad(response):
        pass

    chain = SimpleNamespace(config=SimpleNamespace(endpointing=None), on_vad=on_vad)
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
