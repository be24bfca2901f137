"""What bench/fidelity.py prints about WER: one Row per clip and condition, holding every shift's figures.

A shift is a few milliseconds of silence put before the clip (`--shifts`). It moves Whisper's 10 ms frame grid
against the speech and changes nothing a listener could hear, so the spread of a clip's WER over its shifts is
the engine's own noise on that clip: a gap to offline smaller than that spread is not measured by one run.
Each cell of the table is the mean over the shifts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from fidelity_clips import Clip

GOAL = 0.01  # the bound on mesh WER - offline WER per clip, clean and at 20 and 10 dB


@dataclass
class Row:
    clip: Clip
    kind: str  # clean, white, babble
    snr: float | None
    seed: int
    files: list[Path] = field(default_factory=list)  # the noisy clip as a file, per shift
    offline: list[float] = field(default_factory=list)  # WER per shift
    mesh: dict[str, list[float]] = field(default_factory=dict)  # configuration -> WER per shift
    lengths: dict[str, list[float]] = field(default_factory=dict)  # configuration -> utterance lengths, every shift

    @property
    def level(self) -> str:
        return "clean" if self.snr is None else f"{self.snr:g}"


def mean(values: list[float], cap: float | None = None) -> float:
    return statistics.mean(min(v, cap) if cap is not None else v for v in values)


def spread(values: list[float]) -> float:
    return max(values) - min(values)


def print_report(rows: list[Row], configs: list[str], shifts: list[int]) -> None:
    several = len(shifts) > 1
    levels = list(dict.fromkeys(row.level for row in rows))
    if several:
        silences = ", ".join(map(str, shifts))
        print(f"each cell: the mean WER over the clip's {len(shifts)} shifts ({silences} ms of silence before it);")
        print("'offline range': offline's lowest and highest WER over them")
    print()
    head = "| clip | noise | SNR dB | seed | offline | " + ("offline range | " if several else "")
    print(head + " | ".join(configs) + " |")
    print("| --- " * (head.count("|") - 1 + len(configs)) + "|")
    for row in rows:
        cells = " | ".join(f"{mean(row.mesh[c]):.3f}" for c in configs)
        span = f"{min(row.offline):.3f}-{max(row.offline):.3f} | " if several else ""
        seed = row.seed if row.snr is not None else "-"
        print(f"| {row.clip.name} | {row.kind} | {row.level} | {seed} | {mean(row.offline):.3f} | {span}{cells} |")
    print()
    print("mean WER per level (each clip's WER capped at 1):")
    for level in levels:
        at = [row for row in rows if row.level == level]
        means = [f"offline {mean([mean(r.offline, 1.0) for r in at]):.3f}"]
        means += [f"{c} {mean([mean(r.mesh[c], 1.0) for r in at]):.3f}" for c in configs]
        print(f"  {level}: " + ", ".join(means))
    print()
    print("utterances per level, every clip (count, mean length, longest): a configuration that hears noise as speech")
    print("decodes long pieces, as offline does, but each final then waits for the whole piece")
    for level in levels:
        cells = []
        for c in configs:
            lengths = [length for row in rows if row.level == level for length in row.lengths[c]]
            cells.append(f"{c} {len(lengths)}, {statistics.mean(lengths or [0]):.1f} s, {max(lengths or [0]):.1f} s")
        print(f"  {level}: " + "; ".join(cells))
    print()
    print(f"mesh WER - offline WER, worst clip per level (the goal: <= {GOAL} clean, 20 and 10 dB):")
    for c in configs:
        worst = {level: max(mean(r.mesh[c]) - mean(r.offline) for r in rows if r.level == level) for level in levels}
        print(f"  {c}: " + ", ".join(f"{level} {gap:+.3f}" for level, gap in worst.items()))
    if several:
        print()
        print(f"the engine's own noise: clips whose WER moved by more than {GOAL} over the shifts, per level")
        for level in levels:
            at = [row for row in rows if row.level == level]
            cells = [_moved("offline", [r.offline for r in at])]
            cells += [_moved(c, [r.mesh[c] for r in at]) for c in configs]
            print(f"  {level}: " + "; ".join(cells))


def _moved(name: str, per_clip: list[list[float]]) -> str:
    moved = sum(spread(wers) > GOAL for wers in per_clip)
    return f"{name} {moved} of {len(per_clip)} (largest range {max(spread(w) for w in per_clip):.3f})"
