"""Generate the stubs under voxmesh/v1 from the .proto files: `make protos` runs this; tests/unit/test_stubs.py
runs it into a scratch folder and compares.

Messages: protoc's Python code and .pyi; services: grpcio-tools' code and mypy-protobuf's typed .pyi.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent


def generate(out: Path) -> None:
    plugin = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    if not plugin.exists():
        raise SystemExit(f"{plugin} is missing: install the test extra (pip install -e '.[test]')")
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"--plugin=protoc-gen-mypy_grpc={plugin}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *map(str, sorted((PROTOS / "voxmesh" / "v1").glob("*.proto"))),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTOS.parent)
