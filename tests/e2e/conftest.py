"""A local stack of real service processes, started as `voxmesh up` starts it, shared by the e2e tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from voxmesh.stack import LocalStack

VOXMESH = [sys.executable, "-m", "voxmesh"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("stack-logs")
    local = LocalStack(gateway_port=0, log_dir=logs)
    try:
        asyncio.run(local.start())
    except BaseException:
        local.stop()
        raise
    yield local
    local.stop()
    for member in local.members:
        assert member.process.returncode == 0, (
            f"{member.name} stopped with {member.process.returncode}:\n{member.log_tail()}"
        )


def env(**extra) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
