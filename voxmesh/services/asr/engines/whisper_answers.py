"""What the whisper engine reads in Whisper's text, as text: an answer that loops, an answer that says again
what came before it (after a lead, or after a prompt) or copies a run of it, an answer longer than its audio
can hold, and a prompt closed as a sentence."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from difflib import SequenceMatcher

from voxmesh import text

MAX_COMPRESSION_RATIO = 2.4  # Whisper's own bound for text that repeats itself
# A loop says more than this, on top of compressing as one: a list read aloud ("front left, front right, rear
# left") compresses as well as a loop does (alsa_channels.flac's own text: 2.7), at about one word a second.
LOOP_WORDS_PER_S = 3.0
MAX_WORDS_PER_S = 6  # beyond this (plus a few), an answer is taken for a hallucination: no one speaks so fast
SAID_AGAIN_SHARE = 0.75  # an answer with this share of its words in the utterance before, in order, says it again
COPIED_RUN = 6  # an answer that has this many words of its prompt's text in a row, word for word, copies them
SENTENCE_ENDS = (".", "?", "!", "…")
CLOSING_MARKS = "\"')]\u201d\u2019"  # may follow a sentence's end: 'he said "yes."'


def repetitive(answer: str) -> bool:
    """Whether the text compresses as a loop does (Whisper's compression-ratio test)."""
    data = answer.encode()
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > MAX_COMPRESSION_RATIO


def looping(answer: str, seconds: float) -> bool:
    """Whether an answer is Whisper looping: text that compresses as a loop does and says more words than
    speech holds in its audio's time. Whisper's test alone takes a list read aloud for a loop, and its answer
    was then sampled at rising temperatures: on a 30 s list in babble the sampled answers were empty (the
    window taken for silence), a loop of 112 words, or the list, by chance."""
    return repetitive(answer) and len(text.words(answer)) > LOOP_WORDS_PER_S * seconds


def says_lead_again(answer: str, lead: str) -> bool:
    """Whether an answer decoded after its lead goes back over the lead instead of going on from it: it is
    empty (Whisper took the utterance for what it already said), or its first words are the lead's last ones
    (its last word, or its last utterance said again whole). A speaker who really repeats himself is flagged
    too; his utterance is then decoded alone, as it would be without a lead."""
    return not text.words(answer) or bool(lead_said_first(answer, lead)[0])


def lead_said_first(answer: str, lead: str) -> tuple[list[str], str]:
    """The lead's last words an answer decoded after its lead says first (the most of them it starts with), and
    the answer's text after them, as written."""
    said, heard = text.words(answer), text.words(lead)
    count = max((n for n in range(1, min(len(said), len(heard)) + 1) if said[:n] == heard[-n:]), default=0)
    tokens = answer.split()
    while count > len(said) - len(text.words(" ".join(tokens))):  # drop the tokens that hold those words
        tokens.pop(0)
    return said[:count], " ".join(tokens)


def says_too_much(answer: str, seconds: float) -> bool:
    """Whether an answer says more words than its audio can hold."""
    return len(text.words(answer)) > 3 + MAX_WORDS_PER_S * seconds


def says_again(answer: str, before: str) -> bool:
    """Whether an answer mostly says again the utterance before it: four words or more, three quarters of them
    found in that utterance's text in the same order. In noise, Whisper may echo the text it was given
    (a lead's, a prompt's) instead of hearing the audio: "The train left 20 minutes late ... in the middle."
    after "Our train left 20 minutes late ... in the middle.", where the speaker went on to another
    sentence. A speaker who really says a sentence again is flagged too."""
    said, heard = text.words(answer), text.words(before)
    return len(said) >= 4 and _in_order(said, heard) >= SAID_AGAIN_SHARE * len(said)


def copies(answer: str, before: str) -> bool:
    """Whether an answer has COPIED_RUN words or more in a row of the text before it, word for word. In noise,
    Whisper may copy a run of its prompt into an answer that is otherwise its own: "The end the nearest wind
    back in the front blew across the end the market's way up.", two utterances after "at all wind blew
    across the end the market's way up." (a mishearing of "A cold wind blew across the empty market square",
    copied with its errors). Speakers do say six words again, in a list read twice or a refrain; each costs
    a decode more, not words."""
    said, heard = text.words(answer), text.words(before)
    run = SequenceMatcher(None, said, heard, autojunk=False).find_longest_match(0, len(said), 0, len(heard))
    return run.size >= COPIED_RUN


def echoes(answer: str, context: str, lead: Sequence[str]) -> bool:
    """Whether an answer echoes a stream's text before it (its older text, then its lead's utterances): it
    says again the utterance just before (the lead's last, or the older text's last sentence), or copies a
    run of any of it."""
    said_before = lead[-1] if lead else last_sentence(context)
    return says_again(answer, said_before) or copies(answer, " ".join([context, *lead]))


def last_sentence(said: str) -> str:
    """The last sentence of a stream's text: what it said just before the next utterance."""
    return re.split(r"(?<=[.?!…])\s+", said.strip())[-1]


def _in_order(a: list[str], b: list[str]) -> int:
    """How many words a and b have in common in the same order (the longest common subsequence)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def closed(said: str) -> str:
    """Prompt text (a stream's text, or its hints) that ends a sentence. The next utterance begins after a
    pause; a prompt that stops mid-phrase ("side, left side, right") is read as speech that runs on into the
    audio, and Whisper skips the audio's first words where they repeat the prompt's last ones."""
    if said.rstrip(CLOSING_MARKS).endswith(SENTENCE_ENDS):
        return said
    return said.rstrip(",;:-") + "."
