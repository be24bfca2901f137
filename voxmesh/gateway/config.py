"""What a client's stream asked for (`ChainConfig`), checked: language tags, phrase hints, the prompt, a
resumed stream's hand-over. Anything out of bounds is INVALID_ARGUMENT with a sentence saying what is
accepted."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from voxmesh import errors
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import common_pb2, transcription_pb2

# A BCP-47 tag's shape: a primary language subtag of 2 or 3 letters, then subtags of 1 to 8 letters or digits
# (script, region, variant: "en-US", "zh-Hant-TW", "sr-Latn"); case does not matter.
_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2,3})(-[A-Za-z0-9]{1,8})*")
MAX_RESUME_PENDING = 64  # finals a resumed stream may hand back for post-processing
MAX_TRANSCRIPT_CHARS = 20_000
MAX_PHRASES = 100
MAX_PHRASE_CHARS = 100
MAX_BOOST = 20.0
MAX_PROMPT_CHARS = 1000


class Flush:
    """In a chain's audio: the client asked for the current utterance to end here."""


@dataclass(frozen=True)
class ChainConfig:
    language: str = ""
    partials: bool = False
    post_processing: bool = False
    instruction: str = ""
    resume: transcription_pb2.ResumeFrom | None = field(default=None, compare=False)
    recorded: bool = False  # the audio was recorded: flow-controlled, never paced (transcription.proto)
    word_timings: bool = False
    phrases: tuple[tuple[str, float], ...] = ()  # phrase hints and their boosts
    prompt: str = ""
    language_tag: str = ""  # the stream's BCP-47 tag ("en-US"); `language` is its primary subtag, for the engines
    endpointing: common_pb2.Endpointing | None = field(default=None, compare=False)  # the VAD checks its bounds


def chain_config(
    settings: GatewaySettings,
    language: str,
    partials: bool,
    post: transcription_pb2.PostProcessing,
    resume: transcription_pb2.ResumeFrom | None = None,
    recorded: bool = False,
    *,
    word_timings: bool = False,
    phrases: Sequence[common_pb2.PhraseHint] = (),
    prompt: str = "",
    endpointing: common_pb2.Endpointing | None = None,
) -> ChainConfig:
    tag = language_tag(language)
    if post.enabled and len(post.instruction) > settings.max_instruction_chars:
        raise errors.InvalidArgument(
            f"the post-processing instruction has {len(post.instruction)} characters; at most "
            f"{settings.max_instruction_chars} are accepted (VOXMESH_GATEWAY_MAX_INSTRUCTION_CHARS)"
        )
    if resume is not None:
        check_resume(resume)
    return ChainConfig(
        tag.split("-")[0].lower(),
        partials,
        post.enabled,
        post.instruction if post.enabled else "",
        resume,
        recorded,
        word_timings=word_timings,
        phrases=check_phrases(phrases),
        prompt=check_prompt(prompt),
        language_tag=tag,
        endpointing=endpointing,
    )


def language_tag(language: str) -> str:
    """The stream's language as a BCP-47 tag in its usual case ("en-US", "zh-Hant-TW"); "" for none."""
    if not language:
        return ""
    if not _LANGUAGE_TAG.fullmatch(language):
        raise errors.InvalidArgument(
            f"language {errors.quote(language)} is neither a BCP-47 tag such as 'en-US' nor an ISO 639-1 code such "
            "as 'en'; leave it empty to let the engine detect it"
        )
    primary, *rest = language.split("-")
    # BCP-47's conventions: language lower case, script title case, region upper case
    cased = [s.title() if len(s) == 4 else s.upper() if len(s) == 2 or s.isdigit() else s.lower() for s in rest]
    return "-".join([primary.lower(), *cased])


def check_phrases(phrases: Sequence[common_pb2.PhraseHint]) -> tuple[tuple[str, float], ...]:
    if len(phrases) > MAX_PHRASES:
        raise errors.InvalidArgument(f"{len(phrases)} phrase hints were given; at most {MAX_PHRASES} are accepted")
    checked = []
    for hint in phrases:
        phrase = hint.phrase.strip()
        if not 0 < len(phrase) <= MAX_PHRASE_CHARS:
            raise errors.InvalidArgument(
                f"phrase hint {errors.quote(hint.phrase)} is not accepted: a phrase has 1 to {MAX_PHRASE_CHARS} "
                "characters"
            )
        if not (math.isfinite(hint.boost) and 0 <= hint.boost <= MAX_BOOST):
            raise errors.InvalidArgument(
                f"the boost {hint.boost:g} of phrase hint {errors.quote(phrase)} is not accepted: give 0 to "
                f"{MAX_BOOST:g} (0: the engine's default weight)"
            )
        checked.append((phrase, float(hint.boost)))
    return tuple(checked)


def check_prompt(prompt: str) -> str:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise errors.InvalidArgument(
            f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted"
        )
    return prompt.strip()


def check_resume(resume: transcription_pb2.ResumeFrom) -> None:
    if not (math.isfinite(resume.offset_s) and resume.offset_s >= 0):
        raise errors.InvalidArgument(f"resume.offset_s {resume.offset_s} is not accepted: give 0 or a positive offset")
    if len(resume.pending) > MAX_RESUME_PENDING:
        raise errors.InvalidArgument(
            f"resume.pending has {len(resume.pending)} transcripts; at most {MAX_RESUME_PENDING} are accepted"
        )
    ids = [p.utterance_id for p in resume.pending]
    if len(set(ids)) != len(ids) or any(not 0 < i < max(1, resume.next_utterance_id) for i in ids):
        raise errors.InvalidArgument(
            "resume.pending must name distinct utterances, each before resume.next_utterance_id"
        )
    if any(len(t) > MAX_TRANSCRIPT_CHARS for t in [*(p.text for p in resume.pending), *resume.context]):
        raise errors.InvalidArgument(f"a resumed transcript is longer than {MAX_TRANSCRIPT_CHARS} characters")
