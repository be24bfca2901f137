"""Metrics of the LLM service. Imports nothing of the app."""

from prometheus_client import Counter, Gauge, Histogram

from voxmesh.metrics import BATCH_BUCKETS, HOP_BUCKETS, LATENCY_BUCKETS

REQUESTS = Counter(
    "voxmesh_llm_requests_total",
    "Transcripts post-processed, by outcome (processed, guarded: the rule-based clean-up replaced the model's "
    "output, failed).",
    ["outcome"],
)
PENDING = Gauge(
    "voxmesh_llm_pending",
    "Transcripts waiting for the engine, over all streams (in a stream's own queue, or in the batch scheduler's "
    "queue for a place in the batch).",
)
FIRST_DELTA = Histogram(
    "voxmesh_llm_first_delta_seconds", "Time from taking a transcript to its first delta.", buckets=HOP_BUCKETS
)
DURATION = Histogram(
    "voxmesh_llm_request_seconds", "Time from taking a transcript to its done message.", buckets=LATENCY_BUCKETS
)

# The transformers engine's batch scheduler.
BATCH_ROWS = Gauge("voxmesh_llm_batch_rows", "Transcripts being generated right now (rows of the running batch).")
BATCH_SIZE = Histogram(
    "voxmesh_llm_batch_size",
    "Rows in one model call: prefill (new transcripts joining) or decode (one token for every running row).",
    ["phase"],
    buckets=BATCH_BUCKETS,
)
STEP = Histogram(
    "voxmesh_llm_step_seconds",
    "Duration of one model call, by phase.",
    ["phase"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
QUEUE_WAIT = Histogram(
    "voxmesh_llm_queue_wait_seconds", "Time a transcript waited for a place in the batch.", buckets=LATENCY_BUCKETS
)
TOKENS = Counter("voxmesh_llm_generated_tokens_total", "Tokens generated, over all transcripts.")
GENERATIONS = Counter(
    "voxmesh_llm_generations_total",
    "Generations ended, by how: eos (the model ended it), length (the token budget), cancelled (the stream went "
    "away), timeout, failed, rejected (the queue was full).",
    ["end"],
)

# The faithfulness guard of the default clean-up.
GUARD_DIVERGENCE = Histogram(
    "voxmesh_llm_guard_divergence",
    "Word edit distance of the model's clean-up from the transcript, over the transcript's words (after "
    "normalisation); above the guard threshold the output is replaced.",
    buckets=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0),
)
