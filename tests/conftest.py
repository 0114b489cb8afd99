"""Shared fixtures: one Dask cluster started by hand, as a user would (`dask scheduler` +
`dask worker`), for the tests of ``evaluate --scheduler``; started once per session, on first use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)   # `dask worker` closes its nannies and workers
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def dask_scheduler(tmp_path_factory):
    """Address of a scheduler with 2 worker processes of 1 thread each. Its scheduler allows
    no failure (``allowed-failures = 0``): a task whose worker dies is reported at once (the
    local cluster of `evaluate --jobs` keeps Dask's default, 3 retries). Yields a dict with
    ``address`` and ``nanny_pid`` (the `dask worker` process: the workers are its children)."""
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    logs = [open(d / "scheduler.log", "wb"), open(d / "worker.log", "wb")]
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                             cwd=d, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not sched_file.is_file() or not sched_file.read_text().strip():
            assert sched.poll() is None, (d / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.1)   # the file is written in one go, but let it land
        address = json.loads(sched_file.read_text())["address"]
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(sched_file), "--nworkers", "2", "--nthreads", "1",
                                   "--no-dashboard"], cwd=d, env=env, stdout=logs[1],
                                  stderr=subprocess.STDOUT)
        import distributed
        with distributed.Client(address, timeout=30, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=90)
        yield {"address": address, "nanny_pid": worker.pid, "dir": d}
    finally:
        if worker is not None:
            _stop(worker)
        _stop(sched)
        for f in logs:
            f.close()
