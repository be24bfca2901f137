"""Word-level text measures (normalisation, edit distance, word error rate, agreement of two decodes), and
the one way a stream's utterances become its transcript."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Scripts written without spaces between words (kana, CJK ideographs): each character counts as a word.
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word: letters and digits of any script (and apostrophes), or one character of an unspaced script.
_WORD = re.compile(rf"[{_UNSPACED}]|(?:[^\W_{_UNSPACED}]|')+")
CURLY_APOSTROPHE = "\u2019"  # typographic "don\u2019t" counts as "don't"


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, in any script (a CJK or kana character is a word of its own):
    the form WER, agreement and the LLM's faithfulness guard compare."""
    return _WORD.findall(text.lower().replace(CURLY_APOSTROPHE, "'"))


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, word_a in enumerate(a, 1):
        current = [i]
        for j, word_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word_a != word_b)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of a hypothesis against a reference, after normalisation."""
    ref = words(reference)
    if not ref:
        return 0.0 if not words(hypothesis) else 1.0
    return edit_distance(ref, words(hypothesis)) / len(ref)


def agreed_prefix(previous: str, current: str) -> str:
    """The longest run of leading words `current` shares with `previous`, as it is written in `current`.

    Two consecutive decodes of a growing utterance that agree on a prefix are unlikely to change it again
    (the LocalAgreement-2 policy of streaming Whisper).
    """
    shared = 0
    for a, b in zip(words(previous), words(current), strict=False):
        if a != b:
            break
        shared += 1
    if shared == 0:
        return ""
    for seen, match in enumerate(_WORD.finditer(current.lower().replace(CURLY_APOSTROPHE, "'")), start=1):
        if seen == shared:
            return current[: match.end()]
    return current


def extends(longer: str, shorter: str) -> bool:
    """Whether `longer` has more words than `shorter` and starts with all of its words."""
    a, b = words(longer), words(shorter)
    return len(a) > len(b) and a[: len(b)] == b


def transcript(utterances: Iterable[tuple[str | None, str | None]]) -> str:
    """A stream's text from its utterances in order, each (final, processed): the processed text where there
    is one (not failed), else the final; utterances with neither are left out."""
    return " ".join(p for p in (processed or final for final, processed in utterances) if p)
