"""Loaded by each service of `bench/mesh_scale.py --gc-pause` (this folder leads its PYTHONPATH): on SIGUSR1 the
service runs two full collections of the cyclic garbage collector on its main thread, where its event loop
runs, and times them: one as the service runs (what start-up made is frozen out of the collector's sight,
voxmesh/runtime.py), then one with start-up's objects back in sight (gc.unfreeze, as before the freeze), after
which they are frozen again. Each collection stops every stream of the process for its length. The times go to
$VOXMESH_BENCH_GC_LOG/<pid> as JSON."""

import gc
import json
import os
import signal
import sys
import time


def _collect() -> dict:
    tracked = len(gc.get_objects())
    began, cpu = time.perf_counter(), time.thread_time()
    gc.collect()
    return {"seconds": time.perf_counter() - began, "cpu_seconds": time.thread_time() - cpu, "walked": tracked}


def _pause(signum, frame) -> None:
    frozen = gc.get_freeze_count()
    as_it_runs = _collect()
    gc.unfreeze()
    unfrozen = _collect()
    if frozen:
        gc.freeze()
    record = {"argv": sys.argv, "frozen": frozen, "as_it_runs": as_it_runs, "unfrozen": unfrozen}
    path = os.path.join(os.environ["VOXMESH_BENCH_GC_LOG"], str(os.getpid()))
    with open(path + ".part", "w") as out:
        json.dump(record, out)
    os.replace(path + ".part", path)  # whole when the bench sees it


if os.environ.get("VOXMESH_BENCH_GC_LOG"):
    signal.signal(signal.SIGUSR1, _pause)
