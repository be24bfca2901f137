"""What a chain's watchdog finds overdue, so that nothing is lost silently: an utterance with no final within
`final_timeout_s` of its end, or no processed text within `processed_timeout_s` of its final, each with the status
that says why (UNAVAILABLE when no replica of the stage was reachable, else DEADLINE_EXCEEDED); and a VAD that
stayed unreachable for `final_timeout_s`, which ends the call. The chain (voxmesh/gateway/chain.py) acts on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voxmesh import errors
from voxmesh.gateway.lifecycle import ChainUtterance, State

if TYPE_CHECKING:
    from voxmesh.gateway.chain import Chain
    from voxmesh.gateway.hop import Hop

INTERVAL_S = 0.25


@dataclass(frozen=True)
class Overdue:
    utterance: ChainUtterance
    stage: str  # "asr": its final is overdue; "llm": its processed text
    code: str
    message: str


def overdue(chain: Chain, at: float) -> list[Overdue]:
    """The chain's utterances whose next answer is overdue at `at` (ENDED has its ended_at, PROCESSING its
    released_at: lifecycle.py)."""
    final_s, processed_s = chain.final_timeout_s, chain.settings.processed_timeout_s
    late = []
    for u in chain.utterances.values():
        if u.state is State.ENDED and u.ended_at is not None and at - u.ended_at > final_s:
            late.append(_why(u, "asr", chain.asr, final_s, "final transcript", "of speech end"))
        elif u.state is State.PROCESSING and u.released_at is not None and at - u.released_at > processed_s:
            late.append(_why(u, "llm", chain.llm, processed_s, "processed text", "of the final transcript"))
    return late


def _why(utterance: ChainUtterance, stage: str, hop: Hop | None, timeout: float, what: str, since: str) -> Overdue:
    message = f"no {what} within {timeout:g} s {since}"
    if hop is not None and hop.current is None:
        return Overdue(utterance, stage, "UNAVAILABLE", f"{message}: no {stage.upper()} replica was reachable")
    return Overdue(utterance, stage, "DEADLINE_EXCEEDED", message)


def check_vad(chain: Chain, at: float) -> None:
    """UNAVAILABLE once no VAD replica has been reachable for `final_timeout_s`."""
    down = chain.vad.down_since
    if down is not None and at - down > chain.settings.final_timeout_s:
        raise errors.Unavailable(
            f"no replica of the VAD service was reachable for {chain.settings.final_timeout_s:g} s; "
            "the stream cannot be segmented"
        )
