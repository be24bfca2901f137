"""A Recognize stream on a streaming engine (voxtral-realtime): audio goes to the round scheduler as it
arrives; the text it produces comes back as partials while the speaker talks (when the stream asked for
them; stability 1: a streaming model does not revise what it wrote) and as the final once the utterance's
end has flushed the transcription delay. The final's engine_compute_s is the engine time spent after the
utterance's end: what the final waited for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from voxmesh import SAMPLE_RATE, errors
from voxmesh.services.asr.rounds import LiveUtterance, RoundScheduler
from voxmesh.services.asr.session import Emit, Session, SessionUtterance


@dataclass
class _Streamed(SessionUtterance):
    live: LiveUtterance | None = None  # None: refused before the scheduler took it
    follower: asyncio.Task[None] | None = None


class LiveSession(Session[_Streamed]):
    def __init__(
        self, scheduler: RoundScheduler, emit: Emit, *, engine_name: str, partials: bool, words: bool, **limits
    ):
        super().__init__(emit, engine_name=engine_name, **limits)
        self.scheduler = scheduler
        self.partials = partials
        self.words = words

    def _blank_utterance(self, utterance_id: int) -> _Streamed:
        return _Streamed(utterance_id)

    def _open_utterance(self, utterance_id: int) -> _Streamed:
        utterance = _Streamed(utterance_id)
        try:
            utterance.live = self.scheduler.open()
        except errors.VoxmeshError as exc:
            self._give_up(utterance, exc)
            return utterance
        utterance.follower = asyncio.create_task(self._follow(utterance))
        return utterance

    def _grow(self, utterance: _Streamed, pcm: bytes, pause_s: float) -> None:
        assert utterance.live is not None  # only a refused utterance has none, and it is failed: no audio grows it
        self.scheduler.feed(utterance.live, pcm)

    def _finish(self, utterance: _Streamed) -> None:
        assert utterance.live is not None  # as in `_grow`: a failed utterance is not finished
        self.scheduler.finish(utterance.live)
        self._spawn(self._await_follower(utterance))

    def _stop(self, utterance: _Streamed) -> None:
        if utterance.live is not None:
            self.scheduler.cancel(utterance.live)
        if utterance.follower is not None:
            utterance.follower.cancel()

    async def _await_follower(self, utterance: _Streamed) -> None:
        assert utterance.follower is not None  # started with `live`, in `_open_utterance`
        await asyncio.gather(utterance.follower, return_exceptions=True)

    async def _follow(self, utterance: _Streamed) -> None:
        """Partials as the text grows, then the final (or the error)."""
        live = utterance.live
        assert live is not None  # set before this task starts
        sent = ""
        while not live.done.done():
            changed: asyncio.Future[Any] = asyncio.ensure_future(live.changed.wait())
            await asyncio.wait({changed, live.done}, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            live.changed.clear()
            if self.partials and live.text != sent and not live.done.done():
                sent = live.text
                heard_s = live.steps_done * self.scheduler.step_samples / SAMPLE_RATE  # a token per step
                await self._partial_text(utterance, min(heard_s, utterance.seconds), sent, 1.0)
        try:
            text = live.done.result()
        except errors.VoxmeshError as exc:
            await self._fail(utterance, exc)
            return
        words = self.scheduler.words(live, utterance.seconds) if self.words else ()
        await self._final(utterance, text, "", live.compute_after_end_s, 0.0, words=words)
