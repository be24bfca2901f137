"""A realtime session's settings as each dialect sends them, and the session as each describes it back
(the dialects: voxmesh/web/realtime.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

RATES = (16000, 24000)  # PCM16 rates taken: OpenAI's 24 kHz, and 16 kHz (vLLM's, and the mesh's own)


class BadEvent(Exception):
    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class SessionSettings:
    dialect: str = ""  # "ga", "beta" or "vllm"; "" until the first update
    rate: int = 24000
    language: str = ""
    prompt: str = ""
    end_silence_ms: int = 0  # 0: the server's
    configured: bool = False  # an update came: audio may be appended

    def updated(self, kind: str, event: dict, *, started: bool) -> SessionSettings:
        """The settings after a session.update (or transcription_session.update); the first one picks the
        dialect. Once audio has started, only an update that changes nothing is taken."""
        session = event.get("session")
        dialect = self.dialect
        if not dialect:
            if kind == "transcription_session.update":
                dialect = "beta"
            elif isinstance(session, dict):
                dialect = "ga"
            else:
                dialect = "vllm"
        if session is not None and not isinstance(session, dict):
            raise BadEvent("invalid_session", "`session` is an object", "session")
        session = session or {}
        rate, silence = self.rate, self.end_silence_ms
        if dialect == "beta":
            fmt = session.get("input_audio_format", "pcm16")
            if fmt != "pcm16":
                raise BadEvent("unsupported_format", f"input_audio_format {fmt!r} is not taken; send pcm16", "session")
            transcription = session.get("input_audio_transcription") or {}
            turn = session.get("turn_detection", {})
        elif dialect == "ga":
            audio_in = (session.get("audio") or {}).get("input") or {}
            fmt = audio_in.get("format") or {}
            if fmt.get("type", "audio/pcm") != "audio/pcm":
                raise BadEvent(
                    "unsupported_format",
                    f"audio format {str(fmt.get('type'))[:32]!r} is not taken; send audio/pcm (PCM16, mono)",
                    "session.audio.input.format",
                )
            rate = fmt.get("rate", rate)
            transcription = audio_in.get("transcription") or {}
            turn = audio_in.get("turn_detection", {})
        else:  # vLLM: 16 kHz PCM16, the model at the top level
            rate, transcription, turn = 16000, {"model": event.get("model", "voxmesh")}, {}
        if rate not in RATES:
            raise BadEvent(
                "unsupported_rate",
                f"a rate of {rate} Hz is not taken; send PCM16 at {' or '.join(str(r) for r in RATES)} Hz",
                "session.audio.input.format.rate",
            )
        if turn is None:
            silence = 5000  # no turn detection: the client commits; the VAD waits as long as it may
        elif isinstance(turn, dict):
            silence = int(turn.get("silence_duration_ms") or 0)
        new = SessionSettings(
            dialect, rate, transcription.get("language") or "", transcription.get("prompt") or "", silence, True
        )
        if started and replace(new, dialect=self.dialect) != self:
            raise BadEvent(
                "session_started",
                "the audio format, language, prompt and turn detection are fixed once audio has started; open a new "
                "session to change them",
                "session",
            )
        return new

    def describe(self) -> dict:
        """The session as the dialect describes it."""
        transcription = {"model": "voxmesh", "language": self.language or None, "prompt": self.prompt}
        turn = {"type": "server_vad", "silence_duration_ms": self.end_silence_ms or 500, "prefix_padding_ms": 300}
        if self.dialect == "beta":
            return {
                "object": "realtime.transcription_session",
                "input_audio_format": "pcm16",
                "input_audio_transcription": transcription,
                "turn_detection": turn,
            }
        return {
            "type": "transcription",
            "object": "realtime.session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "transcription": transcription,
                    "turn_detection": turn,
                }
            },
        }

    def event(self, what: str) -> str:
        """The name of the session's `created` or `updated` event in the dialect."""
        return f"transcription_session.{what}" if self.dialect == "beta" else f"session.{what}"
