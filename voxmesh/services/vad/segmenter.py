"""The segmenter: turns a stream of 16 kHz mono PCM into utterances.

The segmenter owns the state machine; a classifier (classifiers.py) answers one question per frame (is it
speech?), for the run of whole frames each push completes.
- Quiet: it keeps the last `pre_roll_ms + speech_start_ms` of frames. Speech starts when at least 80% of
  the frames in the last `speech_start_ms` are voiced; the utterance then begins with the kept frames, so
  the onset of the first word (and `pre_roll_ms` before the start window) is never clipped.
- Speaking: every frame belongs to the utterance. Speech ends when at least 90% of the frames in the last
  `speech_end_ms` are unvoiced; that trailing quiet stays in the utterance. An utterance whose speech (up to
  its last voiced frame) is shorter than `min_utterance_s` ends only at a pause of `merge_pause_ms` (that
  many unvoiced frames in a row): short pieces are
  merged with the speech that follows them, since a recogniser given a second of speech alone loses words
  it gets right with the words around them.
- An utterance that reaches `max_utterance_s` is split: in its last 20% at the first pause (90 ms of
  unvoiced frames), or at the limit when there is none. Audio after a split starts the next utterance's
  pre-roll, so no sample is lost or sent twice.
- Noise (off unless `noise_gate_db` or `end_stretch` is set): the classifier's answers are gated by the
  stream's noise floor, and the end window grows while speech stands low over it (noise.py).
Audio of any chunk size is accepted; an incomplete frame waits for the next chunk. Offsets are in samples
from the stream's start.

A segmenter can continue a stream another one was segmenting (a failover): it starts at an offset, with
the next utterance id, and, when that other one was inside an utterance, in speech. It may first be given
some audio from before the offset (`warmup`), which it only listens to: a classifier that has adapted to the
speaker and the noise decides as the one it replaces did, where a fresh one would end speech early.
`settled` says where it could be continued from: every sample before it is in an utterance already
announced (with its audio emitted) or is not speech.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import accumulate, islice
from math import ceil
from typing import TYPE_CHECKING

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH
from voxmesh.services.vad.noise import NoiseFloor, frame_energies_db

if TYPE_CHECKING:
    from voxmesh.services.vad.classifiers import Classifier

START_RATIO = 0.8
END_RATIO = 0.9
SPLIT_SEARCH = 0.2
SPLIT_PAUSE_MS = 90


@dataclass(frozen=True)
class SegmenterConfig:
    frame_ms: int = 30
    speech_start_ms: int = 150
    speech_end_ms: int = 500
    pre_roll_ms: int = 300
    max_utterance_s: float = 30.0
    min_utterance_s: float = 0.0
    merge_pause_ms: int = 1000
    audio_every_ms: int = 0  # while speaking, audio is emitted once this much has gathered (0: every push)
    noise_gate_db: float = 0.0  # a voiced frame less than this over the noise floor is not speech (0: no gate)
    end_stretch: float = 0.0  # the end window grows by up to this fraction as speech sinks to the noise (noise.py)

    @property
    def follows_noise(self) -> bool:
        return self.noise_gate_db > 0 or self.end_stretch > 0

    def frames(self, ms: float) -> int:
        return max(1, round(ms / self.frame_ms))


@dataclass(frozen=True)
class SpeechStarted:
    utterance: int
    start: int


@dataclass(frozen=True)
class SpeechAudio:
    utterance: int
    start: int
    end: int
    pcm: bytes = b""  # the samples of [start, end), unless the segmenter was told not to keep audio
    pause: int = 0  # samples of unvoiced audio at its end: the current pause, which may become the end


@dataclass(frozen=True)
class SpeechEnded:
    utterance: int
    end: int
    reason: str  # "silence", "max_length", "stream_end" or "flush"


Event = SpeechStarted | SpeechAudio | SpeechEnded


class Segmenter:
    def __init__(
        self,
        classifier: Classifier,
        config: SegmenterConfig = SegmenterConfig(),
        *,
        offset: int = 0,
        next_utterance: int = 1,
        open_since: int | None = None,
        warmup: int = 0,
        keep_audio: bool = True,
    ):
        """`offset`: the stream offset (samples) where segmenting starts. `warmup`: samples pushed before
        `offset`, only listened to. `next_utterance`: the id the next utterance gets. `open_since`:
        continue inside utterance `next_utterance`, begun at that offset and already announced.
        `keep_audio`: whether SpeechAudio events carry their samples (the caller may hold the audio itself)."""
        self.classifier = classifier
        self.config = config
        self.frame_samples = SAMPLE_RATE * config.frame_ms // 1000
        self._frame_bytes = self.frame_samples * SAMPLE_WIDTH
        self._start_frames = config.frames(config.speech_start_ms)
        self._end_frames = config.frames(config.speech_end_ms)
        self._end_frames_max = config.frames(config.speech_end_ms * (1 + config.end_stretch))
        self.noise = NoiseFloor(config.frame_ms) if config.follows_noise else None
        self._max_samples = int(config.max_utterance_s * SAMPLE_RATE)
        self._min_samples = int(config.min_utterance_s * SAMPLE_RATE)
        self._merge_pause = config.frames(config.merge_pause_ms)
        self._split_from = int(self._max_samples * (1 - SPLIT_SEARCH))
        self._split_pause = config.frames(SPLIT_PAUSE_MS)
        self._unvoiced_run = 0
        self._pending = bytearray()
        self.position = offset - warmup + warmup % self.frame_samples  # samples consumed into frames
        self._skip = warmup % self.frame_samples * SAMPLE_WIDTH  # bytes of warm-up that make no whole frame
        self._listen_until = offset
        self.utterances = next_utterance - 1  # the id of the latest utterance
        self._speaking = False
        self._utterance_start = 0
        self._kept: deque[bytes] = deque(maxlen=config.frames(config.pre_roll_ms) + self._start_frames)
        self._window: deque[bool] = deque(maxlen=self._start_frames)
        self._keep_audio = keep_audio
        self._out = bytearray()  # the samples of the audio not emitted yet, when kept
        self._out_start = 0
        self._out_samples = 0  # how much audio is not emitted yet
        self._out_every = SAMPLE_RATE * config.audio_every_ms // 1000
        if open_since is not None:
            self.utterances = next_utterance
            self._speaking = True
            self._utterance_start = open_since
            self._window = deque(maxlen=self._end_frames_max)

    @property
    def settled(self) -> int:
        """Every sample before this offset is in an announced utterance whose audio was emitted, or is not
        speech: in quiet, the frames kept for a possible start are not settled yet."""
        if self.position <= self._listen_until:
            return self._listen_until
        if self._speaking:
            return self._out_start if self._out_samples else self.position  # audio not emitted yet is not settled
        return self.position - sum(len(frame) for frame in self._kept) // SAMPLE_WIDTH

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def next_boundary(self) -> int:
        """The earliest input offset (samples) at which the next start or end can fall, whatever the audio
        until then. Frames leave a window oldest first: k frames from now, the window holds k new frames and
        the newest (size - k) of today's, so a start needs k + (voiced frames among those) to reach its count,
        and an end the same with unvoiced frames. In speech, a voiced frame at the window's new end thus puts
        the end a whole window away, however many unvoiced frames lie before it. `position` while listening to
        a warm-up, or while the noise floor moves the end window (its length is not known ahead)."""
        if self.position < self._listen_until or self.noise is not None:
            return self.position
        if self._speaking:
            size, needed, counted = self._end_frames, ceil(END_RATIO * self._end_frames), False
        else:
            size, needed, counted = self._start_frames, ceil(START_RATIO * self._start_frames), True
        newest = (bool(frame) is counted for frame in islice(reversed(self._window), size))
        kept = list(accumulate(newest, initial=0))  # kept[j]: the counted frames among the newest j
        frames = next(k for k in range(size + 1) if len(self._window) + k >= size and k + kept[size - k] >= needed)
        until = self.position + frames * self.frame_samples
        if self._speaking:  # a split at the utterance's length limit comes no earlier than its search begins
            until = min(until, self._utterance_start + self._split_from)
        return max(self.position, until)

    def push(self, pcm: bytes) -> list[Event]:
        """Feed audio of any length; returns the events it completes."""
        if self._skip:
            skipped, self._skip = min(self._skip, len(pcm)), max(0, self._skip - len(pcm))
            pcm = pcm[skipped:]
        self._pending += pcm
        events: list[Event] = []
        whole = len(self._pending) - len(self._pending) % self._frame_bytes
        if whole:
            frames = bytes(self._pending[:whole])
            del self._pending[:whole]
            voiced = self.classifier.classify(frames)
            if self.noise is not None:
                voiced = self._follow_noise(frames, voiced)
            for index, offset in enumerate(range(0, whole, self._frame_bytes)):
                self._frame(frames[offset : offset + self._frame_bytes], voiced[index], events)
        if self._out_samples >= self._out_every:
            self._emit_audio(events)
        return events

    def flush(self) -> list[Event]:
        """The stream ended: close an open utterance with whatever audio is left."""
        events: list[Event] = []
        if self._speaking:
            self._append(bytes(self._pending), self.position)
            self.position += len(self._pending) // SAMPLE_WIDTH
            self._end("stream_end", events)
        else:
            self.position += len(self._pending) // SAMPLE_WIDTH
        self._pending.clear()
        return events

    def cut(self) -> list[Event]:
        """The client asked for the utterance to end now: close an open one with the audio pushed so far
        (what makes no whole frame yet goes with it); nothing happens in quiet."""
        events: list[Event] = []
        if self._speaking:
            self._append(bytes(self._pending), self.position)
            self.position += len(self._pending) // SAMPLE_WIDTH
            self._pending.clear()
            self._end("flush", events)
        return events

    def _frame(self, frame: bytes, voiced: bool, events: list[Event]) -> None:
        frame_start = self.position
        self.position += self.frame_samples
        if frame_start < self._listen_until:  # warm-up: the classifier adapts; speech keeps its end window
            if self._speaking:
                self._window.append(voiced)
                self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
            return
        if not self._speaking:
            self._kept.append(frame)
            self._window.append(voiced)
            if len(self._window) == self._start_frames and sum(self._window) >= START_RATIO * self._start_frames:
                self._start(events)
            return
        self._append(frame, frame_start)
        self._window.append(voiced)
        self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
        length = self.position - self._utterance_start
        spoken = length - self._unvoiced_run * self.frame_samples  # up to the last voiced frame
        end_frames = self._end_window()
        recent = sum(islice(reversed(self._window), end_frames))  # voiced frames in the end window
        if (
            len(self._window) >= end_frames
            and end_frames - recent >= END_RATIO * end_frames
            and (spoken >= self._min_samples or self._unvoiced_run >= self._merge_pause)
        ):
            self._end("silence", events)
        elif length + self.frame_samples > self._max_samples or (
            length >= self._split_from and self._unvoiced_run >= self._split_pause
        ):
            self._end("max_length", events)

    def _follow_noise(self, frames: bytes, voiced: list[bool]) -> list[bool]:
        """The classifier's answers, gated by the noise floor, which moves on with each frame."""
        assert self.noise is not None
        gate = self.config.noise_gate_db
        kept = []
        for energy, heard in zip(frame_energies_db(frames, self.frame_samples).tolist(), voiced, strict=True):
            speech = heard and (gate <= 0 or energy >= self.noise.floor_db + gate)
            self.noise.observe(energy, speech)
            kept.append(speech)
        return kept

    def _end_window(self) -> int:
        """Frames in the end window now: longer while speech stands low over the noise."""
        if self.noise is None:
            return self._end_frames  # without end_stretch, the largest window is this one
        return self._end_frames + round((self._end_frames_max - self._end_frames) * self.noise.stretch())

    def _start(self, events: list[Event]) -> None:
        self.utterances += 1
        kept = b"".join(self._kept)
        self._utterance_start = self.position - len(kept) // SAMPLE_WIDTH
        self._speaking = True
        self._unvoiced_run = 0
        events.append(SpeechStarted(self.utterances, self._utterance_start))
        self._out_start = self._utterance_start
        self._out_samples = len(kept) // SAMPLE_WIDTH
        if self._keep_audio:
            self._out += kept
        self._kept.clear()
        self._window = deque(maxlen=self._end_frames_max)

    def _append(self, pcm: bytes, start: int) -> None:
        if not self._out_samples:
            self._out_start = start
        self._out_samples += len(pcm) // SAMPLE_WIDTH
        if self._keep_audio:
            self._out += pcm

    def _emit_audio(self, events: list[Event]) -> None:
        if self._out_samples:
            pause = self._unvoiced_run * self.frame_samples if self._speaking else 0
            end = self._out_start + self._out_samples
            events.append(SpeechAudio(self.utterances, self._out_start, end, bytes(self._out), pause))
            self._out.clear()
            self._out_samples = 0

    def _end(self, reason: str, events: list[Event]) -> None:
        self._emit_audio(events)
        events.append(SpeechEnded(self.utterances, self.position, reason))
        self._speaking = False
        self._window = deque(maxlen=self._start_frames)
        self._kept.clear()
