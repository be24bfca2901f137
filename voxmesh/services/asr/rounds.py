"""The scheduler of streaming engines: rounds of one batched forward over every utterance that has its
next 80 ms window, whatever its start time.

An utterance starts once it has the engine's first chunk of audio (or has ended): utterances ready to start
in the same round share one prefill. From then on each round is one forward of every started utterance
whose next window has arrived, at whatever position each is (the engine stacks their caches, see
`engines/ragged.py`); one whose audio has not arrived sits the round out and loses nothing. Rounds follow
each other as long as any utterance has a window, so an ended utterance's flush steps (the delay's worth
of right padding, all of it here) run back to back, one per round, and a loaded engine batches more per
round instead of falling behind one stream at a time. No state is copied when an utterance joins, lags or
leaves: each owns its caches. A failing prefill or forward fails only the utterances in it. Text is
detokenized incrementally: each step decodes only the tokens since the last whole character.
All model work runs on one worker thread; the event loop only moves audio and text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxmesh import SAMPLE_RATE, errors
from voxmesh.audio import pcm_to_float
from voxmesh.engine_thread import EngineThread
from voxmesh.load import Window
from voxmesh.services.asr import metrics
from voxmesh.services.asr.engines import Word

log = logging.getLogger("voxmesh.asr.rounds")


@dataclass(eq=False)
class LiveUtterance:
    """One utterance on a streaming engine: audio in, tokens out."""

    pcm: bytearray = field(default_factory=bytearray)
    finished: bool = False
    cancelled: bool = False
    state: Any = None  # the engine's state of this utterance, once started
    tokens: list[int] = field(default_factory=list)
    said: str = ""  # the text of tokens[:read_offset], as decoded piece by piece
    said_steps: list[int] = field(default_factory=list)  # for each character of `said`, the token that completed it
    prefix_offset: int = 0  # tokens decoded again with the new ones, for the tokenizer's context
    read_offset: int = 0  # tokens whose text is in `said`
    steps_done: int = 0  # windows consumed after the first chunk
    compute_after_end_s: float = 0.0  # engine time spent on it after its end: what its final waits for
    text: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[str] = field(kw_only=True)  # the final text, or the error; made on the event loop

    def samples(self, start: int, length: int) -> np.ndarray:
        """`length` float samples from `start`, zero beyond the audio received (the right padding)."""
        piece = pcm_to_float(self.pcm[2 * start : 2 * (start + length)])
        if len(piece) < length:
            piece = np.concatenate([piece, np.zeros(length - len(piece), np.float32)])
        return piece


class RoundScheduler:
    def __init__(self, engine, *, max_streams: int, batch_wait_s: float):
        self.engine = engine
        self.max_streams = max_streams
        self.batch_wait_s = batch_wait_s
        self._waiting: list[LiveUtterance] = []  # not started: no prefill yet
        self._started: list[LiveUtterance] = []
        self.live_busy = Window()  # 1 while the model steps (every utterance here is live)
        self.round_load = 0.0  # the latest stepping round's time over one step of audio (80 ms): above 1, behind
        self._thread = EngineThread("asr-engine")

    @property
    def step_samples(self) -> int:
        """Samples of audio per token step."""
        return self.engine.capabilities.step_samples

    @property
    def active(self) -> int:
        return len(self._waiting) + len(self._started)

    def start(self) -> None:
        self._thread.start(self._run)

    def open(self) -> LiveUtterance:
        if self._thread.stopping:
            raise errors.Unavailable("the ASR service is stopping; its engine takes no more utterances")
        if self.active >= self.max_streams:
            metrics.REQUESTS.labels("stream", "rejected").inc()
            raise errors.ResourceExhausted(
                f"the streaming ASR engine is serving its limit of {self.max_streams} utterances "
                "(VOXMESH_ASR_QUEUE_SIZE); retry later or add ASR replicas"
            )
        utterance = LiveUtterance(done=asyncio.get_running_loop().create_future())
        self._waiting.append(utterance)
        metrics.QUEUE_DEPTH.set(self.active)
        return utterance

    def feed(self, utterance: LiveUtterance, pcm: bytes) -> None:
        utterance.pcm += pcm
        self._thread.wake()

    def finish(self, utterance: LiveUtterance) -> None:
        utterance.finished = True
        self._thread.wake()

    def cancel(self, utterance: LiveUtterance) -> None:
        utterance.cancelled = True
        self._thread.wake()

    async def close(self) -> None:
        await self._thread.stop()
        for utterance in [*self._waiting, *self._started]:
            if not utterance.done.done():
                utterance.done.set_exception(errors.Unavailable("the ASR service is stopping"))

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._thread.stopping:
            try:
                progressed = await self._round()
            except Exception as exc:
                log.error("streaming step failed", exc_info=exc)
                self._fail_all(exc)
                progressed = False
            metrics.QUEUE_DEPTH.set(self.active)
            if not progressed:
                await self._thread.idle()

    def utilization(self) -> float:
        """What the gateway admits live streams by: the engine's busy share, or, when a round of steps takes
        longer than the audio it advances, more than 1, so that new streams are refused before every stream
        falls behind."""
        return max(self.live_busy.average(), self.round_load)

    async def _round(self) -> bool:
        """Start what can start, then one forward of every utterance with a window; whether anything moved."""
        began = time.perf_counter()
        self._waiting = [u for u in self._waiting if not u.cancelled]
        self._started = [u for u in self._started if not u.cancelled]
        started = await self._start_ready()
        stepped = await self._step_ready()
        if stepped:
            self.round_load = (time.perf_counter() - began) / (self.step_samples / SAMPLE_RATE)
        elif not self.active:
            self.round_load = 0.0
        return started or stepped

    def _windows_left(self, utterance: LiveUtterance) -> int:
        return self.engine.windows_available(len(utterance.pcm) // 2, utterance.finished) - utterance.steps_done

    async def _start_ready(self) -> bool:
        ready = [u for u in self._waiting if u.finished or len(u.pcm) // 2 >= self.engine.first_samples]
        if not ready:
            return False
        if self.batch_wait_s and len(ready) < len(self._waiting):
            await asyncio.sleep(self.batch_wait_s)  # let utterances starting in the same instant join
            ready = [u for u in self._waiting if u.finished or len(u.pcm) // 2 >= self.engine.first_samples]
        for group in self._batches(ready):
            chunks = [u.samples(0, self.engine.first_samples) for u in group]
            try:
                (states, tokens), _ = await self._call(group, self.engine.start, chunks)
            except Exception as exc:  # this prefill failed: its utterances fail, the others go on
                log.error("streaming prefill failed", extra={"rows": len(group), "error": repr(exc)})
                self._fail(group, exc)
                self._waiting = [u for u in self._waiting if u not in group]
                continue
            for utterance in group:  # counted as waiting until here, so `open` sees them all along
                self._waiting.remove(utterance)
            for utterance, state, token in zip(group, states, tokens, strict=True):
                utterance.state = state
                self._take(utterance, token)
                self._started.append(utterance)
        return True

    async def _step_ready(self) -> bool:
        """Complete the utterances that are done; one forward of all that have a window (in batches of at most
        the engine's batch size)."""
        for utterance in [u for u in self._started if u.finished and self._windows_left(u) <= 0]:
            self._started.remove(utterance)
            self._complete(utterance)
        ready = [u for u in self._started if self._windows_left(u) > 0]
        for group in self._batches(ready):
            size = self.engine.window_samples
            windows = [u.samples(self.engine.window_start(u.steps_done), size) for u in group]
            try:
                tokens, elapsed = await self._call(group, self.engine.step, [u.state for u in group], windows)
            except Exception as exc:  # this forward failed: its utterances fail, the others go on
                log.error("streaming step failed", extra={"rows": len(group), "error": repr(exc)})
                self._fail(group, exc)
                self._started = [u for u in self._started if u not in group]
                continue
            for utterance, token in zip(group, tokens, strict=True):
                utterance.steps_done += 1
                if utterance.finished:
                    utterance.compute_after_end_s += elapsed
                self._take(utterance, token)
        return bool(ready)

    def _batches(self, utterances: list[LiveUtterance]) -> list[list[LiveUtterance]]:
        size = self.engine.capabilities.max_batch_size
        return [utterances[i : i + size] for i in range(0, len(utterances), size)]

    # -- helpers ----------------------------------------------------------------------------------

    async def _call(self, members: list[LiveUtterance], fn, *args):
        started = time.perf_counter()
        self.live_busy.set(1)
        try:
            result = await self._thread.call(fn, *args)
        finally:
            self.live_busy.set(0)
        elapsed = time.perf_counter() - started
        metrics.BATCH_SIZE.observe(len(members))
        metrics.COMPUTE.labels("step").observe(elapsed)
        return result, elapsed

    def _take(self, utterance: LiveUtterance, token: int) -> None:
        """One more token; the text grows by what it completes. Only the tokens since the last whole character
        (and a few before them, for the tokenizer's context) are decoded, not the whole list every step."""
        u = utterance
        u.tokens.append(token)
        before = self.engine.decode_piece(u.tokens[u.prefix_offset : u.read_offset])
        now = self.engine.decode_piece(u.tokens[u.prefix_offset :])
        # a character whose UTF-8 bytes span tokens decodes as U+FFFD until its last byte arrives
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return
        piece = now[len(before) :]
        u.said += piece
        u.said_steps += [len(u.tokens) - 1] * len(piece)
        u.prefix_offset, u.read_offset = u.read_offset, len(u.tokens)
        text = u.said.strip()
        if text != u.text:
            u.text = text
            u.changed.set()

    def words(self, utterance: LiveUtterance, audio_s: float) -> tuple[Word, ...]:
        """An utterance's words, each timed by the steps whose tokens completed its first and last characters,
        less the transcription delay: to a step (80 ms), within the utterance's audio."""
        step_s, delay = self.step_samples / SAMPLE_RATE, self.engine.delay_tokens
        words = []
        for match in re.finditer(r"\S+", utterance.said):
            first, last = utterance.said_steps[match.start()], utterance.said_steps[match.end() - 1]
            start = min(audio_s, max(0.0, (first - delay) * step_s))
            end = min(audio_s, max(start, (last - delay + 1) * step_s))
            words.append(Word(match.group(), round(start, 3), round(end, 3)))
        return tuple(words)

    def _complete(self, utterance: LiveUtterance) -> None:
        metrics.REQUESTS.labels("final", "done").inc()
        if not utterance.done.done():
            utterance.done.set_result(self.engine.decode(utterance.tokens))

    @staticmethod
    def _fail(utterances: list[LiveUtterance], exc: BaseException) -> None:
        failure = errors.EngineError(f"the streaming ASR engine failed on this utterance: {exc}")
        for utterance in utterances:
            metrics.REQUESTS.labels("final", "failed").inc()
            if not utterance.done.done():
                utterance.done.set_exception(failure)

    def _fail_all(self, exc: BaseException) -> None:
        """The loop itself broke (not a model call): every utterance here fails."""
        self._fail([*self._waiting, *self._started], exc)
        self._waiting.clear()
        self._started.clear()
