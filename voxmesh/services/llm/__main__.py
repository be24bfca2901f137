"""python -m voxmesh.services.llm: run the LLM service (settings from VOXMESH_LLM_* and flags)."""

from voxmesh.cli import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main("llm"))
