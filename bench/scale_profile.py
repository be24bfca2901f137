"""mesh_scale.py --profile: py-spy on every service of a running stack at once, and each one's top functions.

The raw stacks (py-spy's collapsed format) stay in the folder given; the summary ranks functions by own time
and by time anywhere in the stack, leaving out the event loop's and the interpreter's own frames."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

from voxmesh.stack import LocalStack

OUTER = re.compile(r"\((runpy|<frozen runpy>|runners|base_events|events|threading|selectors|thread|tasks)\.py\)$|\(<")


async def profile(stack: LocalStack, folder: Path, seconds: float) -> dict[str, tuple[int, list[str]]]:
    """py-spy on every service at once for `seconds` (the threads holding the GIL: the Python work, and the
    C calls made with it held, such as grpc's); per service, its top functions."""
    spy = py_spy(folder)
    runs = {}
    for member in stack.members:
        out = folder / f"{member.name}.txt"
        runs[member.name] = (
            out,
            await asyncio.create_subprocess_exec(
                spy, "record", "--pid", str(member.process.pid), "--duration", str(int(seconds)), "--rate", "100",
                "--format", "raw", "--output", str(out), "--nonblocking", "--gil",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            ),
        )  # fmt: skip
    summaries = {}
    for name, (out, process) in runs.items():
        await process.wait()
        if out.exists():
            summaries[name] = top_functions(out)
    return summaries


def py_spy(folder: Path) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install '.[bench]'")
    folder.mkdir(parents=True, exist_ok=True)
    return spy


def top_functions(raw: Path, count: int = 8) -> tuple[int, list[str]]:
    """From py-spy's collapsed stacks: the functions with the most samples on top (own time) and anywhere
    in the stack (inclusive), as shares of all samples."""
    own: dict[str, int] = {}
    inside: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";")]  # fmt: skip
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inside[frame] = inside.get(frame, 0) + samples
    lines = ["own time:"]
    lines += [f"  {n / total:5.1%} {f}" for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:count]]
    lines.append("inclusive, the project's functions and grpc's:")
    ranked = [(f, n) for f, n in sorted(inside.items(), key=lambda kv: -kv[1]) if not OUTER.search(f)]
    lines += [f"  {n / total:5.1%} {f}" for f, n in ranked[:count]]
    return total, lines
