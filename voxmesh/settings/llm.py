"""The LLM post-processor's settings: its engine and model, batching and the guard."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from voxmesh.settings.base import ServiceSettings


class LlmSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_LLM_", extra="ignore", frozen=True)

    port: int = Field(DEFAULT_PORTS["llm"], ge=0, le=65535, description="gRPC port.")
    metrics_port: int = Field(
        DEFAULT_METRICS_PORTS["llm"],
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics HTTP endpoint (0: none).",
    )
    engine: Literal["rules", "transformers"] = Field(
        "rules",
        description=(
            "Post-processing engine: rules (deterministic rule-based clean-up, the embedded default), transformers (an"
            " instruction LLM through transformers, batched across streams)."
        ),
    )
    model: str = Field(
        "",
        description=(
            "transformers: model directory or hub id of a causal LM with a chat template; empty: "
            "mistralai/Ministral-8B-Instruct-2410."
        ),
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "auto", description="transformers: where the model runs; auto: CUDA (bf16) when available, else the CPU (fp32)."
    )
    context_utterances: int = Field(
        3, ge=0, description="Previous transcripts of the same stream given to the engine as context."
    )
    max_pending: int = Field(
        16, ge=1, description="Transcripts a stream may have waiting; one more is answered RESOURCE_EXHAUSTED."
    )
    max_instruction_chars: int = Field(2000, ge=0, description="Longest instruction a stream may send.")
    max_transcript_chars: int = Field(20000, ge=1, description="Longest transcript accepted.")
    max_batch_size: int = Field(
        16, ge=1, description="transformers: most transcripts, from all streams, generated together in one step."
    )
    queue_size: int = Field(
        64,
        ge=1,
        description=(
            "transformers: transcripts waiting for a place in the batch, over all streams; one more is answered "
            "RESOURCE_EXHAUSTED."
        ),
    )
    max_new_tokens_factor: float = Field(
        2.0,
        ge=0,
        description=(
            "transformers: most tokens generated per transcript, as a multiple of the transcript's own tokens (plus "
            "max_new_tokens_extra)."
        ),
    )
    max_new_tokens_extra: int = Field(
        16,
        ge=1,
        description="transformers: tokens allowed on top of max_new_tokens_factor times the transcript's tokens.",
    )
    temperature: float = Field(0.0, ge=0, description="transformers: sampling temperature; 0: greedy decoding.")
    top_p: float = Field(
        1.0, gt=0, le=1, description="transformers: nucleus sampling when temperature > 0 (1: the whole distribution)."
    )
    guard_threshold: float = Field(
        0.3,
        ge=0,
        description=(
            "Default clean-up only: an output whose words differ from the transcript's by more than this share (word "
            "edit distance over the transcript's words, after normalisation) is replaced by the rule-based clean-up, "
            "outcome GUARDED."
        ),
    )
    request_timeout_s: float = Field(
        20.0,
        gt=0,
        description=(
            "transformers: seconds a transcript may take from queueing to its last token; a slower one is stopped and "
            "answered DEADLINE_EXCEEDED (its final transcript stands)."
        ),
    )
