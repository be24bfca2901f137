"""python -m voxmesh: the voxmesh command line."""

from voxmesh.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
