"""The chain's watchdog: which utterances are overdue, and why, and when an unreachable VAD ends the call."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from voxmesh import errors
from voxmesh.gateway import watchdog
from voxmesh.gateway.lifecycle import ChainUtterance
from voxmesh.v1 import common_pb2


def chain(*utterances: ChainUtterance, asr_up: bool = True, vad_down_since: float | None = None):
    settings = SimpleNamespace(processed_timeout_s=5.0, final_timeout_s=30.0)
    return SimpleNamespace(
        utterances={u.id: u for u in utterances},
        final_timeout_s=30.0,
        settings=settings,
        asr=SimpleNamespace(current=object() if asr_up else None),
        llm=SimpleNamespace(current=object()),
        vad=SimpleNamespace(down_since=vad_down_since),
    )


def ended(id_: int, at: float) -> ChainUtterance:
    u = ChainUtterance(id_, start_s=0.0, started_at=0.0)
    u.end(1.0, now=at)
    return u


def processing(id_: int, released_at: float) -> ChainUtterance:
    u = ended(id_, 0.0)
    u.resolve(now=released_at, final=common_pb2.FinalTranscript(text="hi"))
    u.release(now=released_at, post_processing=True)
    return u


def test_a_final_and_a_processed_text_are_overdue_after_their_timeouts_and_not_before():
    late_final, fresh, late_text = ended(1, at=0.0), ended(2, at=20.0), processing(3, released_at=40.0)
    found = watchdog.overdue(chain(late_final, fresh, late_text), at=46.0)  # type: ignore[arg-type]
    assert [(o.utterance.id, o.stage, o.code) for o in found] == [
        (1, "asr", "DEADLINE_EXCEEDED"),
        (3, "llm", "DEADLINE_EXCEEDED"),
    ]
    assert found[0].message == "no final transcript within 30 s of speech end"


def test_an_overdue_final_with_no_asr_replica_says_so():
    (found,) = watchdog.overdue(chain(ended(1, at=0.0), asr_up=False), at=31.0)  # type: ignore[arg-type]
    assert found.code == "UNAVAILABLE" and "no ASR replica was reachable" in found.message


def test_a_vad_unreachable_for_the_final_timeout_ends_the_call():
    watchdog.check_vad(chain(vad_down_since=10.0), at=39.0)  # type: ignore[arg-type]
    with pytest.raises(errors.Unavailable, match="VAD service"):
        watchdog.check_vad(chain(vad_down_since=10.0), at=41.0)  # type: ignore[arg-type]
