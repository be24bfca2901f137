"""Metrics of the VAD service. Imports nothing of the app."""

from prometheus_client import Counter, Histogram

from voxmesh.metrics import HOP_BUCKETS

AUDIO_SECONDS = Counter("voxmesh_vad_audio_seconds_total", "Seconds of audio the detector has classified.")
UTTERANCES = Counter("voxmesh_vad_utterances_total", "Utterances found, by how they ended.", ["reason"])
ANSWERS = Counter(
    "voxmesh_vad_answers_total",
    "Answers sent to callers, by kind (start, audio, end, progress, going_away); with the chunk count, how many "
    "messages the detector exchanges per second of audio.",
    ["kind"],
)
CHUNK_SECONDS = Histogram(
    "voxmesh_vad_chunk_processing_seconds", "Time to classify one incoming audio chunk.", buckets=HOP_BUCKETS
)
