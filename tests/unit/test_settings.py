import argparse

import pytest
from pydantic import ValidationError

from voxmesh import settings


def test_environment_and_flags_with_flags_winning(monkeypatch):
    monkeypatch.setenv("VOXMESH_ASR_BEAM_SIZE", "3")
    monkeypatch.setenv("VOXMESH_ASR_QUEUE_SIZE", "7")
    parser = argparse.ArgumentParser()
    settings.add_flags(parser, settings.AsrSettings)
    parsed = settings.from_flags(settings.AsrSettings, parser.parse_args(["--beam-size", "2"]))
    assert parsed.beam_size == 2
    assert parsed.queue_size == 7


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("VOXMESH_VAD_AGGRESSIVENESS", "9")
    with pytest.raises(ValidationError):
        settings.VadSettings()


def test_every_field_is_documented_and_every_service_has_its_prefix():
    for name, cls in settings.SETTINGS.items():
        assert cls.model_config["env_prefix"] == f"VOXMESH_{name.upper()}_"
        for field_name, field in cls.model_fields.items():
            assert field.description, f"{name}.{field_name} needs a line of documentation"


def test_default_ports_differ():
    ports = [cls().port for cls in settings.SETTINGS.values()] + [
        cls().metrics_port for cls in settings.SETTINGS.values()
    ]
    assert len(set(ports)) == len(ports)


def test_literal_settings_take_flags_of_their_type():
    parser = argparse.ArgumentParser()
    settings.add_flags(parser, settings.VadSettings)
    assert settings.from_flags(settings.VadSettings, parser.parse_args(["--frame-ms", "20"])).frame_ms == 20
    with pytest.raises(SystemExit):
        parser.parse_args(["--frame-ms", "25"])


def test_the_settings_reference_in_docs_is_current():
    from tests.conftest import ROOT

    assert (ROOT / "docs" / "settings.md").read_text() == settings.reference(), (
        "docs/settings.md is stale: run `make docs`"
    )


def test_replicas_of_the_local_stack_parse_and_refuse_what_is_not_a_service_count():
    from voxmesh.stack import parse_replicas

    assert parse_replicas("asr=2, gateway=3") == {"vad": 1, "asr": 2, "llm": 1, "gateway": 3, "web": 1}
    assert parse_replicas("") == {"vad": 1, "asr": 1, "llm": 1, "gateway": 1, "web": 1}
    for bad in ("asr", "asr=0", "tts=2", "asr=two", "asr=17"):
        with pytest.raises(ValueError, match="SERVICE=N"):
            parse_replicas(bad)


def test_a_load_window_averages_a_level_over_the_last_seconds(monkeypatch):
    from voxmesh import load

    clock = [100.0]
    monkeypatch.setattr(load.time, "perf_counter", lambda: clock[0])
    window = load.Window(window_s=10.0)
    window.set(1)  # busy from t=100
    clock[0] = 104.0
    window.set(0)  # idle from t=104
    clock[0] = 110.0
    assert window.average() == pytest.approx(0.4)
    window.add(3)  # three streams from t=110
    clock[0] = 115.0
    assert window._measure(clock[0]) == pytest.approx(1.5), "4 s idle... then 5 s of 3 streams, over 10 s"
    clock[0] = 130.0
    assert window._measure(clock[0]) == pytest.approx(3.0), "the older levels left the window"


@pytest.mark.parametrize("delay_ms", [0, 40, 100, 1280, 1600, 2320, 4800])
def test_a_realtime_delay_the_model_was_not_trained_for_is_refused_at_start_up(delay_ms):
    with pytest.raises(ValidationError, match="not a delay Voxtral Realtime was trained for"):
        settings.AsrSettings(transcription_delay_ms=delay_ms)


@pytest.mark.parametrize("delay_ms", [80, 480, 1200, 2400])
def test_the_trained_realtime_delays_are_taken(delay_ms):
    assert settings.AsrSettings(transcription_delay_ms=delay_ms).transcription_delay_ms == delay_ms
