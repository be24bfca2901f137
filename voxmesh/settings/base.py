"""What every service's settings have: where it listens, how it logs, how it stops."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    otlp_endpoint: str = Field(
        "",
        description=(
            "OpenTelemetry collector that receives this service's traces over OTLP/gRPC, e.g. "
            "http://otel-collector:4317 (empty: traces stay off)."
        ),
    )
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


class KeyedServiceSettings(ServiceSettings):
    """A service whose callers may need API keys (voxmesh/auth.py): the gateway and the web service."""

    api_keys_file: str = Field(
        "",
        description=(
            "File of API keys, one per line: KEY [STREAMS] [CALLS] (voxmesh/auth.py); read again when it changes. "
            "With no keys (the default), calls need none."
        ),
    )
    api_keys: str = Field(
        "", description="API keys as in api_keys_file, entries separated by ';' (beside the file's, if any)."
    )
