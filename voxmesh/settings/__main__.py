"""`python -m voxmesh.settings`: docs/settings.md (`make docs`)."""

from voxmesh.settings import reference

print(reference(), end="")
