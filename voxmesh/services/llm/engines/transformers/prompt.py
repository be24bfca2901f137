"""What a language model is asked: the default clean-up instruction, and the chat messages of one request.

Two messages: a system message with the instruction (the stream's own, or DEFAULT_INSTRUCTION), and a user
message with the stream's previous transcripts (context, oldest first, as many as the settings keep) and
the transcript to process. For a chat template that has no system role the instruction opens the user
message instead.
"""

from __future__ import annotations

from voxmesh.services.llm.engines import LlmRequest

DEFAULT_INSTRUCTION = (
    "You clean up the output of a speech recogniser. You get the transcript of one utterance, and perhaps "
    "the utterances said just before it. Rewrite the transcript as a reader expects it: add punctuation and "
    "capital letters; remove fillers (um, uh, er) and stuttered repeats; write numbers, dates, times and "
    "amounts in digits where a reader would. Keep every other word, in its order and with its meaning: do not "
    "add, drop, answer, summarise, explain or translate anything. Use the earlier utterances only to "
    "punctuate a sentence that continues from them; never repeat them. Reply with the cleaned-up transcript "
    "only, without quotes or comments."
)
CONTEXT_HEADING = "Earlier utterances (context only, do not repeat them):"
TRANSCRIPT_HEADING = "Transcript:"


def user_message(request: LlmRequest) -> str:
    parts = []
    if request.context:
        parts.append("\n".join([CONTEXT_HEADING, *request.context]))
    parts.append(f"{TRANSCRIPT_HEADING}\n{request.text}")
    return "\n\n".join(parts)


def messages(request: LlmRequest, *, system_role: bool = True) -> list[dict[str, str]]:
    instruction = request.instruction or DEFAULT_INSTRUCTION
    if system_role:
        return [{"role": "system", "content": instruction}, {"role": "user", "content": user_message(request)}]
    return [{"role": "user", "content": f"{instruction}\n\n{user_message(request)}"}]
