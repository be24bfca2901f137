"""Word timings for the whisper engine: the words of text already decoded, timed in their utterance's audio by
Whisper's cross-attention (faster-whisper's `find_alignment`, dynamic time warping)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from voxmesh.services.asr.engines import AsrResult, Word, in_groups


def timed_words(model, audios: list[np.ndarray], results: list[AsrResult]) -> list[tuple[Word, ...]]:
    """Each result's words, timed in its utterance's audio, in one batched call per language. The text stays
    what the decode gave; the cost is an encoder pass and one forward over it. `model` is faster-whisper's
    WhisperModel."""
    return in_groups(
        list(zip(audios, results, strict=True)), lambda ar: ar[1].language, lambda items: _aligned(model, items)
    )


def _aligned(model, items: list[tuple[np.ndarray, AsrResult]]) -> list[tuple[Word, ...]]:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    language = items[0][1].language
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, "transcribe", language)
    features = [model.feature_extractor(audio) for audio, _ in items]
    encoded = model.encode(np.stack([pad_or_trim(f) for f in features]))
    tokens = [tokenizer.encode(" " + result.text) for _, result in items]
    aligned = model.find_alignment(tokenizer, tokens, encoded, [f.shape[-1] for f in features])
    return [_joined_punctuation(words) for words in aligned]


def _joined_punctuation(aligned: list[dict]) -> tuple[Word, ...]:
    """Aligned words as Words, a token of punctuation alone (a closing period) joined to the word before."""
    words: list[Word] = []
    for w in aligned:
        said = w["word"].strip()
        if not said:
            continue
        start, end, probability = round(float(w["start"]), 3), round(float(w["end"]), 3), float(w["probability"])
        if words and not any(c.isalnum() for c in said):
            words[-1] = replace(words[-1], text=words[-1].text + said, end_s=end)
        else:
            words.append(Word(said, start, end, probability))
    return tuple(words)
