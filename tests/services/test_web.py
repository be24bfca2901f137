"""The web service with real clients: the official `openai` SDK on /v1/audio/transcriptions and /v1/models,
and a `websockets` client on /v1/realtime in each dialect (OpenAI GA, OpenAI beta, vLLM), over the real
mesh in this process (whisper tiny.en) on real speech (jfk)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import numpy as np
import openai
import pytest
import soxr
import websockets

from tests.services.conftest import web
from voxmesh import text

JFK = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
async def test_the_openai_sdk_transcribes_real_speech_in_every_format(jfk_path, response_format):
    async with web() as base:

        def call():
            with jfk_path.open("rb") as audio:
                return sdk(base).audio.transcriptions.create(
                    model="whisper-1",
                    file=audio,
                    response_format=response_format,
                    timestamp_granularities=["word", "segment"] if response_format == "verbose_json" else openai.omit,
                )

        reply = await asyncio.to_thread(call)
    if response_format in ("json", "verbose_json"):
        said = reply.text
    else:
        said = reply if isinstance(reply, str) else str(reply)
    if response_format in ("srt", "vtt"):
        assert "-->" in said
        said = " ".join(line for line in said.splitlines() if line and "-->" not in line and not line.isdigit())
        said = said.replace("WEBVTT", "")
    assert text.wer(JFK, said) <= 0.15, said
    if response_format == "verbose_json":
        assert reply.segments and reply.duration == pytest.approx(11.0, abs=0.2)
        assert reply.words and reply.words[0].start <= reply.words[-1].end


async def test_the_openai_sdk_streams_a_transcription_as_server_sent_events(jfk_path):
    async with web() as base:

        def call():
            with jfk_path.open("rb") as audio:
                stream = sdk(base).audio.transcriptions.create(model="gpt-4o-transcribe", file=audio, stream=True)
                return [event for event in stream]

        events = await asyncio.to_thread(call)
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(done) == 1 and "".join(deltas) == done[0].text
    assert text.wer(JFK, done[0].text) <= 0.15


async def test_models_and_a_bad_request_in_openais_shape(jfk_path):
    async with web() as base:
        client = sdk(base)
        listed = await asyncio.to_thread(lambda: [m.id for m in client.models.list()])

        def bad():
            with jfk_path.open("rb") as audio:
                return client.audio.transcriptions.create(model="not-a-model", file=audio)

        with pytest.raises(openai.BadRequestError) as refused:
            await asyncio.to_thread(bad)
    assert "voxmesh" in listed and "whisper-1" in listed
    assert "model 'not-a-model' is not served here" in refused.value.message


def pcm16(path, rate: int) -> bytes:
    from tests.conftest import internal_pcm

    samples = np.frombuffer(internal_pcm(path), "<i2").astype(np.float32) / 32768
    if rate != 16000:
        samples = soxr.resample(samples, 16000, rate)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def realtime(base: str, first: dict, audio: bytes, rate: int, *, end: list[dict], until, query: str = ""):
    """A session: the first event, the audio in 100 ms appends, the closing events; the events until `until`."""
    events = []
    async with websockets.connect(base.replace("http", "ws") + "/v1/realtime" + query) as ws:
        events.append(json.loads(await ws.recv()))
        await ws.send(json.dumps(first))
        step = rate // 10 * 2
        for offset in range(0, len(audio), step):
            await ws.send(append(audio[offset : offset + step]))
        for event in end:
            await ws.send(json.dumps(event))
        async with asyncio.timeout(60):
            while not until(events):
                events.append(json.loads(await ws.recv()))
    return events


def completed(events) -> list[str]:
    return [e["transcript"] for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]


def check_deltas(events) -> None:
    """Per item, the deltas add up to a prefix of its completed text: nothing was taken back."""
    grown: dict[str, str] = {}
    for e in events:
        if e["type"] == "conversation.item.input_audio_transcription.delta":
            grown[e["item_id"]] = grown.get(e["item_id"], "") + e["delta"]
        elif e["type"] == "conversation.item.input_audio_transcription.completed":
            assert e["transcript"].startswith(grown.get(e["item_id"], "")), (grown, e)


def ga_update(rate: int = 24000, **audio_input) -> dict:
    """OpenAI GA's session.update for a transcription session of PCM16 at `rate`."""
    audio = {"input": {"format": {"type": "audio/pcm", "rate": rate}, **audio_input}}
    return {"type": "session.update", "session": {"type": "transcription", "audio": audio}}


def append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


def heard_jfk(events) -> bool:
    return text.wer(JFK, " ".join(completed(events))) <= 0.15


async def test_a_realtime_session_in_openais_ga_dialect(jfk_path):
    update = ga_update(turn_detection={"type": "server_vad"})
    async with web() as base:
        events = await realtime(
            base,
            update,
            pcm16(jfk_path, 24000),
            24000,
            end=[{"type": "input_audio_buffer.commit"}],
            until=heard_jfk,
        )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "session.created" and "session.updated" in kinds
    assert {
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    } <= set(kinds)
    assert "voxmesh.transcription.timing" in kinds
    check_deltas(events)


async def test_a_realtime_session_in_openais_beta_dialect(jfk_path):
    update = {"type": "transcription_session.update", "session": {"input_audio_format": "pcm16"}}
    async with web() as base:
        events = await realtime(
            base,
            update,
            pcm16(jfk_path, 24000),
            24000,
            end=[{"type": "input_audio_buffer.commit"}],
            until=heard_jfk,
            query="?intent=transcription",
        )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "transcription_session.created" and "transcription_session.updated" in kinds
    assert "session.updated" not in kinds
    check_deltas(events)


async def test_a_realtime_session_in_vllms_dialect(jfk_path):
    async with web() as base:
        events = await realtime(
            base,
            {"type": "session.update", "model": "mistralai/Voxtral-Mini-4B-Realtime-2602"},
            pcm16(jfk_path, 16000),
            16000,
            end=[{"type": "input_audio_buffer.commit", "final": True}],
            until=lambda evs: any(e["type"] == "transcription.done" for e in evs),
        )
    done = [e for e in events if e["type"] == "transcription.done"]
    deltas = "".join(e["delta"] for e in events if e["type"] == "transcription.delta")
    assert deltas == done[0]["text"] and text.wer(JFK, done[0]["text"]) <= 0.15
    assert not [e for e in events if e["type"].startswith("conversation.item")]


BAD = [
    ("not json at all", "invalid_json"),
    ({"type": "response.create"}, "unknown_event"),
    ({"type": "input_audio_buffer.append", "audio": "!!not base64!!"}, "invalid_audio"),
    ({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}, "invalid_audio"),
    (ga_update(44100), "unsupported_rate"),
    ({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(20 << 20)).decode()}, "audio_too_large"),
]


async def test_bad_input_gets_an_error_event_and_the_socket_and_other_sessions_go_on(jfk_path):
    update = ga_update()
    async with web() as base:
        url = base.replace("http", "ws") + "/v1/realtime"
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()  # session.created
            await ws.send(append(bytes(3200)))
            early = json.loads(await ws.recv())
            assert early["type"] == "error" and early["error"]["code"] == "session_not_configured"
            await ws.send(json.dumps(update))
            assert json.loads(await ws.recv())["type"] == "session.updated"
            for event, code in BAD:
                await ws.send(event if isinstance(event, str) else json.dumps(event))
                answer = json.loads(await ws.recv())
                assert answer["type"] == "error" and answer["error"]["code"] == code, (code, answer)
                assert answer["error"]["message"]
            other = realtime(
                base,
                update,
                pcm16(jfk_path, 24000),
                24000,
                end=[{"type": "input_audio_buffer.commit"}],
                until=heard_jfk,
            )
            await other  # another session is transcribed while this one had its errors
            await ws.send(append(bytes(4800)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))  # still usable: no error comes back
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    while True:
                        assert json.loads(await ws.recv())["type"] != "error"


async def test_clear_drops_the_open_utterances_text_and_says_cleared(jfk_path):
    update = ga_update()
    audio = pcm16(jfk_path, 24000)
    async with web() as base, websockets.connect(base.replace("http", "ws") + "/v1/realtime") as ws:
        await ws.send(json.dumps(update))
        step = 2400 * 2
        for offset in range(0, 24000 * 2 * 2, step):  # the first 2 s: "and so my fellow americans"
            await ws.send(append(audio[offset : offset + step]))
        events = []
        async with asyncio.timeout(30):
            while not any(e["type"] == "input_audio_buffer.speech_started" for e in events):
                events.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            while not any(e["type"] == "input_audio_buffer.cleared" for e in events):
                events.append(json.loads(await ws.recv()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while True:
                    events.append(json.loads(await ws.recv()))
    assert not completed(events), "the cleared utterance's text is not sent"
    assert any(e["type"] == "input_audio_buffer.speech_stopped" for e in events), "it was ended at once"
