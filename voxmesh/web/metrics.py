"""The web service's metrics (beside the runtime's and the client library's own gRPC ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TRANSCRIPTIONS = Counter(
    "voxmesh_web_transcriptions_total", "POST /v1/audio/transcriptions answered, by HTTP status.", ["status"]
)
SESSIONS = Counter(
    "voxmesh_web_realtime_sessions_total", "Realtime WebSocket sessions opened, by dialect.", ["dialect"]
)
OPEN_SESSIONS = Gauge("voxmesh_web_realtime_sessions_open", "Realtime WebSocket sessions open now.")
CLIENT_ERRORS = Counter(
    "voxmesh_web_realtime_errors_total", "Error events sent to realtime clients for bad input, by code.", ["code"]
)
