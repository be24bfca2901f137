"""What a stream's idle timeout costs per read: a timer per read (`asyncio.timeout`) against one per stream
(`voxmesh.rpc.IdleReads`), on an event loop holding as many other timers as a busy gateway does.

    .venv/bin/python bench/idle_reads.py [--reads 200000] [--timers 600]

The gateway times every read of a client's stream (VOXMESH_GATEWAY_IDLE_TIMEOUT_S), ten a second per stream
of 100 ms chunks. Prints microseconds per read over a read with no timeout, best of three rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from voxmesh.rpc import IdleReads


class Ready:
    """An async iterator whose every message is ready at once, so only the read's own cost is timed."""

    def __aiter__(self):
        return self

    async def __anext__(self) -> int:
        return 1


async def rounds(reads: int, timers: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    others = [loop.call_later(100 + i, lambda: None) for i in range(timers)]
    stream, idle = Ready(), IdleReads(30.0)

    async def plain() -> None:
        await stream.__anext__()

    async def per_read() -> None:
        async with asyncio.timeout(30.0):
            await stream.__anext__()

    async def per_stream() -> None:
        await idle.read(stream)

    best: dict[str, float] = {}
    for _ in range(3):
        for name, read in (("no timeout", plain), ("a timer per read", per_read), ("one per stream", per_stream)):
            began = time.perf_counter()
            for index in range(reads):
                await read()
                if index % 100 == 0:
                    await asyncio.sleep(0)  # let the loop run, as a live one does between messages
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - began) / reads)
    idle.close()
    for handle in others:
        handle.cancel()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=200_000)
    parser.add_argument("--timers", type=int, default=600, help="other timers on the loop")
    args = parser.parse_args()
    best = asyncio.run(rounds(args.reads, args.timers))
    base = best["no timeout"]
    print(f"{args.reads} reads, {args.timers} other timers on the loop; microseconds per read over no timeout:")
    for name in ("a timer per read", "one per stream"):
        print(f"  {name}: {(best[name] - base) * 1e6:.2f} us")


if __name__ == "__main__":
    main()
