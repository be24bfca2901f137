"""The whisper engine on a short piece of noise that the VAD took for speech: answered empty, not with the stock
phrase Whisper says to noise; a short word really said in noise, which Whisper scores as a likely no-speech
window yet answers confidently, is kept."""

from __future__ import annotations

from tests.conftest import ALSA, ROOT, chunks, internal_pcm, noisy, real
from tests.services.conftest import settings
from voxmesh import text
from voxmesh.audio import pcm_to_float
from voxmesh.services.asr.engines import AsrRequest, whisper_decode
from voxmesh.services.asr.engines import whisper as whisper_engine
from voxmesh.services.vad.segmenter import SpeechAudio
from voxmesh.services.vad.service import VadServicer
from voxmesh.settings import AsrSettings, VadSettings

BABBLE_TAIL = ROOT / "samples" / "babble_tail.flac"  # samples/make_babble_tail.sh


def pieces(pcm: bytes) -> list[bytes]:
    """The audio of each utterance the VAD's default segmenter cuts, in order."""
    segmenter, found = VadServicer(VadSettings()).segmenter(), {}
    for event in [e for chunk in chunks(pcm, 3200) for e in segmenter.push(chunk)] + segmenter.flush():
        if isinstance(event, SpeechAudio):
            found[event.utterance] = found.get(event.utterance, b"") + event.pcm
    return list(found.values())


def test_a_short_piece_of_babble_is_answered_empty_not_with_a_stock_phrase(monkeypatch):
    whisper = whisper_engine.WhisperEngine(settings(AsrSettings))
    request = AsrRequest(pcm_to_float(internal_pcm(BABBLE_TAIL)), "en", final=True)
    assert whisper.transcribe([request])[0].text == ""
    monkeypatch.setattr(whisper_decode, "NOISE_UNDER_S", 0.0)
    said = whisper.transcribe([request])[0].text
    assert text.words(said), "without the noise test Whisper answers the babble with words"


def test_short_words_really_said_in_noise_are_kept():
    whisper = whisper_engine.WhisperEngine(settings(AsrSettings))
    pcm = noisy(real(ALSA), snr_db=10)
    front, center = (pcm_to_float(piece) for piece in pieces(pcm)[:2])
    segments, _ = whisper.model.transcribe(center, language="en", without_timestamps=True, vad_filter=False)
    assert next(iter(segments)).no_speech_prob > whisper_decode.NOISE_NO_SPEECH, "one of the two conditions holds"
    for piece, word in ((front, "front"), (center, "center")):
        assert len(piece) < whisper_decode.NOISE_UNDER_S * 16000
        assert text.words(whisper.transcribe([AsrRequest(piece, "en", final=True)])[0].text) == [word]
