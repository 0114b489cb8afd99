"""Functions the tests run on Dask workers (importable there by name: the local workers inherit
the test process's sys.path, the `dask worker` of conftest.py gets tests/ on PYTHONPATH)."""

from __future__ import annotations

import os
import signal


def worker_env(_item) -> dict:
    """What a task sees of its worker's set-up."""
    from threadpoolctl import threadpool_info

    import dask

    status = open("/proc/self/status").read().splitlines()
    mask = {k: int(v.split()[1], 16) for k, v in ((ln.split(":")[0], ln) for ln in status)
            if k in ("SigBlk", "SigIgn")}
    return {"pid": os.getpid(),
            "blas_env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                        "MKL_NUM_THREADS")},
            "blas_threads": [i["num_threads"] for i in threadpool_info()],
            "slots": os.environ.get("CIMSPICE_PROCESS_SLOTS"),
            "tag": os.environ.get("CIMSPICE_WORKER_TAG"),
            "sigint_blocked": bool(mask["SigBlk"] & (1 << (signal.SIGINT - 1))),
            "sigint_ignored": bool(mask["SigIgn"] & (1 << (signal.SIGINT - 1))),
            "profiler": dask.config.get("distributed.worker.profile.enabled")}


def square(x: int) -> int:
    return x * x


def square_or_die(x: int) -> int:
    """Kills its worker process on item 30 (as a sample that crashes its worker would)."""
    if x == 30:
        os._exit(1)
    return x * x
