"""The committed stubs under voxmesh/v1 must be what `make protos` makes from protos/."""

import importlib.util
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("generate_protos", ROOT / "protos" / "generate.py")
assert spec is not None and spec.loader is not None
generate_protos = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate_protos)


def test_generated_stubs_match_the_protos(tmp_path: Path):
    generate_protos.generate(tmp_path)
    fresh = {p.name: p.read_text() for p in (tmp_path / "voxmesh" / "v1").iterdir()}
    committed = {
        p.name: p.read_text()
        for p in (ROOT / "voxmesh" / "v1").iterdir()
        if p.name not in ("__init__.py", "__pycache__") and p.suffix in (".py", ".pyi")
    }
    assert set(fresh) == set(committed), "a .proto was added or removed without `make protos`"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stubs differ from protos/: {stale}; run `make protos` and commit the result"
