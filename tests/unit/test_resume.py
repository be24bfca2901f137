"""What the client library keeps to resume a stream, and which repeated events it drops."""

from __future__ import annotations

from voxmesh.resume import Resumption
from voxmesh.v1 import common_pb2
from voxmesh.v1 import transcription_pb2 as pb

RATE = 16000


def event(
    kind: str, utterance: int = 0, start_s: float = 0.0, end_s: float = 0.0, settled_s: float = 0.0, **fields
) -> pb.TranscriptionEvent:
    message = pb.TranscriptionEvent(utterance_id=utterance, start_s=start_s, end_s=end_s, settled_through_s=settled_s)
    payload = {
        "speech_started": pb.SpeechStarted(),
        "speech_ended": pb.SpeechEnded(),
        "final": common_pb2.FinalTranscript(text=fields.get("text", "")),
        "error": common_pb2.UtteranceError(code="INTERNAL"),
        "processed": common_pb2.ProcessedText(
            delta=fields.get("delta", ""),
            done=fields.get("done", False),
            restart=fields.get("restart", False),
            text=fields.get("text", ""),
        ),
        "progress": pb.StreamProgress(),
        "partial": common_pb2.PartialTranscript(text="x"),
    }[kind]
    getattr(message, kind).CopyFrom(payload)
    return message


def with_audio(seconds: float, post_processing: bool = True) -> Resumption:
    state = Resumption(RATE, 1, post_processing)
    state.add(bytes(int(seconds * RATE) * 2))
    return state


def test_audio_is_kept_from_the_oldest_utterance_without_a_final_or_the_settled_point():
    state = with_audio(10.0)
    state.accept(event("progress", settled_s=2.0))
    assert state.start == 2 * RATE, "before the settled point the VAD decided everything"
    state.accept(event("speech_started", 1, 2.5, 2.5, settled_s=2.5))
    state.accept(event("speech_ended", 1, 2.5, 4.0, settled_s=4.0))
    state.accept(event("speech_started", 2, 4.5, 4.5, settled_s=4.5))
    state.accept(event("progress", settled_s=6.0))
    assert state.start == int(2.5 * RATE), "utterance 1 has no final yet"
    state.accept(event("final", 1, 2.5, 4.0, settled_s=6.0, text="one"))
    assert state.start == int(4.5 * RATE)
    resume = state.resume_from()
    assert resume.offset_s == 4.5 and resume.next_utterance_id == 2
    assert [(p.utterance_id, p.text) for p in resume.pending] == [(1, "one")] and list(resume.context) == ["one"]


def test_with_every_utterance_answered_a_new_call_starts_at_the_settled_point_with_the_next_id():
    state = with_audio(6.0, post_processing=False)
    for message in (
        event("speech_started", 1, 1.0, 1.0, settled_s=1.0),
        event("speech_ended", 1, 1.0, 2.0),
        event("final", 1, 1.0, 2.0, settled_s=2.0, text="a"),
        event("progress", settled_s=5.0),
    ):
        state.accept(message)
    resume = state.resume_from()
    assert (resume.offset_s, resume.next_utterance_id, list(resume.pending)) == (5.0, 2, [])


def test_what_a_resumed_call_repeats_is_dropped_once():
    state = with_audio(10.0)
    first = [
        event("speech_started", 1, 0.5, 0.5),
        event("speech_ended", 1, 0.5, 2.0),
        event("final", 1, 0.5, 2.0, text="one"),
        event("speech_started", 2, 3.0, 3.0),
    ]
    assert all(state.accept(m) for m in first)
    # the gateway died; the new call starts at utterance 2 and says its start again
    assert not state.accept(event("speech_started", 2, 3.0, 3.0)), "announced already"
    assert state.accept(event("partial", 2, 3.0, 3.5)), "partials may start over"
    assert state.accept(event("speech_ended", 2, 3.0, 4.0))
    assert state.accept(event("final", 2, 3.0, 4.0, text="two"))
    assert not state.accept(event("final", 1, 0.5, 2.0, text="one")), "no final twice"
    assert state.accept(event("speech_started", 3, 5.0, 5.0))


def test_processed_text_so_far_follows_deltas_restarts_and_done():
    state = with_audio(4.0)
    state.accept(event("speech_started", 1, 0.0, 0.0))
    state.accept(event("final", 1, 0.0, 1.0, text="one"))
    state.accept(event("processed", 1, delta="On"))
    state.accept(event("processed", 1, delta="e"))
    assert state.resume_from().pending[0].processed_so_far == "One"
    state.accept(event("processed", 1, delta="Uno", restart=True))
    assert state.resume_from().pending[0].processed_so_far == "Uno"
    state.accept(event("processed", 1, done=True, text="Uno."))
    assert list(state.resume_from().pending) == []
