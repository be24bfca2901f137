import json

from voxmesh.events import EventDecoder
from voxmesh.v1 import common_pb2
from voxmesh.v1 import transcription_pb2 as pb


def event(**kwargs) -> pb.TranscriptionEvent:
    return pb.TranscriptionEvent(utterance_id=3, start_s=1.5, end_s=2.5, **kwargs)


def test_every_event_decodes_to_a_typed_event_with_the_json_fields_the_cli_prints():
    decode = EventDecoder()
    decoded = [
        decode(event(speech_started=pb.SpeechStarted())),
        decode(event(speech_ended=pb.SpeechEnded(reason=common_pb2.SPEECH_END_REASON_SILENCE))),
        decode(event(partial=common_pb2.PartialTranscript(text="hel", stability=0.5))),
        decode(event(final=common_pb2.FinalTranscript(text="hello", engine="whisper:tiny.en", engine_compute_s=0.4))),
        decode(event(processed=common_pb2.ProcessedText(delta="Hel"))),
        decode(event(processed=common_pb2.ProcessedText(delta="lo."))),
        decode(
            event(
                processed=common_pb2.ProcessedText(
                    done=True, text="Hello.", outcome=common_pb2.PROCESSING_OUTCOME_PROCESSED
                )
            )
        ),
        decode(event(error=common_pb2.UtteranceError(stage="asr", code="RESOURCE_EXHAUSTED", message="full"))),
    ]
    dicts = [json.loads(json.dumps(e.to_dict())) for e in decoded]
    assert [d["type"] for d in dicts] == [
        "speech_start",
        "speech_end",
        "partial",
        "final",
        "processed",
        "processed",
        "processed",
        "error",
    ]
    assert all(d["utterance"] == 3 and d["start_s"] == 1.5 and d["end_s"] == 2.5 for d in dicts)
    assert dicts[1]["reason"] == "silence"
    assert dicts[2]["text"] == "hel" and dicts[3]["text"] == "hello"
    assert [d["text"] for d in dicts[4:7]] == ["Hel", "Hello.", "Hello."], "processed text accumulates"
    assert dicts[6]["done"] and dicts[6]["outcome"] == "processed"
    assert dicts[7]["code"] == "RESOURCE_EXHAUSTED"
