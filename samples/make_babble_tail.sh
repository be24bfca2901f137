#!/usr/bin/env bash
# Rebuilds samples/babble_tail.flac (synthetic: espeak-ng voices): the last piece bench/fidelity.py's VAD cut
# from its first synthetic clip (seed 1) in babble at 10 dB: 0.9 s of five talkers overlaid, after the
# speaker has stopped, which Whisper tiny.en answers "Thank you very much.". For the test of a short piece
# taken for noise. Needs: apt-get install espeak-ng, and the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python - <<'PY'
import sys

import soundfile as sf

sys.path[:0] = [".", "bench"]
from context_cost import utterances
from fidelity_clips import mixed, synthetic_clips

from voxmesh.audio import pcm_to_float
from voxmesh.services.vad.service import VadServicer
from voxmesh.settings import VadSettings

clip = synthetic_clips(1)[0]
pieces = utterances(VadServicer(VadSettings()).segmenter(), mixed(clip.audio, "babble", 10, 1004))
sf.write("samples/babble_tail.flac", pcm_to_float(pieces[-1]), 16000)
PY
