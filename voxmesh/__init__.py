"""voxmesh: a gRPC mesh that turns live audio into text (VAD -> ASR -> LLM behind one gateway)."""

__version__ = "0.1.0"

# The internal audio format: every inner service speaks 16 kHz mono 16-bit PCM and nothing else.
SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2
