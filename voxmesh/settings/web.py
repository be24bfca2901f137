"""The web service's settings: where it serves HTTP and WebSocket, and the gateway it calls."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from voxmesh.settings.base import KeyedServiceSettings


class WebSettings(KeyedServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_WEB_", extra="ignore", frozen=True)

    port: int = Field(
        DEFAULT_PORTS["web"], ge=0, le=65535, description="gRPC port: grpc.health.v1 and reflection only."
    )
    metrics_port: int = Field(
        DEFAULT_METRICS_PORTS["web"],
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics HTTP endpoint (0: none; /metrics on http_port serves too).",
    )
    http_port: int = Field(
        8080, ge=0, le=65535, description="HTTP and WebSocket port: the page, /v1/audio/transcriptions, /v1/realtime."
    )
    gateway_target: str = Field(
        f"127.0.0.1:{DEFAULT_PORTS['gateway']}",
        description="The gateway's gRPC target (several replicas: ipv4:A:P,B:P, or a dns:/// name).",
    )
    gateway_api_key: str = Field(
        "", description="The key the web service sends the gateway when the gateway asks for keys."
    )
    max_upload_bytes: int = Field(
        25 << 20, gt=0, description="Largest file POST /v1/audio/transcriptions takes (OpenAI's limit: 25 MB)."
    )
    request_timeout_s: float = Field(
        600.0, gt=0, description="Longest a POST /v1/audio/transcriptions may take through the mesh."
    )
