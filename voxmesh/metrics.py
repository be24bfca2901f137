"""Metrics every service shares, and bucket layouts that fit what voxmesh measures.

Imports nothing of the app, so that any module may import it. Names follow Prometheus practice: one
prefix (`voxmesh_`), base units (`_seconds`, `_bytes`), `_total` for counters, and only bounded labels.
"""

from prometheus_client import Counter, Gauge

# One network hop or a small piece of work, up to a hop that queues behind a busy engine: 0.5 ms to 10 s.
HOP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
# A model call or a latency users feel: 10 ms to 10 s.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Batch sizes.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

RPC_STREAMS = Counter(
    "voxmesh_rpc_calls_total", "RPCs a service has accepted, by service and method.", ["service", "method"]
)
RPC_ACTIVE = Gauge("voxmesh_rpc_active_calls", "RPCs in progress, by service.", ["service"])
RPC_ERRORS = Counter(
    "voxmesh_rpc_errors_total",
    "RPCs that ended with an error status, by service and status code.",
    ["service", "code"],
)
UTTERANCE_ERRORS = Counter(
    "voxmesh_utterance_errors_total",
    "Utterances reported as failed inside a stream that went on, by service and status code.",
    ["service", "code"],
)
