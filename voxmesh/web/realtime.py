"""The realtime WebSocket (`/v1/realtime`): OpenAI's realtime transcription sessions over the mesh.

One session is one gateway stream (through the client library, so it resumes if a gateway goes away). The
client's base64 PCM16 (16 or 24 kHz, mono) goes to the gateway as it comes; the mesh's events come back as
realtime events. Three dialects are spoken, each client answered in the one it used:

- OpenAI beta: the client's first event is `transcription_session.update` (or the URL has
  `?intent=transcription`); it gets `transcription_session.created` / `.updated` and
  `conversation.item.input_audio_transcription.*`.
- OpenAI GA: `session.update` with a `session` object; it gets `session.created` / `.updated` and
  `conversation.item.input_audio_transcription.*`.
- vLLM: `session.update` with a top-level `model` and no `session`; it gets `session.created` / `.updated`,
  `transcription.delta` and `transcription.done` (audio at 16 kHz).

Every dialect gets `input_audio_buffer.speech_started`, `.speech_stopped` and `.committed` from the mesh's
VAD, and voxmesh's extras, which a client may ignore: `voxmesh.transcription.timing` (the engine's time
for each utterance) and `voxmesh.transcription.processed` (the post-processed text). A delta carries only
the growth of the text the mesh holds stable: a partial that would take words back sends nothing.

`input_audio_buffer.commit` ends the current utterance at once (a flush); for vLLM clients, a commit with
`final: true` ends the audio, and `transcription.done` follows the last final. Bad input gets an `error`
event saying what was wrong and what is accepted; the socket stays open, and other sessions go on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
from typing import Any

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect

from voxmesh.client import FLUSH, Client, StreamOptions
from voxmesh.events import Event, Final, Partial, Processed, SpeechEnd, SpeechStart, UtteranceFailed
from voxmesh.web import keys, metrics
from voxmesh.web.dialects import BadEvent, SessionSettings

log = logging.getLogger("voxmesh.web.realtime")

MAX_APPEND_BYTES = 1 << 20  # one append's decoded audio: 21 s at 24 kHz
# The largest WebSocket message read at all: a larger one closes the socket (1009). Up to it, an append over
# MAX_APPEND_BYTES is answered with an error event and the session goes on.
MAX_MESSAGE_BYTES = 32 << 20


class Session:
    def __init__(self, ws: WebSocket, client: Client):
        self.ws = ws
        self.client = client
        self.settings = SessionSettings("beta" if ws.query_params.get("intent") == "transcription" else "")
        self.audio: asyncio.Queue[bytes | object | None] | None = None  # to the mesh, once audio starts
        self.mesh: asyncio.Task | None = None
        self.sent_text: dict[int, str] = {}  # what deltas said of each utterance so far
        self.said: list[str] = []  # finals, for vLLM's transcription.done
        self.cleared: set[int] = set()  # utterances the client cleared: their text is not sent
        self.open_utterance = 0
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, kind: str, **fields: Any) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps({"type": kind, "event_id": f"event_{next(self._ids)}", **fields}))

    async def error(self, code: str, message: str, param: str | None = None, event_id: str | None = None) -> None:
        metrics.CLIENT_ERRORS.labels(code).inc()
        await self.send(
            "error",
            error={
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "param": param,
                "event_id": event_id,
            },
        )

    # -- the client's events ----------------------------------------------------------------------

    async def run(self) -> None:
        await self.send(self.settings.event("created"), session=self.settings.describe())
        metrics.OPEN_SESSIONS.inc()
        try:
            with contextlib.suppress(WebSocketDisconnect):  # the client went away: the session ends
                while (message := await self.ws.receive())["type"] != "websocket.disconnect":
                    raw = message.get("text")
                    if raw is None:
                        await self.error("invalid_event", "send events as JSON text messages, not binary frames")
                        continue
                    try:
                        await self.handle(raw)
                    except BadEvent as bad:
                        await self.error(bad.code, bad.message, bad.param, _event_id(raw))
        finally:
            metrics.OPEN_SESSIONS.dec()
            metrics.SESSIONS.labels(self.settings.dialect or "none").inc()
            await self.close()

    async def handle(self, raw: str) -> None:
        try:
            event = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadEvent("invalid_json", f"the event is not JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise BadEvent("invalid_event", "an event is a JSON object with a string `type`")
        kind = event["type"]
        if kind in ("session.update", "transcription_session.update"):
            await self.update(kind, event)
        elif kind == "input_audio_buffer.append":
            await self.append(event)
        elif kind == "input_audio_buffer.commit":
            await self.commit(event)
        elif kind == "input_audio_buffer.clear":
            await self.clear()
        else:
            raise BadEvent(
                "unknown_event",
                f"event type {kind[:64]!r} is not handled here; send session.update (or transcription_session.update), "
                "input_audio_buffer.append, input_audio_buffer.commit or input_audio_buffer.clear",
                "type",
            )

    async def update(self, kind: str, event: dict) -> None:
        self.settings = self.settings.updated(kind, event, started=self.audio is not None)
        await self.send(self.settings.event("updated"), session=self.settings.describe())

    async def append(self, event: dict) -> None:
        if not self.settings.configured:
            raise BadEvent(
                "session_not_configured",
                "input_audio_buffer.append came before session.update: send session.update (or "
                "transcription_session.update) with the audio format first",
            )
        data = event.get("audio")
        if not isinstance(data, str):
            raise BadEvent("invalid_audio", "`audio` is a base64 string of PCM16 samples", "audio")
        if len(data) > MAX_APPEND_BYTES * 4 // 3 + 4:
            raise BadEvent(
                "audio_too_large",
                f"one append carries at most {MAX_APPEND_BYTES} bytes of audio; send it in smaller appends "
                "(100 ms each is typical)",
                "audio",
            )
        try:
            pcm = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadEvent("invalid_audio", "`audio` is not valid base64", "audio") from None
        if len(pcm) % 2:
            raise BadEvent(
                "invalid_audio", f"the audio has {len(pcm)} bytes: PCM16 takes an even number (2 per sample)", "audio"
            )
        if pcm:
            await self._start().put(pcm)

    async def commit(self, event: dict) -> None:
        if self.audio is None:
            if self.settings.dialect == "vllm":
                return  # vLLM's clients commit once before their audio, to start
            raise BadEvent("input_audio_buffer_empty", "nothing to commit: no audio has been appended")
        await self.audio.put(FLUSH)
        if self.settings.dialect == "vllm" and event.get("final"):
            await self.audio.put(None)  # the end of the audio: transcription.done follows the last final

    async def clear(self) -> None:
        if self.open_utterance:
            self.cleared.add(self.open_utterance)
            if self.audio is not None:
                await self.audio.put(FLUSH)
        await self.send("input_audio_buffer.cleared")

    # -- the mesh's events ------------------------------------------------------------------------

    def _start(self) -> asyncio.Queue:
        if self.audio is None:
            self.audio = asyncio.Queue()
            self.mesh = asyncio.create_task(self._transcribe(self.audio))
        return self.audio

    async def _transcribe(self, audio: asyncio.Queue) -> None:
        async def chunks():
            while (item := await audio.get()) is not None:
                yield item

        options = StreamOptions(
            language=self.settings.language,
            prompt=self.settings.prompt,
            partials=True,
            post_processing=True,
            end_silence_ms=self.settings.end_silence_ms,
        )
        try:
            async for event in self.client.stream(chunks(), sample_rate_hz=self.settings.rate, options=options):
                await self.relay(event)
            if self.settings.dialect == "vllm":
                await self.send("transcription.done", text=" ".join(self.said), usage=None)
        except grpc.aio.AioRpcError as exc:
            await self.send(
                "error",
                error={"type": "server_error", "code": exc.code().name.lower(), "message": exc.details()},
            )
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away

    async def relay(self, event: Event) -> None:
        item = f"item_{event.utterance}"
        if isinstance(event, SpeechStart):
            self.open_utterance = event.utterance
            await self.send(
                "input_audio_buffer.speech_started", audio_start_ms=round(event.start_s * 1000), item_id=item
            )
            return
        if isinstance(event, SpeechEnd):
            self.open_utterance = 0
            await self.send("input_audio_buffer.speech_stopped", audio_end_ms=round(event.end_s * 1000), item_id=item)
            previous = f"item_{event.utterance - 1}" if event.utterance > 1 else None
            await self.send("input_audio_buffer.committed", item_id=item, previous_item_id=previous)
            return
        if event.utterance in self.cleared:
            return
        if isinstance(event, Partial):
            await self._delta(event.utterance, event.text[: int(len(event.text) * event.stability)].rstrip())
        elif isinstance(event, Final):
            await self._delta(event.utterance, event.text)
            self.said.append(event.text)
            if self.settings.dialect != "vllm":
                await self.send(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item,
                    content_index=0,
                    transcript=event.text,
                )
            await self.send(
                "voxmesh.transcription.timing",
                item_id=item,
                start_s=event.start_s,
                end_s=event.end_s,
                engine=event.engine,
                engine_compute_s=event.engine_compute_s,
                queue_wait_s=event.queue_wait_s,
            )
        elif isinstance(event, UtteranceFailed):
            failure = {"type": "transcription_error", "code": event.code, "message": event.message}
            if self.settings.dialect == "vllm":
                await self.send("error", error=failure)
            else:
                await self.send(
                    "conversation.item.input_audio_transcription.failed", item_id=item, content_index=0, error=failure
                )
        elif isinstance(event, Processed) and event.done:
            await self.send(
                "voxmesh.transcription.processed",
                item_id=item,
                text=event.text,
                outcome=event.outcome,
                reason=event.reason,
            )

    async def _delta(self, utterance: int, stable: str) -> None:
        """Send the growth of an utterance's stable text, never a take-back."""
        sent = self.sent_text.get(utterance, "")
        if len(stable) <= len(sent) or not stable.startswith(sent):
            return
        growth = stable[len(sent) :]
        self.sent_text[utterance] = stable
        if self.settings.dialect == "vllm":
            lead = " " if self.said and not sent else ""
            await self.send("transcription.delta", delta=lead + growth)
        else:
            await self.send(
                "conversation.item.input_audio_transcription.delta",
                item_id=f"item_{utterance}",
                content_index=0,
                delta=growth,
            )

    async def close(self) -> None:
        """The client went away: its stream is cancelled, and with it the mesh's work for it."""
        if self.mesh is not None:
            self.mesh.cancel()
            await asyncio.gather(self.mesh, return_exceptions=True)


def _event_id(raw: str) -> str | None:
    with contextlib.suppress(Exception):
        value = json.loads(raw).get("event_id")
        return value if isinstance(value, str) else None
    return None


async def session(ws: WebSocket) -> None:
    try:
        with ws.app.state.keys.admit(keys.authorization(ws), "StreamingTranscribe"):
            await ws.accept()
            await Session(ws, ws.app.state.client).run()
    except keys.REFUSED as exc:
        await ws.send_denial_response(keys.refusal(exc))  # the handshake is answered with 401, 403 or 429
