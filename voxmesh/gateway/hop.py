"""One downstream hop of a chain (VAD, ASR or LLM) across failovers: the stream it uses now, and streams that
are going away but still answering.

A stream that ends abnormally (UNAVAILABLE, a reset connection, GOAWAY, the INTERNAL of a dying process),
or one whose service says `going_away`, is replaced: the hop waits for a ready replica of its service
(round_robin with health checks picks one; with a single replica it retries with backoff), opens a new
stream, sends the config again and then `_replay`s what the lost stream had not answered. Answers from a
stream that was replaced are dropped by the subclass, which knows what each stream carries.

Every write and every change of which stream carries what happens under the hop's lock, so a replay and a
regular write never interleave.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import grpc
from google.protobuf.message import Message

from voxmesh import rpc
from voxmesh.gateway import metrics

if TYPE_CHECKING:
    from voxmesh.gateway.chain import Chain

log = logging.getLogger("voxmesh.gateway.hop")

# A stream that ends with one of these is failed over; any other status is the answer.
FAILOVER_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)
FIRST_RETRY_S = 0.05
LONGEST_RETRY_S = 1.0
OPEN_TIMEOUT_S = 5.0  # to open a stream once the channel has a ready replica


def now() -> float:
    return time.perf_counter()


class Refused(Exception):
    """A service refused a new stream's config with a status that is not failed over."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(eq=False)
class Stream:
    call: grpc.aio.StreamStreamCall
    number: int
    retiring: bool = False  # its service is going away: it gets no new work
    audio_at_end: bool = False  # the service uses an utterance's audio only at its end (rpc.AUDIO_WANTED): 1 s messages
    end_takes_audio: bool = False  # an utterance's end may carry its last audio (rpc.END_TAKES_AUDIO)
    writing_done: bool = False
    reader: asyncio.Task | None = None


class Hop(abc.ABC):
    name: ClassVar[str]
    going_away_field: ClassVar[str] = "going_away"

    def __init__(self, chain: Chain):
        self.chain = chain
        self.current: Stream | None = None
        self.streams: set[Stream] = set()
        self.lock = asyncio.Lock()
        self.down_since: float | None = now()  # no current stream since then (None: there is one)
        self._connecting: asyncio.Task | None = None
        self._numbers = itertools.count(1)
        self.closed = False
        self._first = asyncio.Event()  # the first stream is open, or the service refused it
        self.refused: Refused | None = None

    # -- what each hop says -----------------------------------------------------------------------

    @abc.abstractmethod
    def _call(self, timeout: float | None) -> grpc.aio.StreamStreamCall:
        """Open a call to the service."""

    @abc.abstractmethod
    def _config(self) -> Any:
        """The first message of a new stream."""

    @abc.abstractmethod
    async def _replay(self, stream: Stream) -> None:
        """Under the lock, on a new current stream: send what it must have (work a lost stream left)."""

    @abc.abstractmethod
    async def _handle(self, stream: Stream, response: Any) -> None:
        """A response (not going_away) from one of the hop's streams."""

    @abc.abstractmethod
    def _unanswered(self, stream: Stream) -> bool:
        """Whether work sent on `stream` still waits for its answer."""

    @abc.abstractmethod
    def _orphaned(self, stream: Stream) -> None:
        """Under the lock: `stream` is gone; unassign the work it had not answered."""

    def _wants_stream(self) -> bool:
        """Whether to open a new stream when there is none (a hop with no work may wait for some)."""
        return True

    async def _ended(self, stream: Stream) -> bool:
        """Under the lock: a stream ended cleanly; True if that was expected (else it counts as lost)."""
        return stream.writing_done and not self._unanswered(stream)

    # -- streams ----------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open a new current stream in the background, unless one is there or on its way."""
        if self.closed or self.current is not None or (self._connecting and not self._connecting.done()):
            return
        self._connecting = asyncio.create_task(self._connect(), name=f"connect-{self.name}")

    async def _connect(self) -> None:
        delay = FIRST_RETRY_S
        while not self.closed:
            if await self.chain.downstream.wait_for(self.name, OPEN_TIMEOUT_S):
                try:
                    await asyncio.wait_for(self._open(), OPEN_TIMEOUT_S)
                    return
                except Refused as refused:
                    self.refused = refused
                    self._first.set()
                    await self.chain.hop_failed(self.name, refused.code, refused.details)
                    return
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as exc:
                    log.info(
                        "opening a downstream stream failed; retrying",
                        extra={"stage": self.name, "error": _reason(exc)},
                    )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(2 * delay, LONGEST_RETRY_S)

    async def opened(self, timeout_s: float) -> bool:
        """Wait until the hop's first stream is open: True; False if none opened in time. Raises the
        refusal, when the service refused the stream's config."""
        try:
            await asyncio.wait_for(self._first.wait(), timeout_s)
        except TimeoutError:
            return False
        if self.refused is not None:
            raise self.refused
        return True

    async def _open(self) -> None:
        call = self._call(self.chain.timeout)
        stream = Stream(call, next(self._numbers))
        was_down = self.down_since
        try:
            await call.write(self._config())
            metadata = await call.initial_metadata()  # the service accepted the config, or the call ended with why not
            if call.done():
                code = await call.code()
                if code not in FAILOVER_CODES:
                    raise Refused(code, await call.details())
                raise asyncio.InvalidStateError(f"the stream ended {code.name} as it opened")
            said = tuple(metadata or ())
            stream.audio_at_end = (rpc.AUDIO_WANTED, rpc.AT_END) in said
            stream.end_takes_audio = (rpc.END_TAKES_AUDIO, rpc.YES) in said
            async with self.lock:
                self.streams.add(stream)
                self.current, self.down_since = stream, None
                await self._replay(stream)
        except BaseException:
            call.cancel()
            self.streams.discard(stream)
            if self.current is stream:
                self.current, self.down_since = None, was_down
            raise
        stream.reader = asyncio.create_task(self._read(stream), name=f"read-{self.name}-{stream.number}")
        self._first.set()
        if stream.number > 1:
            metrics.FAILOVERS.labels(self.name).inc()
            log.info("downstream stream replaced", extra={"stage": self.name, "stream": stream.number})

    async def write(self, stream: Stream, request: Any) -> bool:
        """Send on a stream (the caller holds the lock); False when its call has ended (its reader sees how)."""
        try:
            await stream.call.write(request)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            return False
        return True

    async def half_close(self, stream: Stream) -> None:
        """No more requests on this stream (the caller holds the lock)."""
        if stream.writing_done:
            return
        stream.writing_done = True
        # the call may already have ended; its reader sees how
        with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
            await stream.call.done_writing()

    async def _read(self, stream: Stream) -> None:
        call = stream.call
        try:
            while (response := await call.read()) is not grpc.aio.EOF:
                message = cast(Message, response)  # read() types what it returns as object, for EOF
                if message.WhichOneof(message.DESCRIPTOR.oneofs[0].name) == self.going_away_field:
                    log.info("downstream going away", extra={"stage": self.name, "stream": stream.number})
                    await self._going_away(stream, message)
                else:
                    await self._handle(stream, message)
                if stream not in self.streams:
                    return  # replaced while it answered
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in FAILOVER_CODES:
                await self.chain.hop_failed(self.name, exc.code(), exc.details() or exc.code().name)
                return
            await self._lost(stream, _reason(exc))
            return
        async with self.lock:
            expected = await self._ended(stream)
        if expected:
            self.streams.discard(stream)
        else:
            await self._lost(stream, "the stream ended without answering everything sent on it")

    async def _going_away(self, stream: Stream, response: Any) -> None:
        """The stream's service is stopping: new work goes to a new stream; this one finishes what it has."""
        async with self.lock:
            await self._retire(stream)

    async def _retire(self, stream: Stream) -> None:
        """Under the lock: give the stream no new work, and open a new current one."""
        stream.retiring = True
        if self.current is stream:
            self.current, self.down_since = None, now()
            self.connect()

    async def _lost(self, stream: Stream, reason: str) -> None:
        """A stream failed: its unanswered work goes to the current stream, or to the next one opened."""
        if self.closed or stream not in self.streams:
            return
        log.info("downstream stream lost; failing over", extra={"stage": self.name, "reason": reason})
        stream.call.cancel()
        async with self.lock:
            self.streams.discard(stream)
            if self.current is stream:
                self.current, self.down_since = None, now()
            orphans = self._unanswered(stream)
            self._orphaned(stream)
            if self.current is not None and orphans:
                await self._replay(self.current)
        if self.current is None and (orphans or self._wants_stream()):
            self.connect()

    async def close(self) -> None:
        """The chain ended: stop everything this hop runs."""
        self.closed = True
        tasks = [t for t in (self._connecting, *(s.reader for s in self.streams)) if t is not None]
        for stream in self.streams:
            stream.call.cancel()
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not asyncio.current_task()), return_exceptions=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    return type(exc).__name__
