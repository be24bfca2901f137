"""Metrics of the ASR service. Imports nothing of the app."""

from prometheus_client import Counter, Gauge, Histogram

from voxmesh.metrics import BATCH_BUCKETS, HOP_BUCKETS, LATENCY_BUCKETS

QUEUE_DEPTH = Gauge("voxmesh_asr_queue_depth", "Requests waiting for the engine.")
BATCH_SIZE = Histogram("voxmesh_asr_batch_size", "Requests per engine call.", buckets=BATCH_BUCKETS)
QUEUE_WAIT = Histogram(
    "voxmesh_asr_queue_wait_seconds",
    "Time a request waited before the engine took it, by kind.",
    ["kind"],
    buckets=HOP_BUCKETS,
)
BUSY_WAIT = Histogram(
    "voxmesh_asr_busy_wait_seconds",
    "The part of a request's queue wait the engine spent computing other requests (its contention), by kind.",
    ["kind"],
    buckets=HOP_BUCKETS,
)
COMPUTE = Histogram(
    "voxmesh_asr_compute_seconds",
    "Engine time of one batch, by kind of its first request.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter("voxmesh_asr_requests_total", "Requests to the engine, by kind and outcome.", ["kind", "outcome"])
HURRIED = Counter(
    "voxmesh_asr_hurried_total",
    "Live finals decoded the cheaper way because the engine was busier than hurry_above.",
)
AUDIO_SECONDS = Counter("voxmesh_asr_audio_seconds_total", "Seconds of utterance audio received.")
