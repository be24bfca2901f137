"""The scheduler of streaming engines: every active utterance advances one 80 ms token step per batched
forward, in cohorts.

An utterance starts once it has the engine's first chunk of audio (or has ended). Utterances that become
ready to start in the same round start together, as one cohort: one batched prefill, then one batched
step per 80 ms for as long as all its members have their next window. A member whose audio falls a whole
step behind the others is split off into a cohort of its own (its rows of the caches, gathered on the engine
thread); a member whose utterance has ended is split off as soon as the others would hold it back, and its
flush steps (the delay's worth of right padding) run back to back; a member whose utterance is done leaves
its cohort. A failing prefill or step fails only the utterances in it. Text is detokenized incrementally:
each step decodes only the tokens since the last whole character. Utterances that start at different
times cannot share a forward (their caches have different lengths), so the batch a step gets is the
number of utterances that started in the same round and kept pace: the figure the
`voxmesh_asr_batch_size` histogram shows.
All model work runs on one worker thread; the event loop only moves audio and text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from voxmesh import SAMPLE_RATE, errors
from voxmesh.audio import pcm_to_float
from voxmesh.engine_thread import EngineThread
from voxmesh.load import Window
from voxmesh.services.asr import metrics

log = logging.getLogger("voxmesh.asr.lockstep")


@dataclass(eq=False)
class LiveUtterance:
    """One utterance on a streaming engine: audio in, tokens out."""

    pcm: bytearray = field(default_factory=bytearray)
    finished: bool = False
    cancelled: bool = False
    tokens: list[int] = field(default_factory=list)
    said: str = ""  # the text of tokens[:read_offset], as decoded piece by piece
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


@dataclass(eq=False)
class _Cohort:
    state: object
    members: list[LiveUtterance]


class LockstepScheduler:
    def __init__(self, engine, *, max_streams: int, batch_wait_s: float):
        self.engine = engine
        self.max_streams = max_streams
        self.batch_wait_s = batch_wait_s
        self._waiting: list[LiveUtterance] = []
        self._cohorts: list[_Cohort] = []
        self.live_busy = Window()  # 1 while the model steps (every utterance here is live)
        self.round_load = 0.0  # the latest stepping round's time over one step of audio (80 ms): above 1, behind
        self._thread = EngineThread("asr-engine")

    @property
    def step_samples(self) -> int:
        """Samples of audio per token step."""
        return self.engine.capabilities.step_samples

    @property
    def active(self) -> int:
        return len(self._waiting) + sum(len(c.members) for c in self._cohorts)

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
        for utterance in [*self._waiting, *(m for c in self._cohorts for m in c.members)]:
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
        """Start what can start, step every cohort that can step; whether anything moved."""
        began = time.perf_counter()
        stepped = await self._steps()
        if stepped:
            self.round_load = (time.perf_counter() - began) / (self.step_samples / SAMPLE_RATE)
        elif not self.active:
            self.round_load = 0.0
        return stepped

    async def _steps(self) -> bool:
        await self._drop_cancelled()
        progressed = await self._start_ready()
        for cohort in list(self._cohorts):
            try:
                progressed |= await self._advance(cohort)
            except Exception as exc:  # this cohort's step failed: its utterances fail, the others go on
                log.error("streaming step failed", extra={"rows": len(cohort.members), "error": repr(exc)})
                self._fail(cohort.members, exc)
                if cohort in self._cohorts:
                    self._cohorts.remove(cohort)
                progressed = True
        return progressed

    async def _drop_cancelled(self) -> None:
        self._waiting = [u for u in self._waiting if not u.cancelled]
        for cohort in list(self._cohorts):
            keep = [i for i, m in enumerate(cohort.members) if not m.cancelled]
            if len(keep) < len(cohort.members):
                await self._regroup(cohort, [keep])

    async def _start_ready(self) -> bool:
        ready = [u for u in self._waiting if u.finished or len(u.pcm) // 2 >= self.engine.first_samples]
        if not ready:
            return False
        if self.batch_wait_s and len(ready) < len(self._waiting):
            await asyncio.sleep(self.batch_wait_s)  # let utterances starting in the same instant join
            ready = [u for u in self._waiting if u.finished or len(u.pcm) // 2 >= self.engine.first_samples]
        for offset in range(0, len(ready), self.engine.capabilities.max_batch_size):
            group = ready[offset : offset + self.engine.capabilities.max_batch_size]
            chunks = [u.samples(0, self.engine.first_samples) for u in group]
            try:
                (state, tokens), _ = await self._call(group, self.engine.start, chunks)
            except Exception as exc:  # this prefill failed: its utterances fail, the others go on
                log.error("streaming prefill failed", extra={"rows": len(group), "error": repr(exc)})
                self._fail(group, exc)
                tokens = []
            for utterance in group:  # counted as waiting until here, so `open` sees them all along
                self._waiting.remove(utterance)
            if not tokens:
                continue
            for utterance, token in zip(group, tokens, strict=True):
                self._take(utterance, token)
            self._cohorts.append(_Cohort(state, list(group)))
        return True

    async def _advance(self, cohort: _Cohort) -> bool:
        available = [self.engine.windows_available(len(m.pcm) // 2, m.finished) - m.steps_done for m in cohort.members]
        done = [i for i, m in enumerate(cohort.members) if m.finished and available[i] <= 0]
        if done:
            for i in done:
                self._complete(cohort.members[i])
            await self._regroup(cohort, [[i for i in range(len(cohort.members)) if i not in done]])
            return True
        ready = [i for i, n in enumerate(available) if n > 0]
        if not ready:
            return False
        if len(ready) < len(cohort.members):
            flushing = any(cohort.members[i].finished for i in ready)
            if max(available) < 2 and not flushing:
                return False  # the others are less than a step behind: wait for them
            lagging = [i for i in range(len(cohort.members)) if i not in ready]
            cohort = (await self._regroup(cohort, [ready, lagging]))[0]
        while True:
            await self._step(cohort)
            # an ended cohort's flush steps run back to back: its audio is all here
            if not all(m.finished for m in cohort.members) or any(
                self.engine.windows_available(len(m.pcm) // 2, True) <= m.steps_done for m in cohort.members
            ):
                return True

    async def _step(self, cohort: _Cohort) -> None:
        members = cohort.members
        size = self.engine.window_samples
        windows = [m.samples(self.engine.window_start(m.steps_done), size) for m in members]
        tokens, elapsed = await self._call(members, self.engine.step, cohort.state, windows)
        for member, token in zip(members, tokens, strict=True):
            member.steps_done += 1
            if member.finished:
                member.compute_after_end_s += elapsed
            self._take(member, token)

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
        u.said += now[len(before) :]
        u.prefix_offset, u.read_offset = u.read_offset, len(u.tokens)
        text = u.said.strip()
        if text != u.text:
            u.text = text
            u.changed.set()

    def _complete(self, utterance: LiveUtterance) -> None:
        metrics.REQUESTS.labels("final", "done").inc()
        if not utterance.done.done():
            utterance.done.set_result(self.engine.decode(utterance.tokens))

    async def _regroup(self, cohort: _Cohort, groups: list[list[int]]) -> list[_Cohort]:
        """Replace a cohort by cohorts of the given rows (empty groups vanish); rows are gathered on the engine
        thread."""
        self._cohorts.remove(cohort)
        made = []
        for rows in (g for g in groups if g):
            if rows == list(range(len(cohort.members))):
                state = cohort.state
            else:
                state = await self._thread.call(self.engine.select, cohort.state, rows)
            made.append(_Cohort(state, [cohort.members[i] for i in rows]))
        self._cohorts.extend(made)
        return made

    @staticmethod
    def _fail(utterances: list[LiveUtterance], exc: BaseException) -> None:
        failure = errors.EngineError(f"the streaming ASR engine failed on this utterance: {exc}")
        for utterance in utterances:
            metrics.REQUESTS.labels("final", "failed").inc()
            if not utterance.done.done():
                utterance.done.set_exception(failure)

    def _fail_all(self, exc: BaseException) -> None:
        """The loop itself broke (not a model call): every utterance here fails."""
        self._fail([*self._waiting, *(m for c in self._cohorts for m in c.members)], exc)
        self._waiting.clear()
        self._cohorts.clear()
