"""The gateway's settings: its downstream services, deadlines, limits and admission."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from voxmesh.settings.base import KeyedServiceSettings


class GatewaySettings(KeyedServiceSettings):
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
