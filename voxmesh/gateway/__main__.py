"""python -m voxmesh.gateway: run the gateway (settings from VOXMESH_GATEWAY_* and flags)."""

from voxmesh.cli import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main("gateway"))
