"""python -m voxmesh.services.asr: run the ASR service (settings from VOXMESH_ASR_* and flags)."""

from voxmesh.cli import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main("asr"))
