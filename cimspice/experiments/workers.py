"""Worker processes for engine tasks: a pool that survives killed workers, signals, progress.

:class:`WorkerSet` runs a top-level function on jobs across spawned processes, one private
pipe and one job in flight per worker. Ctrl-C is the main process's business (workers ignore
SIGINT); SIGTERM makes a worker kill its ngspice children and unwind its atomic writes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..engines.process import PROCESS_SLOTS_ENV, available_cores

try:  # optional (not a dependency): limits BLAS pools that are already loaded
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - the environment variables still apply
    threadpool_limits = None

_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_jobs() -> int:
    """Worker processes by default: the cores this process may run on."""
    return available_cores()


def progress(total: int, desc: str, enabled: bool | None):
    """A tqdm bar on stderr; ``enabled`` None: only on a TTY and not under CI."""
    if enabled is None:
        enabled = sys.stderr.isatty() and not os.environ.get("CI")
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


# ------------------------------------------------------------------------------------------
# Signals and threads
# ------------------------------------------------------------------------------------------

def _kill_children(pid: int | None = None) -> None:
    """SIGKILL the child processes of ``pid`` (default: this process). ngspice runs in its
    own session, so a signal to its worker does not reach it. Linux /proc; no-op elsewhere."""
    parent = os.getpid() if pid is None else pid
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                os.kill(int(d.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def _on_term(signum, frame):
    _kill_children()
    raise SystemExit(128 + signum)  # unwinds atomic writes: no temp file left behind


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    signal.signal(signal.SIGTERM, _on_term)
    if threadpool_limits is not None:
        threadpool_limits(1)


@contextlib.contextmanager
def _single_thread_blas():
    """Spawned workers read these at import: one BLAS thread each, or J workers x T threads
    oversubscribe the cores and the --jobs speed-up suffers."""
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    os.environ.update({k: "1" for k in _BLAS_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------------------
# The pool
# ------------------------------------------------------------------------------------------

def _worker_loop(conn, func: Callable) -> None:
    """Worker process: ``func(job)`` for each job received on ``conn`` until None or the main
    process is gone; each return value is sent back."""
    _worker_init()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the main process is gone (e.g. SIGKILLed): stop quietly
        if job is None:
            return
        summary = func(job)
        try:
            conn.send(summary)
        except OSError:
            return


@dataclass(eq=False)
class _Worker:
    proc: multiprocessing.process.BaseProcess
    conn: object


class WorkerSet:
    """``n`` worker processes running ``func`` (a top-level, importable function of one job
    that returns a small picklable value, never None), with one private pipe each and one job
    in flight per worker.

    No lock is shared between processes, so any worker can be killed at any moment without
    blocking the others; multiprocessing.Pool can hang in terminate() when a worker dies while
    holding its task-queue lock (seen here with --strict).
    """

    def __init__(self, n: int, func: Callable):
        self.ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited locks
        self.func = func
        # simulator processes each worker may run at once (ngspice-tiled runs tiles in parallel):
        # workers x slots never exceeds the cores
        self.slots = str(max(1, default_jobs() // max(1, n)))
        self.workers = [self._start() for _ in range(n)]

    def _start(self) -> _Worker:
        parent, child = self.ctx.Pipe()
        saved = os.environ.get(PROCESS_SLOTS_ENV)
        os.environ[PROCESS_SLOTS_ENV] = self.slots
        try:
            with _single_thread_blas():
                proc = self.ctx.Process(target=_worker_loop, args=(child, self.func), daemon=True)
                proc.start()
        finally:
            if saved is None:
                os.environ.pop(PROCESS_SLOTS_ENV, None)
            else:
                os.environ[PROCESS_SLOTS_ENV] = saved
        child.close()
        return _Worker(proc, parent)

    def _replace(self, w: _Worker) -> _Worker:
        self._kill([w])
        new = self._start()
        self.workers[self.workers.index(w)] = new
        return new

    def map_unordered(self, jobs: list):
        """Yield ``(job, func(job), '')`` as jobs finish; a worker that dies yields
        ``(job, None, '<one-line error>')`` and is replaced."""
        pending = list(reversed(jobs))
        idle, busy = list(self.workers), {}
        while pending or busy:
            while idle and pending:
                w, job = idle.pop(), pending.pop()
                try:
                    w.conn.send(job)
                    busy[w] = job
                except OSError:  # died while idle: retry the job on a fresh worker
                    pending.append(job)
                    idle.append(self._replace(w))
            handles = {}
            for w in busy:
                handles[w.conn] = w
                handles[w.proc.sentinel] = w
            for h in wait(list(handles)):
                w = handles[h]
                if w not in busy:
                    continue  # both its pipe and its sentinel were ready
                job = busy.pop(w)
                value = None
                try:
                    if w.conn.poll():
                        value = w.conn.recv()
                except (EOFError, OSError):  # pipe closed: the worker died
                    pass
                if value is not None:
                    idle.append(w)
                    yield job, value, ""
                    continue
                w.proc.join(timeout=5)
                code = w.proc.exitcode
                idle.append(self._replace(w))
                yield job, None, f"WorkerDied: worker process exited with code {code}"

    def close(self) -> None:
        """Normal end: ask every worker to stop."""
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self.workers:
            w.proc.join(timeout=10)
        self._kill([w for w in self.workers if w.proc.is_alive()])

    def terminate(self, grace: float = 3.0) -> None:
        """Abnormal end: SIGTERM (a worker kills its ngspice and unwinds its atomic writes),
        then SIGKILL whatever is still alive after ``grace`` seconds."""
        for w in self.workers:
            if w.proc.is_alive():
                w.proc.terminate()
        deadline = time.monotonic() + grace
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        self._kill(self.workers)

    @staticmethod
    def _kill(workers) -> None:
        for w in workers:
            if w.proc.is_alive():
                _kill_children(w.proc.pid)
                w.proc.kill()
            w.proc.join(timeout=10)
            w.conn.close()
