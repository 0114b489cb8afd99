"""What every Dask worker that runs cimspice tasks gets: :class:`WorkerSetup` (a worker plugin).

- one BLAS thread (J workers x T threads would oversubscribe the cores);
- its share of simulator processes, ``$CIMSPICE_PROCESS_SLOTS`` = its host's cores / worker
  threads on that host (ngspice-tiled runs tiles in parallel), unless already set;
- SIGINT ignored in the workers of a private local cluster (they are also spawned with it
  blocked, :func:`.workers._spawn_env`: Ctrl-C is the main process's business, it stops them);
- a *reaper* (:mod:`.reaper`): a tiny process in its own session that waits on a pipe whose
  write end only the worker holds. When the pipe closes (the worker exited, or was SIGKILLed
  and could not clean up), it SIGKILLs every process whose environment carries the worker's tag
  (``$CIMSPICE_WORKER_TAG``, set in the worker and inherited by its simulators). ngspice runs in
  its own session (:func:`cimspice.engines.process.run_process`), so no signal to a worker
  reaches it; the tag is how a dead worker's simulators are found. Linux (/proc); a no-op
  elsewhere.

Imports dask.distributed: imported by :mod:`.workers` on first use only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from distributed import WorkerPlugin
from distributed.comm import get_address_host

from ..engines.process import PROCESS_SLOTS_ENV, available_cores
from .reaper import TAG_ENV
from .workers import BLAS_ENV

try:  # limits BLAS pools already loaded in the worker (the environment covers later loads)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - a dependency
    threadpool_limits = None

_REAPER = str(Path(__file__).with_name("reaper.py"))   # run as a script: imports no cimspice


def start_reaper(tag: str | None = None) -> subprocess.Popen | None:
    """Tag the future children of this process (``$CIMSPICE_WORKER_TAG``) and start their
    reaper; closing its stdin, or this process dying, makes it kill them. None without /proc."""
    if not os.path.isdir("/proc"):  # pragma: no cover - not Linux
        return None
    tag = tag or uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != TAG_ENV}   # the reaper is not tagged
    proc = subprocess.Popen([sys.executable, "-I", "-S", _REAPER, tag], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    os.environ[TAG_ENV] = tag
    return proc


def stop_reaper(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Close the reaper's pipe (it kills whatever still carries the tag) and wait for it."""
    if proc is None:
        return
    with contextlib.suppress(OSError):
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - a /proc scan that hangs
        proc.kill()
        proc.wait()


class WorkerSetup(WorkerPlugin):
    """The cimspice set-up of one Dask worker (module docstring). ``threads_by_host``: worker
    threads per host when the plugin was registered; ``ignore_sigint``: for the workers of a
    private local cluster."""

    name = "cimspice-worker-setup"
    idempotent = True   # a second client on the same cluster keeps the first set-up

    def __init__(self, threads_by_host: dict, ignore_sigint: bool):
        self.threads_by_host = dict(threads_by_host)
        self.ignore_sigint = ignore_sigint
        self._reaper = None

    def setup(self, worker):
        os.environ.update({k: "1" for k in BLAS_ENV})
        if threadpool_limits is not None:
            threadpool_limits(1)
        if PROCESS_SLOTS_ENV not in os.environ:
            threads = self.threads_by_host.get(get_address_host(worker.address), worker.state.nthreads)
            os.environ[PROCESS_SLOTS_ENV] = str(max(1, available_cores() // max(1, threads)))
        if self.ignore_sigint and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._reaper = start_reaper()

    def teardown(self, worker):
        stop_reaper(self._reaper)
        self._reaper = None

    def __getstate__(self):   # the reaper handle stays in the worker
        return {"threads_by_host": self.threads_by_host, "ignore_sigint": self.ignore_sigint,
                "_reaper": None}


def threads_by_host(client) -> dict:
    """Worker threads per host of a client's cluster."""
    out: dict = {}
    for addr, w in client.scheduler_info(n_workers=-1)["workers"].items():
        host = get_address_host(addr)
        out[host] = out.get(host, 0) + int(w.get("nthreads", 1))
    return out


def cimspice_version() -> str:
    """Run on each worker at connection: the cimspice it imports."""
    from .. import __version__
    return __version__
