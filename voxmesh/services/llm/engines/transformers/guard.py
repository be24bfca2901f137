"""The faithfulness guard of the default clean-up: an LLM that rewrites a transcript can invent words.

Both texts are normalised to the words a faithful clean-up keeps, so that what the clean-up is asked to
change costs nothing:
1. the rule-based clean-up runs on each (fillers and stuttered repeats go; see engines/rules.py);
2. lower case, punctuation dropped (`voxmesh.text.words`);
3. English number words become digits ("twenty five" -> "25", "two thousand and one" -> "2001", "three
   point five" -> "3 5" as "3.5" reads), digit groups are joined ("25,000" -> "25000"), "%" reads "percent".

The divergence is the word edit distance between the two, over the transcript's word count: 0 for the
same words, 0.25 for one word changed in four, above 1 when the output is longer and unrelated. An output
whose divergence is over the threshold (VOXMESH_LLM_GUARD_THRESHOLD, 0.3 by default) is replaced by the
rule-based clean-up of the transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voxmesh.services.llm.engines.rules import clean_up
from voxmesh.text import edit_distance, words

SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_DIGIT_GROUPS = re.compile(r"(?<=\d)[,\u202f\u00a0](?=\d{3}\b)")


@dataclass(frozen=True)
class Verdict:
    divergence: float
    guarded: bool
    reason: str  # empty when not guarded


def normalise(text: str) -> list[str]:
    """The words of a text as the guard compares them."""
    text = _DIGIT_GROUPS.sub("", clean_up(text)).replace("%", " percent")
    out: list[str] = []
    number = _Number()
    for word in words(text):
        if number.take(word):
            continue
        out.extend(number.flush())
        out.append(word)
    out.extend(number.flush())
    # "three point five" -> "3 5", as "3.5" is read
    return [
        w
        for i, w in enumerate(out)
        if not (w == "point" and 0 < i < len(out) - 1 and out[i - 1].isdigit() and out[i + 1].isdigit())
    ]


class _Number:
    """English number words, one at a time, as the digits a reader writes: "two hundred and five" -> 205,
    "twenty five thousand" -> 25000, "nineteen eighty four" -> 1984, "one two three" -> 1 2 3."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.done: list[str] = []
        self.total = self.current = 0
        self.last = ""  # kind of the last word taken: small, tens, scale, and; empty: none yet
        self.pending_and = False  # an "and" after a scale word, which the next number word would absorb

    def take(self, word: str) -> bool:
        if word == "and" and self.last == "scale":
            self.pending_and, self.last = True, "and"
            return True
        if word in SMALL:
            value = SMALL[word]
            if self.last == "small" or (self.last == "tens" and value >= 10):
                self._close()
            self.current += value  # after tens: "twenty five"
            self.last = "small"
        elif word in TENS:
            if self.last == "small" and 10 <= self.current % 100 < 20 and self.total == 0:
                self.current *= 100  # a year: "nineteen eighty"
            elif self.last in ("small", "tens"):
                self._close()
            self.current += TENS[word]
            self.last = "tens"
        elif word in SCALES:
            scale = SCALES[word]
            if scale == 100:
                self.current = max(self.current, 1) * 100
            else:
                self.total += max(self.current, 1) * scale
                self.current = 0
            self.last = "scale"
        else:
            return False
        self.pending_and = False
        return True

    def _close(self) -> None:
        self.done.append(str(self.total + self.current))
        self.total = self.current = 0

    def flush(self) -> list[str]:
        if self.last:
            self._close()
        out = self.done + (["and"] if self.pending_and else [])
        self._reset()
        return out


def divergence(transcript: str, output: str) -> float:
    """Word edit distance of the output from the transcript, over the transcript's words, normalised."""
    reference, hypothesis = normalise(transcript), normalise(output)
    if not reference:
        return 0.0 if not hypothesis else float(len(hypothesis))
    return edit_distance(reference, hypothesis) / len(reference)


def check(transcript: str, output: str, threshold: float) -> Verdict:
    score = divergence(transcript, output)
    if score <= threshold:
        return Verdict(score, False, "")
    return Verdict(
        score,
        True,
        (
            f"the model's clean-up diverged from the transcript (word edit distance {score:.2f} of its words, over "
            f"the guard threshold {threshold:g}); the rule-based clean-up was returned instead"
        ),
    )
