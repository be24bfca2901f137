"""OpenAI's audio API over the mesh: `POST /v1/audio/transcriptions` and `GET /v1/models`.

A transcription request becomes one gateway `Transcribe` call (the whole file, recorded audio: it waits for
capacity rather than being refused), or, with `stream=true`, one recorded StreamingTranscribe whose finals
come back as server-sent `transcript.text.delta` events as they land, closed by `transcript.text.done`.
Errors come back in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the HTTP status
that matches the gateway's gRPC status.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator

import grpc
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from voxmesh import audio, captions, errors
from voxmesh.client import Client, StreamOptions
from voxmesh.events import Final, Word
from voxmesh.v1 import transcription_pb2 as pb
from voxmesh.web import keys, metrics

# The model ids the mesh answers to: its own, and OpenAI's transcription models (so that code written for
# OpenAI works unchanged); each is served by the mesh's ASR engine, whatever it is.
MODELS = ("voxmesh", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
CHUNK_S = 0.5  # a streamed file goes to the gateway in pieces of this much audio

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


def from_grpc(exc: grpc.aio.AioRpcError) -> JSONResponse:
    return error(HTTP_STATUS.get(exc.code(), 500), exc.details() or exc.code().name, code=exc.code().name.lower())


async def models(request: Request) -> JSONResponse:
    return JSONResponse(
        {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "voxmesh"} for m in MODELS]}
    )


class Asked:
    """A transcription request's form, checked."""

    def __init__(self, form, max_bytes: int):
        self.form = form
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise errors.InvalidArgument("the form has no `file`: send the audio as a multipart file field")
        self.upload = upload
        self.model = str(form.get("model") or "")
        if self.model not in MODELS:
            raise errors.InvalidArgument(
                f"model {errors.quote(self.model)} is not served here; use one of {', '.join(MODELS)} "
                "(GET /v1/models), each transcribed by the mesh's ASR engine"
            )
        self.format = str(form.get("response_format") or "json")
        if self.format not in FORMATS:
            raise errors.InvalidArgument(
                f"response_format {errors.quote(self.format)} is not supported; use one of {', '.join(FORMATS)}"
            )
        self.stream = str(form.get("stream") or "false").lower() == "true"
        granularities = form.getlist("timestamp_granularities[]") or form.getlist("timestamp_granularities")
        self.words = "word" in granularities
        self.max_bytes = max_bytes
        self.options = StreamOptions(
            language=str(form.get("language") or ""),
            prompt=str(form.get("prompt") or ""),
            post_processing=False,
            word_timings=self.words or self.format in ("srt", "vtt"),
            recorded=True,
            resume=False,
        )

    async def content(self) -> bytes:
        data = await self.upload.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise errors.InvalidArgument(
                f"the file is over {self.max_bytes} bytes, the most this service takes (VOXMESH_WEB_MAX_UPLOAD_BYTES)"
            )
        if not data:
            raise errors.InvalidArgument("the file is empty: send the bytes of an audio file (WAV, FLAC, OGG, ...)")
        return data


def finals_of(reply: pb.TranscribeResponse) -> list[Final]:
    out = []
    for u in reply.utterances:
        if not u.HasField("final"):
            continue
        f = u.final
        words = tuple(Word(w.word, w.start_s, w.end_s) for w in f.words)
        out.append(Final(u.utterance_id, u.start_s, u.end_s, f.text, f.language, f.engine, 0.0, 0.0, 0.0, words=words))
    return out


def render(asked: Asked, reply: pb.TranscribeResponse) -> Response:
    finals = finals_of(reply)
    text = " ".join(f.text for f in finals if f.text)
    if asked.format == "text":
        return PlainTextResponse(text + "\n")
    if asked.format == "srt":
        return PlainTextResponse(captions.srt(finals), media_type="application/x-subrip")
    if asked.format == "vtt":
        return PlainTextResponse(captions.vtt(finals), media_type="text/vtt")
    if asked.format == "json":
        return JSONResponse({"text": text})
    language = next((f.language for f in finals if f.language), asked.options.language)
    segments = []
    for number, u in enumerate(u for u in reply.utterances if u.HasField("final")):
        confidence = u.final.confidence if u.final.HasField("confidence") else None
        segments.append(
            {
                "id": number,
                "seek": 0,
                "start": round(u.start_s, 3),
                "end": round(u.end_s, 3),
                "text": u.final.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": math.log(confidence) if confidence else 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            }
        )
    body = {
        "task": "transcribe",
        "language": language,
        "duration": reply.duration_s,
        "text": text,
        "segments": segments,
    }
    if asked.words:
        body["words"] = [{"word": w.text, "start": w.start_s, "end": w.end_s} for f in finals for w in f.words]
    return JSONResponse(body)


async def transcriptions(request: Request) -> Response:
    app = request.app.state
    try:
        with app.keys.admit(keys.authorization(request), "Transcribe"):
            response = await _transcriptions(request)
    except keys.REFUSED as exc:
        response = keys.refusal(exc)
    metrics.TRANSCRIPTIONS.labels(str(response.status_code)).inc()
    return response


async def _transcriptions(request: Request) -> Response:
    app = request.app.state
    client: Client = app.client
    try:
        async with request.form(max_files=1, max_part_size=app.settings.max_upload_bytes + 1) as form:
            asked = Asked(form, app.settings.max_upload_bytes)
            data = await asked.content()
    except errors.VoxmeshError as exc:
        return error(400, str(exc))
    if asked.stream:
        return StreamingResponse(_events(client, data, asked), media_type="text/event-stream")
    try:
        reply = await client.transcribe(data, options=asked.options, timeout=app.settings.request_timeout_s)
    except grpc.aio.AioRpcError as exc:
        return from_grpc(exc)
    return render(asked, reply)


async def _events(client: Client, data: bytes, asked: Asked) -> AsyncIterator[str]:
    """Server-sent events: a delta per final as it lands, then done with the whole text (or an error)."""
    said: list[str] = []
    try:
        samples, rate = await asyncio.to_thread(audio.read_file, data)
        if not (audio.MIN_RATE <= rate <= audio.MAX_RATE and samples.shape[1] in audio.CHANNELS):
            samples, rate = audio.from_internal(await asyncio.to_thread(audio.to_internal, samples, rate)), 16000
        step = max(1, int(rate * CHUNK_S))
        chunks = (samples[i : i + step].tobytes() for i in range(0, len(samples), step))
        async for event in client.stream(chunks, sample_rate_hz=rate, channels=samples.shape[1], options=asked.options):
            if isinstance(event, Final) and event.text:
                delta = (" " if said else "") + event.text
                said.append(event.text)
                yield _sse({"type": "transcript.text.delta", "delta": delta})
        yield _sse({"type": "transcript.text.done", "text": " ".join(said)})
    except errors.VoxmeshError as exc:
        yield _sse({"type": "error", "error": {"message": str(exc), "type": "invalid_request_error"}})
    except grpc.aio.AioRpcError as exc:
        yield _sse({"type": "error", "error": {"message": exc.details(), "code": exc.code().name.lower()}})


def _sse(event: dict) -> str:
    return f"data: {json.dumps(event)}\n\n"
