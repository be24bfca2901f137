"""Print the project's runtime requirements, one per line, from pyproject.toml (no build, no install).

The Dockerfiles install these in a layer of their own before the source is copied, so that editing the code
does not re-download the dependencies. Extras are resolved, including an extra that names another one
(`voxmesh[voxtral]`); an extra that pyproject.toml does not define is an error, not a silent no-op.

    python docker/requirements.py pyproject.toml [EXTRA ...]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    project = pyproject["project"]
    name = project["name"].lower()
    optional = project.get("optional-dependencies", {})
    out: list[str] = []
    seen: set[str] = set()

    def add(reqs: list[str]) -> None:
        for req in reqs:
            own = re.match(rf"^\s*{re.escape(name)}\s*\[([^\]]+)\]\s*$", req, re.IGNORECASE)
            if own:
                expand([e.strip() for e in own.group(1).split(",")])
            elif req not in out:
                out.append(req)

    def expand(names: list[str]) -> None:
        for extra in names:
            if extra in seen:
                continue
            if extra not in optional:
                defined = ", ".join(sorted(optional)) or "none"
                raise SystemExit(f"pyproject.toml defines no extra {extra!r}; it has: {defined}")
            seen.add(extra)
            add(optional[extra])

    add(project.get("dependencies", []))
    expand([e for arg in extras for e in arg.replace(",", " ").split()])
    return out


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    pyproject = tomllib.loads(Path(argv[0]).read_text())
    print("\n".join(requirements(pyproject, argv[1:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
