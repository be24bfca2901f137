"""The committed stubs under voxmesh/v1 must be what `make protos` makes from protos/."""

from pathlib import Path

from grpc_tools import protoc

from tests.conftest import ROOT


def test_generated_stubs_match_the_protos(tmp_path: Path):
    protos = sorted((ROOT / "protos" / "voxmesh" / "v1").glob("*.proto"))
    args = ["protoc", f"-I{ROOT / 'protos'}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", *map(str, protos)]
    assert protoc.main(args) == 0
    fresh = {p.name: p.read_text() for p in (tmp_path / "voxmesh" / "v1").iterdir()}
    committed = {p.name: p.read_text() for p in (ROOT / "voxmesh" / "v1").iterdir() if p.name != "__init__.py"
                 and p.suffix in (".py", ".pyi")}
    assert set(fresh) == set(committed), "a .proto was added or removed without `make protos`"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stubs differ from protos/: {stale}; run `make protos` and commit the result"
