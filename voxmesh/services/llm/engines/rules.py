"""The embedded default post-processor: a deterministic, rule-based clean-up. It is not a language model.

Rules, in order:
1. Filler words are removed: um, umm, uh, uhh, er, erm, ah, ahh, eh, hmm, hm, mm, mmm (a sentence end
   written on a filler moves to the word before it).
2. Stuttered repeats collapse: a word, or a run of up to three words, said twice or more in a row is kept
   once ("I I I think" -> "I think", "we can we can go" -> "we can go"), and a cut-off start such as "th-"
   before the word it begins is dropped.
3. Sentence casing: the first letter of each sentence is upper case, and so is the pronoun "I".
4. Closing punctuation: a text that does not end in . ? or ! gets a full stop.
It follows no instructions: a stream's instruction is noted in the result's reason and not applied.
The clean text is ready at once, so it goes as one delta, then the done.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from voxmesh.services.llm.engines import Done, LlmRequest
from voxmesh.settings import LlmSettings

FILLERS = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "ah", "ahh", "eh", "hmm", "hm", "mm", "mmm"})
SENTENCE_END = ".?!"
_EDGE = re.compile(r"^[^\w']+|[^\w']+$")
_I_FORMS = re.compile(r"^i('(m|ve|ll|d|s))?$")
MAX_REPEAT_RUN = 3


def _core(token: str) -> str:
    return _EDGE.sub("", token).lower()


def _remove_fillers(tokens: list[str]) -> list[str]:
    kept: list[str] = []
    for token in tokens:
        if _core(token) in FILLERS:
            end = token[-1] if token[-1] in SENTENCE_END else ""
            if end and kept:
                kept[-1] = kept[-1].rstrip(",;:") + end
            continue
        kept.append(token)
    return kept


def _collapse_repeats(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        out.append(token)
        for n in range(1, MAX_REPEAT_RUN + 1):
            if len(out) >= 2 * n and [_core(t) for t in out[-n:]] == [_core(t) for t in out[-2 * n : -n]]:
                # keep the later copy's punctuation: "I, I think." -> "I think."
                del out[-2 * n : -n]
                break
    cleaned: list[str] = []
    for i, token in enumerate(out):
        nxt = _core(out[i + 1]) if i + 1 < len(out) else ""
        if token.endswith("-") and len(token) > 1 and nxt.startswith(_core(token)):
            continue
        cleaned.append(token)
    return cleaned


def _case(tokens: list[str]) -> list[str]:
    out: list[str] = []
    start = True
    for token in tokens:
        if _I_FORMS.match(token.lower().strip(",;:.?!")):
            token = "I" + token[1:]
        if start:
            token = _capitalise(token)
        out.append(token)
        start = token[-1] in SENTENCE_END
    return out


def _capitalise(token: str) -> str:
    for i, char in enumerate(token):
        if char.isalpha():
            return token[:i] + char.upper() + token[i + 1 :]
    return token


def clean_up(text: str) -> str:
    """Apply the rules above to one transcript."""
    tokens = _case(_collapse_repeats(_remove_fillers(text.split())))
    if not tokens:
        return ""
    result = " ".join(tokens)
    result = result.rstrip(",;: ")
    if result and result[-1] not in SENTENCE_END:
        result += "."
    return result


class RulesEngine:
    name = "rules"

    def __init__(self, settings: LlmSettings):
        self.settings = settings

    async def warmup(self) -> None:
        clean_up("um so so this is a a warm-up")

    async def stream(self, request: LlmRequest) -> AsyncIterator[str | Done]:
        result = clean_up(request.text)
        if result:
            # The whole text is ready at once, so it is one delta: word by word, each word was two more
            # messages through the gateway (from the LLM, to the client) and no word came sooner.
            yield result
        reason = ""
        if request.instruction:
            reason = "the rules engine follows no instructions; the rule-based clean-up was applied instead"
        yield Done(text=result, reason=reason)

    async def close(self) -> None:
        pass
