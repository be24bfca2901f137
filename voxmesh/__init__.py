"""voxmesh: a gRPC mesh that turns live audio into text (VAD -> ASR -> LLM behind one gateway)."""

__version__ = "0.1.0"

# The internal audio format: every inner service speaks 16 kHz mono 16-bit PCM and nothing else.
SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2

# Where each service listens by default: gRPC, and the Prometheus /metrics endpoint.
DEFAULT_PORTS = {"gateway": 50051, "vad": 50052, "asr": 50053, "llm": 50054, "web": 50055}
DEFAULT_METRICS_PORTS = {"gateway": 9100, "vad": 9101, "asr": 9102, "llm": 9103, "web": 9104}
