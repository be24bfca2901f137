"""The VAD's classifiers: each answers, frame by frame, whether a stream's audio is speech. The segmenter
(segmenter.py) owns the state machine; a classifier only classifies, and keeps what it has learnt of one
stream (its adaptation, its recurrent state) for as long as the stream lasts.

- `webrtcvad`: WebRTC's GMM classifier on 10, 20 or 30 ms frames; microseconds a frame, so it runs on the
  event loop.
- `silero`: Silero VAD v6, the ONNX model that ships inside faster-whisper (no download), on 32 ms frames
  (512 samples, with the 64 samples before each as context). Its LSTM state is carried from frame to frame
  of a stream; a stream's frames that arrive together go through the model in one call. About 0.1 ms a
  frame, so the service runs it on worker threads (onnxruntime releases the GIL), off the event loop.
  Speech is a probability over `threshold`; once in speech, a frame stays voiced down to `threshold - 0.15`
  (the hysteresis Silero's own segmentation uses).
"""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, registry
from voxmesh.settings import VadSettings


class Classifier(Protocol):
    """One stream's classifier."""

    def classify(self, pcm: bytes) -> list[bool]:
        """Whether each frame of `pcm` (a whole number of frames of 16 kHz 16-bit mono) is speech."""


class ClassifierEngine(Protocol):
    name: str
    # Frame length the engine classifies, and whether classifying may block the event loop noticeably (the
    # service then runs it on its worker threads).
    frame_ms: int
    blocking: bool

    def stream(self) -> Classifier:
        """A classifier for a new stream: no state shared with any other stream."""


class WebrtcClassifier:
    def __init__(self, aggressiveness: int, frame_ms: int):
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame_bytes = SAMPLE_RATE * frame_ms // 1000 * SAMPLE_WIDTH

    def classify(self, pcm: bytes) -> list[bool]:
        step = self._frame_bytes
        return [self._vad.is_speech(pcm[i : i + step], SAMPLE_RATE) for i in range(0, len(pcm), step)]


class WebrtcEngine:
    name = "webrtcvad"
    blocking = False

    def __init__(self, settings: VadSettings):
        self.frame_ms = settings.frame_ms
        self.aggressiveness = settings.aggressiveness

    def stream(self) -> WebrtcClassifier:
        return WebrtcClassifier(self.aggressiveness, self.frame_ms)


SILERO_WINDOW = 512
SILERO_CONTEXT = 64
SILERO_HYSTERESIS = 0.15


@functools.cache
def _silero_session():
    """One ONNX session for every stream (it holds only weights; each stream keeps its own state)."""
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    path = f"{get_assets_path()}/silero_vad_v6.onnx"
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=options)


class SileroClassifier:
    def __init__(self, session, threshold: float):
        self._session = session
        self.threshold = threshold
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(SILERO_CONTEXT, dtype=np.float32)
        self._voiced = False

    def probabilities(self, pcm: bytes) -> np.ndarray:
        """Speech probability of each 512-sample frame; the stream's state moves on past them."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        windows = samples.reshape(-1, SILERO_WINDOW)
        if not len(windows):
            return np.zeros(0, dtype=np.float32)
        contexts = np.concatenate([self._context[None], windows[:-1, -SILERO_CONTEXT:]])
        batch = np.concatenate([contexts, windows], axis=1)
        probabilities, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = windows[-1, -SILERO_CONTEXT:].copy()
        return np.asarray(probabilities, dtype=np.float32).reshape(-1)

    def classify(self, pcm: bytes) -> list[bool]:
        voiced = []
        for probability in self.probabilities(pcm):
            floor = self.threshold - SILERO_HYSTERESIS if self._voiced else self.threshold
            self._voiced = bool(probability >= floor)
            voiced.append(self._voiced)
        return voiced


class SileroEngine:
    name = "silero"
    frame_ms = SILERO_WINDOW * 1000 // SAMPLE_RATE  # 32
    blocking = True

    def __init__(self, settings: VadSettings):
        self.threshold = settings.silero_threshold
        self._session = _silero_session()

    def stream(self) -> SileroClassifier:
        return SileroClassifier(self._session, self.threshold)


ENGINES = {
    "webrtcvad": "voxmesh.services.vad.classifiers:WebrtcEngine",
    "silero": "voxmesh.services.vad.classifiers:SileroEngine",
}


def load_engine(settings: VadSettings) -> ClassifierEngine:
    return registry.load(ENGINES, settings.engine)(settings)
