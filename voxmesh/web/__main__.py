"""python -m voxmesh.web: run the web service (settings from VOXMESH_WEB_* and flags)."""

from voxmesh.cli import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main("web"))
