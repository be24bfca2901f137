"""Captions from finals: SubRip (SRT) and WebVTT.

A final with word timings is cut into cues at word boundaries, each at most `MAX_CUE_CHARS` characters and
`MAX_CUE_S` seconds, timed by its first and last words; a final without them is one cue over its utterance.
"""

from __future__ import annotations

from collections.abc import Iterable

from voxmesh.events import Final

MAX_CUE_CHARS = 84  # two lines of 42, the common broadcast limit
MAX_CUE_S = 6.0

Cue = tuple[float, float, str]


def cues(finals: Iterable[Final]) -> list[Cue]:
    out: list[Cue] = []
    for final in sorted(finals, key=lambda f: f.start_s):
        if not final.text:
            continue
        if not final.words:
            out.append((final.start_s, final.end_s, final.text))
            continue
        group = [final.words[0]]
        for word in final.words[1:]:
            text = " ".join(w.text for w in [*group, word])
            if len(text) > MAX_CUE_CHARS or word.end_s - group[0].start_s > MAX_CUE_S:
                out.append((group[0].start_s, group[-1].end_s, " ".join(w.text for w in group)))
                group = []
            group.append(word)
        out.append((group[0].start_s, group[-1].end_s, " ".join(w.text for w in group)))
    return out


def _clock(seconds: float, separator: str) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt(finals: Iterable[Final]) -> str:
    blocks = [
        f"{n}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n"
        for n, (start, end, text) in enumerate(cues(finals), start=1)
    ]
    return "\n".join(blocks)


def vtt(finals: Iterable[Final]) -> str:
    blocks = [f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n" for start, end, text in cues(finals)]
    return "\n".join(["WEBVTT\n", *blocks])
