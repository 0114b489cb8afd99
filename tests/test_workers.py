"""Issue 13, part 3: engine tasks on dask.distributed (cimspice/experiments/workers.py).

The cluster alone (the dataset-level tests, killed workers and Ctrl-C included, are in
test_evaluate.py):

- every worker, local or of a cluster started by hand, runs with one BLAS thread, its share of
  simulator slots and a tag its simulators inherit; local workers never see a Ctrl-C;
- the reaper kills the simulators of a worker that was SIGKILLed, and nothing else;
- an unreachable, malformed or worker-less scheduler is one line within the connect timeout,
  and nothing is written.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cimspice.engines.process import available_cores
from cimspice.experiments import workers
from cimspice.experiments.workers import Cluster
from cli_helpers import alive, cli, one_line_error
from worker_tasks import square, square_or_die, worker_env

ROOT = Path(__file__).resolve().parents[1]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_local_workers_are_set_up_and_return_every_item():
    with Cluster(jobs=2) as c:
        got = {item: value for item, value, err in c.map_unordered(square, list(range(20)))}
        assert got == {i: i * i for i in range(20)}
        envs = [v for _, v, _ in c.map_unordered(worker_env, [0, 1, 2, 3])]
        pids = set(c.worker_pids())
        assert c.n_threads == 2 and len(pids) == 2
    for e in envs:
        assert e["pid"] in pids
        assert e["blas_env"] == dict.fromkeys(e["blas_env"], "1")
        assert e["blas_threads"] and set(e["blas_threads"]) == {1}
        assert e["slots"] == str(max(1, available_cores() // 2))   # 2 workers share the cores
        assert e["tag"]                                            # inherited by its simulators
        assert e["sigint_blocked"] and e["sigint_ignored"]         # Ctrl-C is for the main process
        assert e["profiler"] is False
    assert all(_wait_gone(p, 10) for p in pids)   # closed: no worker left behind


def test_workers_of_a_cluster_started_by_hand_are_set_up(dask_scheduler):
    with Cluster(scheduler=dask_scheduler["address"]) as c:
        c.client.wait_for_workers(2, timeout=60)   # one may be restarting (test_evaluate kills one)
        assert c.n_threads == 2
        envs = [v for _, v, _ in c.map_unordered(worker_env, [0, 1, 2, 3])]
    for e in envs:
        assert set(e["blas_threads"]) == {1} and e["blas_env"]["OPENBLAS_NUM_THREADS"] == "1"
        assert e["slots"] == str(max(1, available_cores() // 2)) and e["tag"]
        assert not e["sigint_ignored"]   # its owner's Ctrl-C still stops `dask worker`
    assert alive(dask_scheduler["nanny_pid"])   # closing the client leaves the cluster running


FAKE_WORKER = """
import subprocess, sys, time
from cimspice.experiments.worker_setup import start_reaper
reaper = start_reaper()
sim = subprocess.Popen(["sleep", "600"], start_new_session=True)   # as run_process runs ngspice
print(reaper.pid, sim.pid, flush=True)
time.sleep(600)
"""


def test_reaper_kills_the_simulators_of_a_sigkilled_worker_and_nothing_else():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    worker = subprocess.Popen([sys.executable, "-c", FAKE_WORKER], stdout=subprocess.PIPE, env=env)
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)   # not the worker's
    try:
        reaper, sim = map(int, worker.stdout.readline().split())
        assert alive(sim) and alive(reaper)
        os.kill(worker.pid, signal.SIGKILL)   # no chance to clean up
        worker.wait()
        assert _wait_gone(sim, 5), "the killed worker's simulator survived"
        assert _wait_gone(reaper, 5)
        assert alive(other.pid)
    finally:
        other.kill()
        other.wait()
        worker.stdout.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_within_the_timeout(monkeypatch, tmp_path):
    monkeypatch.setattr(workers, "CONNECT_TIMEOUT_S", 2.0)
    addr = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    err = one_line_error(cli("evaluate", "--dataset", "dvs-bars", "--n", 8, "--scheduler", addr,
                             "-o", tmp_path / "run"))
    assert time.monotonic() - t0 < 2.0 + 8.0
    assert f"--scheduler {addr}: cannot connect within 2 s" in err and "dask scheduler" in err
    assert not (tmp_path / "run").exists()   # nothing half-written


@pytest.mark.parametrize("addr, expect", [
    ("http://127.0.0.1:8786", "unknown address scheme 'http'"),
    ("tcp://127.0.0.1", "missing port"),
    ("tcp://", "not a scheduler address"),
    ("host name:8786", "not a scheduler address"),
])
def test_malformed_scheduler_address_is_one_line(tmp_path, addr, expect):
    err = one_line_error(cli("evaluate", "--dataset", "dvs-bars", "--scheduler", addr,
                             "-o", tmp_path / "run"))
    assert "--scheduler" in err and expect in err and "tcp://host:port" in err
    assert not (tmp_path / "run").exists()


def test_scheduler_without_workers_and_jobs_with_scheduler_are_refused(monkeypatch, tmp_path):
    import distributed

    monkeypatch.setattr(workers, "CONNECT_TIMEOUT_S", 1.0)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                                  scheduler_kwargs={"dashboard": False,
                                                    "dashboard_address": "127.0.0.1:0"}) as lc:
        err = one_line_error(cli("evaluate", "--dataset", "dvs-bars", "--scheduler",
                                 lc.scheduler_address, "-o", tmp_path / "run"))
    assert "has no worker" in err and "dask worker" in err
    err = one_line_error(cli("evaluate", "--dataset", "dvs-bars", "--jobs", 2, "--scheduler",
                             "tcp://127.0.0.1:8786", "-o", tmp_path / "run"))
    assert "--jobs 2 with --scheduler" in err
    assert not (tmp_path / "run").exists()


def test_batches_return_every_item_and_a_killer_item_is_isolated(dask_scheduler):
    """Items of milliseconds are grouped into tasks; a batch whose worker dies is split, so on
    a cluster that allows no failure only the item that kills its workers is reported
    (WorkerDied), every other one is computed once."""
    with Cluster(scheduler=dask_scheduler["address"]) as c:
        got = list(c.map_unordered(square_or_die, list(range(40)), batch_s=10.0))
        c.client.wait_for_workers(2, timeout=60)   # leave the cluster as it was found
    assert sorted(item for item, _, _ in got) == list(range(40))
    for item, value, err in got:
        if item == 30:
            assert value is None and err.startswith("WorkerDied:")
        else:
            assert value == item * item and err == ""
