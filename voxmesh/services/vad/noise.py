"""A stream's noise floor, for a segmenter whose thresholds follow it.

A classifier answers per frame with fixed thresholds, and noise moves them: in steady noise webrtcvad calls
noise speech, and the weak ends of words sink under the noise. `NoiseFloor` follows the stream's frame
energies and says two things:
- `floor_db`: the noise's level, the lowest frame energy of the last `window_s` (minimum statistics: speech
  has pauses between syllables, so the lowest frames of a few seconds are noise);
- `snr_db`: how far the stream's speech stands above it: an average over the frames the classifier called
  speech, in dB over the floor.
The segmenter turns them into
- a gate: a frame the classifier calls speech whose energy is less than `gate_db` over the floor is not
  speech (noise that the classifier mistook);
- a longer end window when speech stands low over the noise: `speech_end_ms` at `snr_db` of 20 dB or more,
  growing linearly to `1 + end_stretch` times it at 5 dB or less, since in noise the pauses a classifier
  hears inside a phrase are longer, and an utterance cut there loses the words around the cut.
Energies are in dB of full scale over 16-bit samples; digital silence counts as -90 dB.
"""

from __future__ import annotations

from collections import deque

import numpy as np

SILENCE_DB = -90.0
SPEECH_LEVEL_FRAMES = 50  # the speech level follows about the last 50 voiced frames (1.5 s of 30 ms frames)
CLEAR_SNR_DB, LOW_SNR_DB = 20.0, 5.0


def frame_energies_db(pcm: bytes, frame_samples: int) -> np.ndarray:
    """Energy in dBFS of each whole frame of 16-bit mono PCM."""
    samples = np.frombuffer(pcm, dtype="<i2")
    frames = samples[: len(samples) - len(samples) % frame_samples].reshape(-1, frame_samples)
    power = np.mean(np.square(frames.astype(np.float32) / 32768.0), axis=1)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-12)), SILENCE_DB)


class NoiseFloor:
    def __init__(self, frame_ms: int, window_s: float = 3.0):
        self._window = max(1, round(window_s * 1000 / frame_ms))
        self._minima: deque[tuple[int, float]] = deque()  # (frame index, energy), rising: a sliding minimum
        self._index = 0
        self.floor_db = SILENCE_DB
        self.speech_db: float | None = None

    def observe(self, energy_db: float, voiced: bool) -> None:
        """One frame's energy, and whether the classifier called it speech."""
        while self._minima and self._minima[-1][1] >= energy_db:
            self._minima.pop()
        self._minima.append((self._index, energy_db))
        if self._minima[0][0] <= self._index - self._window:
            self._minima.popleft()
        self._index += 1
        self.floor_db = self._minima[0][1]
        if voiced:
            if self.speech_db is None:
                self.speech_db = energy_db
            else:
                self.speech_db += (energy_db - self.speech_db) / SPEECH_LEVEL_FRAMES

    @property
    def snr_db(self) -> float:
        """The speech level over the floor; high (clear) until speech has been heard."""
        if self.speech_db is None:
            return CLEAR_SNR_DB
        return self.speech_db - self.floor_db

    def stretch(self) -> float:
        """How much of `end_stretch` applies now: 0 at CLEAR_SNR_DB or more, 1 at LOW_SNR_DB or less."""
        return float(np.clip((CLEAR_SNR_DB - self.snr_db) / (CLEAR_SNR_DB - LOW_SNR_DB), 0.0, 1.0))
