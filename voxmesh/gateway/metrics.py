"""Metrics of the gateway. Imports nothing of the app.

How each figure is measured (all on the gateway's monotonic clock, in seconds):
- speech_end_to_final: the VAD's speech-end event arrives -> the ASR's final for that utterance arrives.
- final_to_processed: the final arrives -> the post-processor's done message arrives.
- final_to_first_processed_delta: the final arrives -> the first processed delta arrives.
- speech_start_to_first_partial: the VAD's speech-start event arrives -> the first partial arrives.
- hop{hop="vad"}: the gateway sends the audio chunk holding the last sample the VAD had read when it
  answered -> that answer arrives. hop{hop="asr"}: the utterance's end is sent -> its final arrives
  (engine time included). hop{hop="llm"}: a final is sent to the LLM -> its first delta arrives.
- mesh_overhead: speech_end_to_final minus the engine's own compute time for that utterance (queueing,
  transport and framework time: what the mesh adds to the model).
"""

from prometheus_client import Counter, Gauge, Histogram

from voxmesh.metrics import HOP_BUCKETS, LATENCY_BUCKETS

SPEECH_END_TO_FINAL = Histogram(
    "voxmesh_gateway_speech_end_to_final_seconds",
    "Speech end -> final transcript, at the gateway.",
    buckets=LATENCY_BUCKETS,
)
FINAL_TO_PROCESSED = Histogram(
    "voxmesh_gateway_final_to_processed_seconds",
    "Final transcript -> processed text done, at the gateway.",
    buckets=LATENCY_BUCKETS,
)
FINAL_TO_FIRST_DELTA = Histogram(
    "voxmesh_gateway_final_to_first_processed_delta_seconds",
    "Final transcript -> first processed delta, at the gateway.",
    buckets=LATENCY_BUCKETS,
)
SPEECH_START_TO_FIRST_PARTIAL = Histogram(
    "voxmesh_gateway_speech_start_to_first_partial_seconds",
    "Speech start -> first partial, at the gateway.",
    buckets=LATENCY_BUCKETS,
)
HOP = Histogram(
    "voxmesh_gateway_hop_seconds", "Latency each downstream hop adds, by hop.", ["hop"], buckets=HOP_BUCKETS
)
MESH_OVERHEAD = Histogram(
    "voxmesh_gateway_mesh_overhead_seconds",
    "Speech end -> final at the gateway, minus the engine's compute time.",
    buckets=HOP_BUCKETS,
)
STREAMS = Counter("voxmesh_gateway_streams_total", "Client calls ended, by method and status code.", ["method", "code"])
ACTIVE_STREAMS = Gauge("voxmesh_gateway_active_streams", "Client calls in progress.")
AUDIO_SECONDS = Counter("voxmesh_gateway_audio_seconds_total", "Seconds of client audio received.")
UTTERANCES = Counter("voxmesh_gateway_utterances_total", "Utterances ended, by outcome (final or error).", ["outcome"])
HELD_AUDIO = Gauge("voxmesh_gateway_held_audio_bytes", "Utterance audio held until its final transcript arrives.")
FAILOVERS = Counter(
    "voxmesh_gateway_failovers_total",
    "Downstream streams opened in place of one that failed or went away, by stage.",
    ["stage"],
)
