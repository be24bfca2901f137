"""voxmesh chooses grpc's transport before grpc is imported, and leaves a choice of the user's alone."""

import ast
import os
import subprocess
import sys

from voxmesh import GRPC_EXPERIMENTS_DEFAULT

# In a fresh interpreter: what GRPC_EXPERIMENTS holds when grpc is first imported by a voxmesh service module.
PROBE = """
import builtins, os, sys
seen = []
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    if name == "grpc" and "grpc" not in sys.modules and not seen:
        seen.append(os.environ.get("GRPC_EXPERIMENTS"))
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
import voxmesh.gateway.service
print(repr(seen[0]))
"""


def grpc_experiments_at_import(**env: str) -> str:
    base = {key: value for key, value in os.environ.items() if key != "GRPC_EXPERIMENTS"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return ast.literal_eval(done.stdout.strip())  # the repr of a str or None


def test_grpc_is_imported_with_the_older_endpoints_chosen():
    assert grpc_experiments_at_import() == GRPC_EXPERIMENTS_DEFAULT == "-event_engine_client,-event_engine_listener"


def test_a_users_own_choice_is_kept_even_when_empty():
    assert grpc_experiments_at_import(GRPC_EXPERIMENTS="") == ""
    assert grpc_experiments_at_import(GRPC_EXPERIMENTS="tcp_rcv_lowat") == "tcp_rcv_lowat"
