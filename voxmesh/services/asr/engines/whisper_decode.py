"""One faster-whisper decode for the whisper engine, at given temperatures, with Whisper's own tests and the
engine's test for a short piece of noise."""

from __future__ import annotations

import logging
import math

import numpy as np

from voxmesh import SAMPLE_RATE
from voxmesh.services.asr.engines import AsrResult
from voxmesh.services.asr.engines.whisper_answers import MAX_COMPRESSION_RATIO

log = logging.getLogger("voxmesh.asr.whisper")

LOW_LOGPROB = -1.0  # Whisper's own bound: an answer less likely than this per token is decoded again
# Whisper takes a window for silence when its no-speech probability is over 0.6 and its answer's mean token
# log-probability under -1. A short piece of noise the VAD took for speech (a second of babble after the
# speech) came back as "Thank you very much." or "I'll see you next time." at no-speech 0.43-0.65 and mean
# token probability 0.34-0.48, not silence by that test; short words really said scored either under 0.40 or,
# heard faintly, a mean token probability of 0.61 or more (docs/asr.md; bench/README.md, "fidelity.py: a
# short piece of noise answered with a stock phrase").
NOISE_UNDER_S = 2.0
NOISE_NO_SPEECH = 0.4
NOISE_LOGPROB = math.log(0.5)


def decoded_once(
    model,
    audio: np.ndarray,
    language: str | None,
    beam_size: int,
    prompt: list[int] | None,
    temperatures: tuple[float, ...],
) -> tuple[AsrResult, float | None]:
    """One faster-whisper decode at these temperatures, and its mean token log-probability (None when it
    took the audio for silence, as Whisper's own test does and, for a piece under NOISE_UNDER_S, the
    looser `_noise`). Whisper's compression-ratio test applies only where it samples."""
    segments, info = model.transcribe(
        audio,
        language=language,
        beam_size=beam_size,
        without_timestamps=True,
        vad_filter=False,
        condition_on_previous_text=False,
        initial_prompt=prompt,
        temperature=list(temperatures),
        compression_ratio_threshold=MAX_COMPRESSION_RATIO if temperatures[0] > 0 else None,
    )
    segments = list(segments)
    tokens = sum(len(segment.tokens) for segment in segments)
    logprob = sum(segment.avg_logprob * len(segment.tokens) for segment in segments) / max(1, tokens)
    if segments and _noise(len(audio) / SAMPLE_RATE, max(s.no_speech_prob for s in segments), logprob):
        log.debug("a short piece taken for noise", extra={"text": "".join(s.text for s in segments)})
        segments, tokens = [], 0
    result = AsrResult(
        text="".join(segment.text for segment in segments).strip(),
        language=info.language,
        confidence=math.exp(logprob) if tokens else None,
    )
    return result, (logprob if segments else None)


def _noise(seconds: float, no_speech: float, logprob: float) -> bool:
    """Whether a decode of a short piece is Whisper's answer to noise: a likely no-speech window, answered with
    little confidence."""
    return seconds < NOISE_UNDER_S and no_speech > NOISE_NO_SPEECH and logprob < NOISE_LOGPROB
