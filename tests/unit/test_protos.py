"""buf guards the protos: `make test` runs `buf breaking` against protos/baseline.binpb. These tests check the
guard itself, on a scratch copy of protos/."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BUF = Path(sys.executable).parent / "buf"
pytestmark = pytest.mark.skipif(not BUF.exists(), reason="buf-bin (the test extra) is not installed")


def breaking(protos: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", "--against", "baseline.binpb"], cwd=protos, capture_output=True, text=True
    )


@pytest.fixture
def protos(tmp_path: Path) -> Path:
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy)
    return copy


def edit(protos: Path, name: str, old: str, new: str) -> None:
    path = protos / "voxmesh" / "v1" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_protos_are_compatible_with_the_baseline(protos: Path):
    result = breaking(protos)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renamed_field_breaks_against_the_baseline(protos: Path):
    edit(protos, "transcription.proto", "double settled_through_s = 4;", "double settled_until_s = 4;")
    result = breaking(protos)
    assert result.returncode != 0
    assert "settled_through_s" in result.stdout


def test_a_new_field_is_compatible(protos: Path):
    edit(
        protos,
        "transcription.proto",
        "double settled_through_s = 4;",
        "double settled_through_s = 4;\n  bool added_field = 999;",
    )
    result = breaking(protos)
    assert result.returncode == 0, result.stdout + result.stderr
