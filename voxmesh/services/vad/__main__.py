"""python -m voxmesh.services.vad: run the VAD service (settings from VOXMESH_VAD_* and flags)."""

from voxmesh.cli import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main("vad"))
