"""Engine tasks on dask.distributed: local worker processes or an existing cluster, one code path.

:class:`Cluster` holds a :class:`distributed.Client`, either on a private
:class:`distributed.LocalCluster` (``jobs`` worker processes, one thread each, started on first
use) or connected to a running scheduler (``scheduler='tcp://host:port'``, connected at once so
that an unreachable one is a one-line error before anything is written), and runs a top-level
function over items with :meth:`Cluster.map_unordered` (``client.submit`` + ``as_completed``).
A task whose worker dies is rescheduled by Dask on another worker; one that has killed
``distributed.scheduler.allowed-failures`` + 1 workers is reported as failed.

Every worker gets :class:`~.worker_setup.WorkerSetup` (a Dask worker plugin): one BLAS thread,
its share of simulator processes, and a reaper that kills its simulators when it dies, even by
SIGKILL. Local workers ignore SIGINT: Ctrl-C is the main process's business (it stops the
workers; finished sample files are kept, since only the main process writes them).

dask.distributed is imported on first use (it takes a second; most commands never need it).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

from ..engines.process import available_cores
from ..errors import CimspiceError, InputError, one_line

CONNECT_TIMEOUT_S = 10.0   # --scheduler: connect, and see a first worker, within this
CLOSE_TIMEOUT_S = 10.0     # normal end: workers close within this
ABORT_TIMEOUT_S = 2.0      # Ctrl-C or an error: workers stop within this, then are SIGKILLed
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_MAX_BATCH = 64            # items per task at most (map_unordered's batch_s)
_RECOUNT_S = 5.0           # map_unordered counts the cluster's threads again this often


def default_jobs() -> int:
    """Local worker processes by default: the cores this process may run on."""
    return available_cores()


def progress(total: int, desc: str, enabled: bool | None):
    """A tqdm bar on stderr; ``enabled`` None: only on a TTY and not under CI."""
    if enabled is None:
        enabled = sys.stderr.isatty() and not os.environ.get("CI")
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


# ------------------------------------------------------------------------------------------
# The cluster
# ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_dask():
    """Dask's own log lines (worker restarts, results gathered again, connections closed at the
    end) stay off the terminal: what matters reaches the user through the futures, as one line.
    Dask's configuration gives some of its loggers their own level: each is raised."""
    loggers = [logging.getLogger("distributed")] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
        if name.startswith("distributed.")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# Local workers: no statistical profiler (a thread sampling every task's stack: up to 2x the
# twin's time per sample here) and glibc's default trim threshold (Dask's 64 KiB one returns
# NumPy temporaries to the OS after each use: +20 % CPU for the twin). The workers of an
# existing cluster run with the configuration their owner gave them.
_LOCAL_DASK_CONFIG = {"distributed.worker.profile.enabled": False,
                      "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def _spawn_env():
    """While local workers are spawned: their Dask configuration, one BLAS thread (read at
    import, before any plugin runs) and SIGINT blocked in this thread. The cluster's event-loop
    thread, created now, inherits that mask, and so do the threads that spawn the workers (now
    and when one is restarted) and the workers themselves: a Ctrl-C, even during their start-up,
    reaches the main process only, which stops them. Unblocked here afterwards, a Ctrl-C
    pressed meanwhile is delivered then, not lost."""
    import dask
    from multiprocessing import resource_tracker

    # Started once per process by the first spawn, which then *unblocks* SIGINT in the calling
    # thread (the cluster's loop thread): start it here, before blocking.
    resource_tracker.ensure_running()
    saved = {k: os.environ.get(k) for k in BLAS_ENV}
    os.environ.update({k: "1" for k in BLAS_ENV})
    masks = hasattr(signal, "pthread_sigmask")   # POSIX
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masks else None
    try:
        with dask.config.set(_LOCAL_DASK_CONFIG):
            yield
    finally:
        if masks:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Cluster:
    """Where engine tasks run. ``Cluster(jobs=N)``: N local worker processes with one thread
    each, started on first use; ``Cluster(scheduler='tcp://host:port')``: an existing cluster,
    connected now (InputError within :data:`CONNECT_TIMEOUT_S` if it cannot be reached or has no
    worker). Use it as a context manager: a normal exit closes it, an exception (Ctrl-C
    included) stops the local workers at once (:meth:`abort`)."""

    def __init__(self, jobs: int | None = None, scheduler: str | None = None):
        if jobs is not None and jobs < 1:
            raise InputError(f"--jobs {jobs}: need at least 1 worker process")
        if jobs is not None and scheduler is not None:
            raise InputError(f"--jobs {jobs} with --scheduler {scheduler}: the cluster's workers "
                             f"set the parallelism; give one of them")
        self.jobs = jobs
        self.scheduler = scheduler
        self.client = None
        self._local = None
        self._quiet = contextlib.ExitStack()
        self._quiet.enter_context(_quiet_dask())
        if scheduler is not None:
            try:
                self._connect(scheduler)
            except BaseException:
                self._quiet.close()
                raise

    # -- set-up ---------------------------------------------------------------------------

    def _connect(self, address: str) -> None:
        import distributed

        hint = ("start one with `dask scheduler`, then workers with `dask worker ADDRESS`, or drop "
                "--scheduler to run on local worker processes")
        bad = InputError(f"--scheduler {address!r}: not a scheduler address; give tcp://host:port")
        if not isinstance(address, str) or not address.strip() or any(c.isspace() for c in address):
            raise bad
        try:  # a bad scheme fails here, not in Client (which then hangs 20 s in __del__)
            scheme, loc = distributed.comm.parse_address(address)
            distributed.comm.registry.get_backend(scheme)
            if scheme in ("tcp", "tls", "ws", "wss"):
                distributed.comm.parse_host_port(loc)
        except (ValueError, TypeError) as exc:
            raise InputError(f"--scheduler {address}: not a scheduler address ({one_line(exc)}); "
                             f"give tcp://host:port") from None
        if not loc:
            raise bad
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise InputError(f"--scheduler {address}: cannot connect within {CONNECT_TIMEOUT_S:g} s "
                             f"({one_line(exc)}); {hint}") from None
        try:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError):
                raise InputError(f"--scheduler {address}: the scheduler has no worker (none joined "
                                 f"within {CONNECT_TIMEOUT_S:g} s); start workers with "
                                 f"`dask worker {address}`") from None
            self._setup_workers(client, ignore_sigint=False, where=f"--scheduler {address}")
        except BaseException:
            with contextlib.suppress(Exception):
                client.close(timeout=ABORT_TIMEOUT_S)
            raise
        self.client = client

    @staticmethod
    def _setup_workers(client, *, ignore_sigint: bool, where: str) -> None:
        """Register :class:`~.worker_setup.WorkerSetup` and check that every worker imports the
        same cimspice version (tasks are pickled by reference to its functions)."""
        from .. import __version__
        from . import worker_setup as ws

        plugin = ws.WorkerSetup(ws.threads_by_host(client), ignore_sigint)
        try:
            replies = client.register_plugin(plugin)
            versions = client.run(ws.cimspice_version)
        except Exception as exc:  # e.g. no cimspice on a worker: the plugin cannot be unpickled
            raise CimspiceError(f"{where}: the workers cannot run cimspice ({one_line(exc)}); install "
                                f"cimspice {__version__} where they run") from None
        for addr, r in (replies or {}).items():
            if isinstance(r, dict) and r.get("status") == "error":
                raise CimspiceError(f"{where}: worker {addr} cannot set up cimspice "
                                    f"({r.get('exception_text', r)}); install cimspice "
                                    f"{__version__} there")
        for addr, v in versions.items():
            if v != __version__:
                raise CimspiceError(f"{where}: worker {addr} runs cimspice {v}, this is "
                                    f"{__version__}; install the same version on every worker")

    def _start_local(self, n: int) -> None:
        import distributed

        try:
            with _spawn_env():
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                    memory_limit=0, silence_logs=logging.CRITICAL, dashboard_address=None,
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
        except Exception as exc:   # e.g. spawned from a script without a __main__ guard
            raise CimspiceError(f"local workers failed to start ({one_line(exc)}); a script that "
                                f"calls cimspice.evaluate must do it under `if __name__ == "
                                f"'__main__':` (each worker process imports the script)") from None
        try:
            client = distributed.Client(cluster, set_as_default=False)
            self._setup_workers(client, ignore_sigint=True, where="local workers")
        except BaseException:
            with contextlib.suppress(Exception):
                cluster.close(timeout=ABORT_TIMEOUT_S)
            raise
        self._local, self.client = cluster, client

    def ensure(self, n_tasks: int | None = None) -> None:
        """Start the local workers (``min(jobs, n_tasks)`` of them) unless already connected."""
        if self.client is None:
            jobs = self.jobs or default_jobs()
            self._start_local(max(1, min(jobs, n_tasks or jobs)))

    @property
    def n_threads(self) -> int:
        """Tasks the cluster runs at once (its workers' threads; 0 before it is started)."""
        if self.client is None:
            return 0
        return sum(int(w.get("nthreads", 1))
                   for w in self.client.scheduler_info(n_workers=-1)["workers"].values())

    def worker_pids(self) -> list[int]:
        """PIDs of the local worker processes (empty for an existing cluster)."""
        if self._local is None:
            return []
        pids = []
        for nanny in list(self._local.workers.values()):
            proc = getattr(nanny, "process", None)
            pid = getattr(proc, "pid", None) if proc is not None else None
            if pid:
                pids.append(pid)
        return pids

    # -- running --------------------------------------------------------------------------

    def map_unordered(self, func: Callable, items: list, keys: Iterable[str] | None = None,
                      window: int | None = None, batch_s: float = 0.0) -> Iterator[tuple]:
        """Run ``func`` (a top-level, importable function) on each item; yield
        ``(item, func(item), '')`` as items finish, or ``(item, None, 'WorkerDied: ...')`` for an
        item whose task killed ``allowed-failures + 1`` workers. Items start in the order given.
        Any other task error (a broken worker environment, a lost scheduler) raises
        CimspiceError.

        ``batch_s`` > 0 groups consecutive items into tasks of about that many seconds of work,
        sized from the time per item measured so far (the first tasks hold one item each): the
        Dask overhead per task (a few ms) then stays small against items of milliseconds (the
        twin), while items of seconds (ngspice) keep one task each. A batch that kills its
        workers is split into single items.

        At most ``window`` tasks are with the scheduler at once (default: one per worker thread,
        counted again every few seconds as workers come and go): it never holds a whole dataset,
        and no task waits on a worker behind another, so a dying worker takes only the task it
        was running with it (Dask counts a death against every task assigned to the worker)."""
        import distributed

        items = list(items)
        if not items:
            return
        self.ensure(len(items))
        keys = [str(k) for k in keys] if keys is not None else [str(i) for i in range(len(items))]
        token = uuid.uuid4().hex[:8]
        threads = self.n_threads
        counted = time.monotonic()
        todo = collections.deque(range(len(items)))   # item indices, first items first
        retry: collections.deque = collections.deque()  # items of a batch that killed workers
        live: dict = {}                                  # future key -> (item indices, future)
        done = distributed.as_completed(loop=self.client.loop)
        per_item = [0.0, 0]                              # seconds, items measured

        def batch_size() -> int:
            if batch_s <= 0 or not per_item[1]:
                return 1
            by_time = int(batch_s / max(per_item[0] / per_item[1], 1e-6))
            # never more than a share of what is left: the last tasks stay small, no worker
            # is left alone with a long batch at the end
            return max(1, min(_MAX_BATCH, by_time, len(todo) // (2 * max(1, threads))))

        def submit_next():
            if retry:
                idx = [retry.popleft()]
            else:
                idx = [todo.popleft() for _ in range(min(batch_size(), len(todo)))]
            name = keys[idx[0]] + (f"+{len(idx) - 1}" if len(idx) > 1 else "")
            fut = self.client.submit(_run_batch, func, [items[i] for i in idx], pure=False,
                                     key=f"cimspice-{name}-{token}", priority=len(items) - idx[0])
            live[fut.key] = (idx, fut)
            done.add(fut)

        def fill(recount: bool = False):
            nonlocal threads, counted
            if window is None and (recount or time.monotonic() - counted > _RECOUNT_S):
                threads, counted = self.n_threads, time.monotonic()
            while (todo or retry) and len(live) < (window or max(1, threads)):
                submit_next()

        try:
            fill()
            for fut in done:
                if fut.status in ("lost", "pending"):   # its worker died before we took the
                    done.add(fut)                       # result: Dask computes it again
                    continue
                idx, _ = live.pop(fut.key)
                if fut.status == "finished":
                    elapsed, values = fut.result()
                    per_item[0] += elapsed
                    per_item[1] += len(idx)
                    results = [(i, v, "") for i, v in zip(idx, values)]
                else:
                    try:
                        exc = fut.exception()
                    except BaseException as e:   # cancelled: the scheduler was lost
                        if isinstance(e, KeyboardInterrupt):
                            raise
                        exc = e
                    if not isinstance(exc, distributed.KilledWorker):
                        raise CimspiceError(f"task {keys[idx[0]]} failed on the cluster "
                                            f"({one_line(exc)}); finished samples are kept")
                    if len(idx) > 1:   # which item killed the workers? each alone
                        retry.extend(idx)
                        results = []
                    else:
                        results = [(idx[0], None, f"WorkerDied: the worker running it died "
                                                  f"{_allowed_failures() + 1} times (Dask's "
                                                  f"distributed.scheduler.allowed-failures + 1)")]
                fut.release()
                fill(recount=fut.status != "finished")   # a worker died: fewer threads for now
                for i, value, error in results:
                    yield items[i], value, error
        finally:
            if live:
                with contextlib.suppress(Exception):
                    self.client.cancel([f for _, f in live.values()])

    # -- ending ---------------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Normal end: close the client and the local workers (each stops its reaper, which
        kills any simulator left); SIGKILL a local worker still alive after ``timeout``."""
        pids = self.worker_pids()
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close(timeout=timeout)
            if self._local is not None:
                with contextlib.suppress(Exception):
                    self._local.close(timeout=timeout)
            _kill_when_late(pids, time.monotonic() + timeout)
        finally:
            self.client = self._local = None
            self._quiet.close()

    def abort(self) -> None:
        """Abnormal end (Ctrl-C, --strict, an error): pending tasks cancelled (by
        :meth:`map_unordered`), local workers SIGKILLed at once (their reapers kill their
        simulators; no sample file is open in a worker), then closed. An existing cluster
        finishes the tasks it is running; nobody collects their results."""
        # the cluster's connections time out while it is torn down; asyncio would print each
        # such future's "exception was never retrieved" at exit, after the one-line message
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        pids = self.worker_pids()
        if self._local is not None:
            for nanny in list(self._local.workers.values()):
                with contextlib.suppress(Exception):
                    nanny.close_gracefully(reason="cimspice-abort")   # no restart of the killed
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            _kill_when_late(pids, time.monotonic() + ABORT_TIMEOUT_S)
        self.close(timeout=ABORT_TIMEOUT_S)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _kill_when_late(pids: list[int], deadline: float) -> None:
    """Wait until ``deadline`` for ``pids`` to exit; SIGKILL those still alive then."""
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone). Linux /proc; else os.kill(0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _run_batch(func: Callable, items: list) -> tuple[float, list]:
    """Task body: ``func`` on each item; returns (seconds taken, results)."""
    t0 = time.perf_counter()
    values = [func(x) for x in items]
    return time.perf_counter() - t0, values


def _allowed_failures() -> int:
    import dask
    return int(dask.config.get("distributed.scheduler.allowed-failures", 3))
