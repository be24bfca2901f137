"""`voxmesh transcribe` with the stream's asks, against the shared stack of real processes: captions cut at
word timings, words in --json, a phrase hint, and a raw G.711 file."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.conftest import ROOT, SAMPLE, SAMPLE_TEXT
from tests.e2e.conftest import VOXMESH, env
from voxmesh import text

pytestmark = pytest.mark.e2e


def transcribe(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*VOXMESH, "transcribe", "--gateway", stack.gateway, "--pace", "fast", "--no-post-processing", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(),
    )


def test_srt_captions_of_the_sample_are_numbered_timed_and_say_its_text(stack):
    done = transcribe(stack, str(SAMPLE), "--format", "srt")
    assert done.returncode == 0, done.stderr
    cues = done.stdout.strip().split("\n\n")
    times = [re.fullmatch(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)", c, re.S) for c in cues]
    assert all(times) and [int(m.group(1)) for m in times] == list(range(1, len(cues) + 1))
    assert [m.group(2) for m in times] == sorted(m.group(2) for m in times)
    assert text.wer(SAMPLE_TEXT, " ".join(m.group(4) for m in times)) <= 0.10


def test_json_finals_carry_words_in_the_streams_offsets(stack):
    done = transcribe(stack, str(SAMPLE), "--json", "--words")
    finals = [e for e in map(json.loads, done.stdout.splitlines()) if e["type"] == "final"]
    assert len(finals) == 4
    for final in finals:
        assert final["words"] and final["start_s"] - 0.3 <= final["words"][0]["start_s"] <= final["end_s"]


def test_a_phrase_and_a_raw_g711_file(stack):
    hinted = transcribe(stack, str(ROOT / "samples" / "names.flac"), "--phrase", "Siobhan Quaid:5")
    assert "Siobhan Quaid" in hinted.stdout, hinted.stdout
    g711 = transcribe(stack, str(ROOT / "samples" / "codecs" / "jfk.ulaw"), "--encoding", "mulaw")
    assert g711.returncode == 0 and "ask not what your country" in g711.stdout.lower(), g711.stdout
