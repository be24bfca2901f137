"""`pip install voxmesh` without the server extra: the client library, its CLI commands and the stubs, in a fresh
venv, against the running stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import JFK_TEXT, ROOT
from voxmesh import text

pytestmark = pytest.mark.e2e

SERVER_ONLY = [
    "faster_whisper",
    "ctranslate2",
    "onnxruntime",
    "av",
    "webrtcvad",
    "torch",
    "pydantic",
    "prometheus_client",
]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this checkout installed, and nothing else asked for."""
    work = tmp_path_factory.mktemp("client-install")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT), "-w", str(work)])
    (wheel,) = work.glob("voxmesh-*.whl")
    venv = work / "venv"
    run([sys._base_executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)])
    return venv


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_client_install_has_no_server_dependencies(client_venv: Path):
    python = str(client_venv / "bin" / "python")
    probe = (
        "import importlib.util, json, sys;"
        "import voxmesh.client, voxmesh.v1.transcription_pb2_grpc;"
        f"print(json.dumps([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)]))"
    )
    present = json.loads(run([python, "-c", probe], cwd=client_venv).stdout)
    assert present == [], f"the client-only install pulled in server packages: {present}"
    assert not list((client_venv / "lib").glob("python*/site-packages/services")), "no top-level `services` package"
    assert not list((client_venv / "lib").glob("python*/site-packages/gateway")), "no top-level `gateway` package"
    assert list((client_venv / "lib").glob("python*/site-packages/voxmesh/py.typed")), "the package says it is typed"


def test_the_client_install_checks_health_and_transcribes_through_a_running_gateway(
    client_venv: Path, stack, jfk_path: Path
):
    voxmesh = str(client_venv / "bin" / "voxmesh")
    health = run([voxmesh, "health", "--gateway", stack.gateway], cwd=client_venv)
    assert health.stdout.strip().endswith("SERVING")

    result = run(
        [voxmesh, "transcribe", str(jfk_path), "--gateway", stack.gateway, "--pace", "fast", "--json"],
        cwd=client_venv,
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    finals = [e["text"] for e in events if e.get("type") == "final"]
    assert finals, result.stdout
    assert text.wer(JFK_TEXT, " ".join(finals)) < 0.2


def test_the_client_install_says_that_a_local_stack_needs_the_server_extra(client_venv: Path, jfk_path: Path):
    voxmesh = str(client_venv / "bin" / "voxmesh")
    result = subprocess.run([voxmesh, "transcribe", str(jfk_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "voxmesh[server]" in result.stderr
