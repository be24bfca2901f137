"""An utterance's states in the gateway, and what a post-processing attempt made again sends."""

from __future__ import annotations

import pytest

from voxmesh.gateway.lifecycle import ChainUtterance, DeltaLedger, State
from voxmesh.v1 import common_pb2


def utterance() -> ChainUtterance:
    return ChainUtterance(1, start_s=0.0, started_at=0.0)


def test_the_happy_path_with_post_processing():
    u = utterance()
    u.hold(b"\0\0" * 10, end_s=0.5)
    assert u.end(1.0, now=1.0) and u.state is State.ENDED
    assert u.resolve(now=1.5, final=common_pb2.FinalTranscript(text="hi"))
    assert u.state is State.FINAL and not u.audio, "the held audio goes with the final"
    event = u.release(now=1.6, post_processing=True)
    assert event.final.text == "hi" and u.state is State.PROCESSING and not u.finished
    assert u.processing_done() and u.state is State.DONE and u.finished


def test_a_final_after_the_watchdog_gave_up_is_refused():
    u = utterance()
    u.end(1.0, now=1.0)
    assert u.fail(now=31.0, stage="asr", code="DEADLINE_EXCEEDED", message="late")
    assert not u.resolve(now=32.0, final=common_pb2.FinalTranscript(text="too late"))
    assert u.state is State.FAILED and u.final is None
    assert u.release(now=32.0, post_processing=True).error.code == "DEADLINE_EXCEEDED"
    assert u.finished


def test_nothing_moves_backwards_or_skips_the_final():
    u = utterance()
    assert not u.processing_done(), "open -> done is not a transition"
    u.end(1.0, now=1.0)
    assert not u.end(2.0, now=2.0), "ended twice"
    assert u.end_s == 1.0
    u.resolve(now=1.5, final=common_pb2.FinalTranscript(text="x"))
    assert u.processing_failed("no") is None, "not sent to the post-processor yet"
    u.release(now=1.6, post_processing=False)
    assert u.state is State.DONE


def test_audio_is_held_only_until_the_final():
    u = utterance()
    u.hold(b"ab", end_s=0.1)
    u.end(0.1, now=0.1)
    u.resolve(now=0.2, final=common_pb2.FinalTranscript(text="x"))
    u.hold(b"cd", end_s=0.2)
    assert not u.audio


@pytest.mark.parametrize(
    ("first", "again", "expected"),
    [
        # the attempt made again repeats what the client has, then goes on: only the rest is sent
        (["Hello ", "wor"], ["Hel", "lo ", "world."], [None, None, ("ld.", False)]),
        # it comes out different: the client's text starts over
        (["Hello "], ["Good", "bye."], [("Good", True), ("bye.", False)]),
    ],
)
def test_a_transcript_post_processed_again_sends_only_what_the_client_lacks(first, again, expected):
    ledger = DeltaLedger()
    ledger.again()
    assert [ledger.delta(d) for d in first] == [(d, False) for d in first], "a first attempt passes through"
    ledger.again()
    assert [ledger.delta(d) for d in again] == expected


@pytest.mark.parametrize(
    ("sent", "text", "expected"),
    [
        ("Hello wor", "Hello world.", ("ld.", False)),
        ("Hello world.", "Hello world.", ("", False)),
        ("Hello world. ", "Hello world.", ("", False)),
        ("Hello there", "Hello world.", ("Hello world.", True)),
    ],
)
def test_the_done_message_makes_the_clients_text_its_text(sent, text, expected):
    ledger = DeltaLedger(sent=sent)
    assert ledger.done(text) == expected


def test_an_utterance_the_asr_failed_while_open_still_gets_its_end_before_it_is_forgotten():
    u = utterance()
    u.fail(now=1.0, stage="asr", code="INVALID_ARGUMENT", message="too long")
    u.release(now=1.0, post_processing=False)
    assert not u.finished, "its speech end has not come yet"
    assert u.end(2.0, now=2.0) and u.state is State.FAILED and u.finished
