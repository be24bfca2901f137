"""Metrics of the LLM service. Imports nothing of the app."""

from prometheus_client import Counter, Gauge, Histogram

from voxmesh.metrics import HOP_BUCKETS, LATENCY_BUCKETS

REQUESTS = Counter("voxmesh_llm_requests_total", "Transcripts post-processed, by outcome.", ["outcome"])
PENDING = Gauge("voxmesh_llm_pending", "Transcripts waiting for the engine, over all streams.")
FIRST_DELTA = Histogram(
    "voxmesh_llm_first_delta_seconds", "Time from taking a transcript to its first delta.", buckets=HOP_BUCKETS
)
DURATION = Histogram(
    "voxmesh_llm_request_seconds", "Time from taking a transcript to its done message.", buckets=LATENCY_BUCKETS
)
