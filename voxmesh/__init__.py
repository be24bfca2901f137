"""voxmesh: a gRPC mesh that turns live audio into text (VAD -> ASR -> LLM behind one gateway)."""

import os

__version__ = "0.1.0"

# gRPC's transport. grpcio 1.85 reads and writes its sockets through EventEngine endpoints, which hand each
# message to another thread and back; its older endpoints read on the thread that polls. With those, a
# bidirectional stream takes half the context switches and about a sixth less CPU per message
# (bench/grpc_floor.py, bench/README.md), and every hop of the mesh is such a stream. grpc reads this
# variable once, when it is imported, so it is set here, before any module of voxmesh imports grpc. A
# GRPC_EXPERIMENTS of your own, even an empty one, is kept as it is.
GRPC_EXPERIMENTS_DEFAULT = "-event_engine_client,-event_engine_listener"
os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS_DEFAULT)

# The internal audio format: every inner service speaks 16 kHz mono 16-bit PCM and nothing else.
SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2

# Where each service listens by default: gRPC, and the Prometheus /metrics endpoint.
DEFAULT_PORTS = {"gateway": 50051, "vad": 50052, "asr": 50053, "llm": 50054, "web": 50055}
DEFAULT_METRICS_PORTS = {"gateway": 9100, "vad": 9101, "asr": 9102, "llm": 9103, "web": 9104}
