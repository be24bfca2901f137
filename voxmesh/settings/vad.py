"""The VAD's settings: its classifier engine and the segmenter's timings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from voxmesh.settings.base import ServiceSettings


class VadSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_VAD_", extra="ignore", frozen=True)

    port: int = Field(DEFAULT_PORTS["vad"], ge=0, le=65535, description="gRPC port.")
    metrics_port: int = Field(
        DEFAULT_METRICS_PORTS["vad"],
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics HTTP endpoint (0: none).",
    )
    engine: Literal["webrtcvad", "silero"] = Field(
        "webrtcvad",
        description=(
            "Speech classifier: webrtcvad (WebRTC's, on the event loop) or silero (Silero VAD v6, the ONNX model "
            "inside faster-whisper; 32 ms frames, on worker threads; steadier in heavy noise, see bench/README.md)."
        ),
    )
    silero_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="silero: speech probability over which a frame is speech (once in speech: down to 0.15 below).",
    )
    classifier_threads: int = Field(2, ge=1, description="silero: worker threads that run the model.")
    aggressiveness: int = Field(
        2, ge=0, le=3, description="webrtcvad: aggressiveness, 0 keeps the most audio as speech, 3 the least."
    )
    frame_ms: Literal[10, 20, 30] = Field(30, description="webrtcvad: length of the frames it classifies.")
    speech_start_ms: int = Field(
        150, ge=10, description="Window of recent frames looked at for a start; speech starts when 80% of it is voiced."
    )
    speech_end_ms: int = Field(
        500, ge=10, description="Window of recent frames looked at for an end; speech ends when 90% of it is unvoiced."
    )
    pre_roll_ms: int = Field(
        300, ge=0, description="Audio kept before the start window and sent with the utterance, so no onset is clipped."
    )
    max_utterance_s: float = Field(
        30.0,
        gt=1,
        description=(
            "Longest utterance; longer speech is split (at an unvoiced frame in its last 20% when there is one)."
        ),
    )
    min_utterance_s: float = Field(
        0.0,
        ge=0,
        description=(
            "An utterance shorter than this ends only at a pause of merge_pause_ms, so that short pieces are "
            "recognised with the speech after them (0: every pause of speech_end_ms ends an utterance)."
        ),
    )
    min_end_silence_ms: int = Field(
        100, ge=10, description="The shortest end silence (speech_end_ms) a stream may ask for in its endpointing."
    )
    max_end_silence_ms: int = Field(
        5000, ge=10, description="The longest end silence (speech_end_ms) a stream may ask for in its endpointing."
    )
    merge_pause_ms: int = Field(1000, ge=10, description="Pause that ends an utterance shorter than min_utterance_s.")
    noise_gate_db: float = Field(
        0.0,
        ge=0,
        le=30,
        description=(
            "A frame the classifier calls speech is not speech unless its energy is this many dB over the stream's "
            "noise floor (the lowest frame energy of the last 3 s), so steady noise is not taken for speech. "
            "0: no gate."
        ),
    )
    end_stretch: float = Field(
        0.0,
        ge=0,
        le=3,
        description=(
            "While a stream's speech stands less than 20 dB over its noise floor, the end window (speech_end_ms) "
            "grows, up to 1 + this times it at 5 dB or less, so that noisy speech is not cut at the pauses inside "
            "a phrase. 0: a fixed end window."
        ),
    )
    audio_every_ms: int = Field(
        300,
        ge=0,
        description=(
            "While speech goes on, an utterance's audio is sent on once this much has gathered (what is left goes "
            "with its end): fewer messages per second of speech through the gateway and the ASR, at no cost to the "
            "final; partials see the audio in steps of this much. 0: with every chunk."
        ),
    )
