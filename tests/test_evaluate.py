"""Issue 6: `cimspice evaluate` over a dataset (real ngspice), resume, report, plots, bad input;
issue 13: on dask.distributed (local workers or --scheduler): the same results either way,
Ctrl-C, a SIGKILLed run, a SIGKILLed worker (its ngspice dies with it, its task is rerun).

A tiny dataset keeps ngspice fast: 8x8 DVS bars, one speed (4 classes), 60 ms streams,
12 samples (8 train, 4 test); pooling 4 -> 8 input rows, 4 states, plain-resistor cells.
Expected figures are recomputed independently from the saved sample files (h5py, NumPy and
scikit-learn), never copied from a run.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.preprocessing import StandardScaler

from cimspice import datasets
from cimspice.experiments import evaluate as evaluate_module
from cimspice.experiments.evaluate import Options, evaluate
from cimspice.experiments.plots import ideal_on_grid, trajectory_data
from cimspice.experiments.report import PROTOCOLS
from cimspice.experiments.tasks import SampleOutcome, make_tasks, run_sample
from cimspice.io.event_files import load_dataset
from cimspice.io.results import read_result
from cli_helpers import (CLI_ENV, SMALL_LAYER_TOML, alive, children_of, cli, cli_argv, cmdline,
                         one_line_error, wait_for, worker_pids)

TINY_TOML = "[events]\npool = 4\n" + SMALL_LAYER_TOML

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    ds = datasets.make_dataset("dvs-bars", 12, 0, size=8, crossing_ms=(40.0,), duration_us=60_000,
                               start_ms=(2.0, 10.0))
    datasets.save_dataset(d / "tiny.npz", ds)
    (d / "tiny.toml").write_text(TINY_TOML)
    return {"dir": d, "data": d / "tiny.npz", "config": d / "tiny.toml"}


@pytest.fixture(scope="module")
def run_a(tiny):
    """--jobs 1 --circuit-train, with plots: the reference run."""
    out = tiny["dir"] / "run_a"
    res = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], "--jobs", 1,
              "--circuit-train", "-o", out)
    assert res.exit_code == 0, res.stderr
    return out, res


@pytest.fixture(scope="module")
def run_b(tiny):
    out = tiny["dir"] / "run_b"
    res = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], "--jobs", 2,
              "--circuit-train", "--no-plots", "-o", out)
    assert res.exit_code == 0, res.stderr
    return out


def load_states(run_dir: Path, kind: str):
    """{key: (states (M, N), label)} for every sample file holding ``kind`` states."""
    out = {}
    for f in sorted(glob.glob(str(run_dir / "samples" / "*.h5"))):
        with h5py.File(f, "r") as h:
            if f"states/{kind}" in h:
                out[Path(f).stem] = (h[f"states/{kind}"][0], int(h["labels"][0]))
    return out


def xy(states: dict, split: str):
    keys = sorted(k for k in states if k.startswith(split))
    return (np.stack([states[k][0].ravel() for k in keys]), np.array([states[k][1] for k in keys]))


def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def figures(rep: dict, protocols=PROTOCOLS) -> dict:
    """The report's data-derived figures (the timing block describes one invocation)."""
    return {"accuracy": {p: rep["accuracy"][p] for p in protocols},
            "nrmse": rep["nrmse"]["per_sample"], "failures": rep["failures"]}


# ---------------------------------------------------------------------------------------------

def test_report_numbers_recomputed_from_sample_files(run_a):
    run_dir, res = run_a
    rep = report(run_dir)
    ideal, spice = load_states(run_dir, "ideal"), load_states(run_dir, "circuit")
    assert len(ideal) == 12 and len(spice) == 12  # --circuit-train: every sample simulated
    Xtr, ytr = xy(ideal, "train")
    Xte, yte = xy(ideal, "test")
    Sxtr, _ = xy(spice, "train")
    Sxte, syte = xy(spice, "test")

    def sk_predict(X_fit, y_fit, X_eval, alpha):
        # sklearn reference of the readout (standardise on the fit set, RidgeClassifier).
        sc = StandardScaler().fit(X_fit)
        return RidgeClassifier(alpha=alpha).fit(sc.transform(X_fit), y_fit).predict(sc.transform(X_eval))

    a_ideal = rep["readout"]["ideal"]["alpha"]
    a_re = rep["readout"]["retrained"]["alpha"]
    soft = load_states(run_dir, "software")
    SWtr, swytr = xy(soft, "train")
    SWte, swyte = xy(soft, "test")
    expect = {"software": (sk_predict(SWtr, swytr, SWte, rep["readout"]["software"]["alpha"]), swyte),
              "ideal": (sk_predict(Xtr, ytr, Xte, a_ideal), yte),
              "transfer": (sk_predict(Xtr, ytr, Sxte, a_ideal), syte),
              "retrained": (sk_predict(Sxtr, ytr, Sxte, a_re), syte)}
    n_classes = len(rep["classes"])
    for p, (pred, y) in expect.items():
        got = rep["accuracy"][p]
        assert got["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-12)
        cm = np.zeros((n_classes, n_classes), int)
        np.add.at(cm, (y, pred), 1)
        assert np.array_equal(np.array(got["confusion"]), cm)
        assert got["n_test"] == 4 and got["n_train"] == 8
        keys = sorted(k for k in ideal if k.startswith("test"))
        assert got["predicted"] == {k: int(v) for k, v in zip(keys, pred)}   # paired statistics

    nr = {k: float(np.sqrt(np.mean((spice[k][0] - ideal[k][0]) ** 2)) /
                 np.sqrt(np.mean(ideal[k][0] ** 2))) for k in spice}
    assert rep["nrmse"]["per_sample"].keys() == nr.keys()
    for k in nr:  # same formula on the same float64 arrays: rounding-level agreement
        assert rep["nrmse"]["per_sample"][k] == pytest.approx(nr[k], rel=1e-12)
    assert rep["nrmse"]["mean"] == pytest.approx(np.mean(list(nr.values())), rel=1e-12)
    assert rep["nrmse"]["max"] == pytest.approx(max(nr.values()), rel=1e-12)
    times = [read_result(f).metrics["engine_time_s"] for f in (run_dir / "samples").glob("*.h5")]
    assert rep["engine_time_s_total"] == pytest.approx(sum(times), rel=1e-12)
    assert rep["n_samples"] == {"train": 8, "test": 4, "simulated": 12, "failed": 0}
    assert rep["versions"]["ngspice"] and rep["versions"]["numpy"] == np.__version__

    for name in ("trajectories.png", "accuracy.png", "confusion.png", "nrmse_hist.png"):
        assert (run_dir / name).read_bytes()[:8] == PNG_MAGIC
    md = (run_dir / "report.md").read_text()
    assert "ideal accuracy" in md and "retrained" in md
    for line in ("software accuracy", "ideal accuracy", "transfer accuracy (ngspice)", "retrained accuracy (ngspice)",
                 "state NRMSE mean / max"):
        assert line in res.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["selected"] == {"train": [0, 1, 2, 3, 8, 9, 10, 11], "test": [4, 5, 6, 7]}


def test_jobs2_gives_the_same_results_as_jobs1(run_a, run_b):
    a_dir, _ = run_a
    for kind in ("ideal", "circuit"):
        a, b = load_states(a_dir, kind), load_states(run_b, kind)
        assert a.keys() == b.keys() and len(a) == 12
        for k in a:  # same deck, same ngspice binary: bit-identical states
            assert np.array_equal(a[k][0], b[k][0]), (kind, k)
    assert figures(report(a_dir)) == figures(report(run_b))
    assert report(run_b)["timing"]["jobs"] == 2


def on_cluster(dask_scheduler) -> list[str]:
    """Run on the session's cluster (conftest.py): tests whose point is not where the engine
    runs save a local cluster start-up each."""
    return ["--scheduler", dask_scheduler["address"]]


def test_same_seed_gives_identical_state_arrays(tiny, tmp_path, dask_scheduler):
    runs = []
    for name in ("s1", "s2"):
        res = cli("evaluate", "--dataset", "dvs-bars", "--n", 16, "--seed", 3, "--n-train", 8,
                  "--n-test", 1, "--config", tiny["config"], "--no-plots", *on_cluster(dask_scheduler),
                  "-o", tmp_path / name)
        assert res.exit_code == 0, res.stderr
        runs.append(tmp_path / name)
    for kind in ("ideal", "circuit"):
        a, b = load_states(runs[0], kind), load_states(runs[1], kind)
        assert a.keys() == b.keys() and a
        for k in a:
            assert np.array_equal(a[k][0], b[k][0])
    d1 = np.load(runs[0] / "dataset.npz")
    d2 = np.load(runs[1] / "dataset.npz")
    assert np.array_equal(d1["events"], d2["events"])
    # The check above could fail: another seed draws other events.
    other = datasets.make_dataset("dvs-bars", 16, 4)
    assert not np.array_equal(other.events[: d1["events"].size], d1["events"][: other.events.size])


def _simulators(workers: list[int]) -> list[int]:
    """ngspice processes started by ``workers`` (their own sessions: not in the workers' group)."""
    return [k for w in workers for k in children_of(w) if b"ngspice" in cmdline(k)]


def _busy_worker(parent: int):
    """(worker pid, its ngspice pid) of a Dask worker under ``parent`` running ngspice, or None."""
    for w in worker_pids(parent):
        sims = _simulators([w])
        if sims:
            return w, sims[0]
    return None


def test_sigkill_mid_run_then_rerun_gives_the_same_report(tiny, run_a, tmp_path, dask_scheduler):
    out = tmp_path / "killed"
    args = cli_argv("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], "--jobs", 1,
                    "--no-plots", "-o", out)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CLI_ENV)
    wait_for(lambda: list((out / "samples").glob("test_*.h5")), 120, "no sample file appeared", proc)
    workers = worker_pids(proc.pid)
    sims = _simulators(workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (out / "report.json").exists()
    # The orphaned workers exit at once (Dask: their nanny, in the killed process, is gone) and
    # their reapers kill the ngspice they were running: nothing runs on for nobody.
    wait_for(lambda: not any(alive(pid) for pid in workers + sims), 30,
             "orphaned workers or their ngspice did not exit")

    res = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"],
              *on_cluster(dask_scheduler), "--no-plots", "-o", out)   # resumes wherever it runs
    assert res.exit_code == 0, res.stderr
    rep = report(out)
    assert rep["timing"]["n_simulated"] < 4  # finished samples were skipped, not redone
    # Same figures as the uninterrupted reference (which also ran --circuit-train: ideal and
    # transfer depend only on ideal training states and the test states).
    ref = report(run_a[0])
    assert figures(rep, ("ideal", "transfer")) == figures(ref, ("ideal", "transfer")) | {
        "nrmse": {k: v for k, v in ref["nrmse"]["per_sample"].items() if k.startswith("test")}}
    assert not list((out / "samples").glob(".*"))  # no temp file left behind


def test_ctrl_c_stops_cleanly(tiny, tmp_path):
    out = tmp_path / "interrupted"
    args = cli_argv("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], "--jobs", 2,
                    "--circuit-train", "--no-plots", "-o", out)
    # Own process group, as a terminal's foreground job: Ctrl-C signals the whole group.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLI_ENV,
                            start_new_session=True)
    wait_for(lambda: list((out / "samples").glob("test_*.h5")), 120, "no sample file appeared", proc)
    workers = worker_pids(proc.pid)
    assert len(workers) == 2
    sims = _simulators(workers)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert time.monotonic() - t0 < 15   # the workers are stopped, not waited for
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted:") and "rerun" in lines[0], lines
    assert not (out / "report.json").exists()
    assert not list((out / "samples").glob(".*"))  # no half-written sample file
    # workers stopped, not orphaned, and their ngspice killed
    wait_for(lambda: not any(alive(pid) for pid in workers + sims), 10, "a worker or ngspice survived")
    for f in (out / "samples").glob("*.h5"):  # every kept file is complete
        read_result(f)


def test_worker_sigkilled_mid_run_is_replaced_and_changes_nothing(tiny, run_a, tmp_path):
    """A local worker SIGKILLed while its ngspice runs: the ngspice dies with it (the reaper),
    Dask reruns the task on another worker, the run ends normally with no failure, and every
    state is bit-identical to the undisturbed reference run."""
    out = tmp_path / "worker_killed"
    args = cli_argv("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], "--jobs", 2,
                    "--circuit-train", "--no-plots", "-o", out)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLI_ENV)

    def busy_worker():   # once a first sample is written
        return _busy_worker(proc.pid) if list((out / "samples").glob("*.h5")) else None

    victim, sim = wait_for(busy_worker, 120, "no worker ran ngspice", proc)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not alive(sim), 5, "the killed worker's ngspice survived it")
    out_text, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert "0 failed" in out_text.decode()
    rep = report(out)
    assert rep["n_samples"]["failed"] == 0 and rep["failures"] == []
    assert figures(rep) == figures(report(run_a[0]))
    for kind in ("ideal", "circuit"):
        a, b = load_states(run_a[0], kind), load_states(out, kind)
        assert a.keys() == b.keys() and len(a) == 12
        assert all(np.array_equal(a[k][0], b[k][0]) for k in a), kind
    assert not list((out / "samples").glob(".*"))


def test_task_that_kills_its_worker_is_recorded_then_retried(tiny, run_a, dask_scheduler, tmp_path):
    """On a cluster that allows no failure (conftest), a worker killed under a task makes Dask
    give the task up: the sample is recorded as a WorkerDied failure with its ideal states, the
    run still ends normally, and --retry-failed simulates it again to the reference figures."""
    out = tmp_path / "gave_up"
    args = cli_argv("evaluate", "--dataset", tiny["data"], "--config", tiny["config"],
                    "--scheduler", dask_scheduler["address"], "--circuit-train", "--no-plots", "-o", out)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLI_ENV)

    victim, sim = wait_for(lambda: _busy_worker(dask_scheduler["nanny_pid"]), 120,
                           "no remote worker ran ngspice", proc)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not alive(sim), 5, "the killed worker's ngspice survived it")
    out_text, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    rep = report(out)
    assert rep["n_samples"]["failed"] == 1   # the task it ran: no task waits behind another
    assert all(f["error"].startswith("WorkerDied:") for f in rep["failures"]), rep["failures"]
    assert rep["accuracy"]["ideal"] == report(run_a[0])["accuracy"]["ideal"]   # ideal states kept
    failed = {f["key"] for f in rep["failures"]}

    res = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], *on_cluster(dask_scheduler),
              "--circuit-train", "--no-plots", "--retry-failed", "-o", out)
    assert res.exit_code == 0, res.stderr
    rep = report(out)
    assert rep["timing"]["n_simulated"] == len(failed)   # only the failed ones were redone
    assert figures(rep) == figures(report(run_a[0]))
    a, b = load_states(run_a[0], "circuit"), load_states(out, "circuit")
    assert a.keys() == b.keys() and all(np.array_equal(a[k][0], b[k][0]) for k in a)


def test_twin_results_do_not_depend_on_where_they_run(tiny, dask_scheduler, tmp_path, monkeypatch):
    """--engine twin with --jobs 1 (in this process), --jobs 2 (local workers), by default (in
    this process: a short run), by default on a run that looks long (IN_PROCESS_S = 0: two
    samples here, workers take the rest) and on a cluster started by hand (through the Python
    API's ``scheduler=``): the same report figures and bit-identical per-sample states."""
    runs = {}
    for name, where in (("jobs1", ["--jobs", 1]), ("jobs2", ["--jobs", 2]), ("default", [])):
        out = tmp_path / name
        res = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], *where,
                  "--circuit-train", "--engine", "twin", "--no-plots", "-o", out)
        assert res.exit_code == 0, res.stderr
        runs[name] = out
    runs["scheduler"] = tmp_path / "scheduler"
    evaluate(str(tiny["data"]), runs["scheduler"], config=str(tiny["config"]), circuit_train=True,
             engine="twin", plots=False, progress=False, scheduler=dask_scheduler["address"])
    runs["escalated"] = tmp_path / "escalated"
    monkeypatch.setattr(evaluate_module, "IN_PROCESS_S", 0.0)
    evaluate(str(tiny["data"]), runs["escalated"], config=str(tiny["config"]), circuit_train=True,
             engine="twin", plots=False, progress=False)
    reps = {k: report(v) for k, v in runs.items()}
    t = {k: r["timing"] for k, r in reps.items()}
    assert t["jobs1"]["jobs"] == 1 and t["jobs1"]["scheduler"] == "in-process"
    assert t["jobs1"]["n_in_process"] == t["default"]["n_in_process"] == 12
    assert t["default"]["scheduler"] == "in-process" and t["default"]["cluster_start_s"] is None
    assert t["jobs2"]["jobs"] == 2 and t["jobs2"]["n_in_process"] == 0
    assert t["jobs2"]["scheduler"] == "local"
    assert t["escalated"]["n_in_process"] == 2 and t["escalated"]["scheduler"] == "local"
    assert t["scheduler"]["scheduler"] == dask_scheduler["address"]
    assert t["scheduler"]["n_in_process"] == 0
    ref = figures(reps["jobs1"])
    assert all(ref["accuracy"][p]["accuracy"] is not None for p in PROTOCOLS)
    for name in ("jobs2", "default", "escalated", "scheduler"):
        assert figures(reps[name]) == ref, name
        for kind in ("ideal", "software", "circuit"):
            a, b = load_states(runs["jobs1"], kind), load_states(runs[name], kind)
            assert a.keys() == b.keys() and len(a) == 12
            assert all(np.array_equal(a[k][0], b[k][0]) for k in a), (name, kind)


def test_changed_config_refuses_without_force(tiny, run_a, tmp_path, dask_scheduler):
    out = tmp_path / "copy"
    shutil.copytree(run_a[0], out)
    before = sorted(p.name for p in (out / "samples").iterdir())
    other = tmp_path / "other.toml"
    other.write_text(TINY_TOML.replace("reltol = 1e-4", "reltol = 2e-4"))
    res = cli("evaluate", "--dataset", tiny["data"], "--config", other, "-o", out)
    err = one_line_error(res)
    assert "another config" in err and "--force" in err
    assert sorted(p.name for p in (out / "samples").iterdir()) == before

    res = cli("evaluate", "--dataset", tiny["data"], "--config", other, "--n-train", 8,
              "--n-test", 1, "--no-plots", "--force", *on_cluster(dask_scheduler), "-o", out)
    assert res.exit_code == 0, res.stderr
    left = sorted(p.name for p in (out / "samples").iterdir())
    assert len(left) == 9 and "test_00005.h5" not in left  # old samples were discarded
    with h5py.File(out / "samples" / "test_00004.h5") as h:
        assert "reltol = 0.0002" in h.attrs["config"]


def test_another_builtin_dataset_refuses_and_keeps_the_dataset_file(tmp_path):
    """A second run of a built-in dataset with another --seed into the same directory: one
    line naming the dataset and --force, and the directory's dataset.npz (and samples) kept."""
    out = tmp_path / "run"
    res = cli("evaluate", "--dataset", "audio-chirps", "--n", 8, "--engine", "twin", "--no-plots",
              "-o", out)
    assert res.exit_code == 0, res.stderr
    before = (out / "dataset.npz").read_bytes(), sorted(p.name for p in (out / "samples").iterdir())
    res = cli("evaluate", "--dataset", "audio-chirps", "--n", 8, "--seed", 1, "--engine", "twin",
              "--no-plots", "-o", out)
    err = one_line_error(res)
    assert "another dataset (audio-chirps, seed 0, n 8)" in err and "--force" in err
    assert ((out / "dataset.npz").read_bytes(),
            sorted(p.name for p in (out / "samples").iterdir())) == before
    res = cli("evaluate", "--dataset", "audio-chirps", "--n", 8, "--seed", 1, "--engine", "twin",
              "--no-plots", "--force", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert json.loads((out / "manifest.json").read_text())["dataset"]["seed"] == 1
    assert (out / "dataset.npz").read_bytes() != before[0]


def test_failing_samples_are_recorded_and_strict_stops(tiny, tmp_path, dask_scheduler):
    # A 1 ms ngspice timeout makes every SPICE sample fail for real (SpiceTimeout).
    bad = tmp_path / "timeout.toml"
    bad.write_text(TINY_TOML + "timeout = 0.001\n")
    res = cli("evaluate", "--dataset", tiny["data"], "--config", bad, "--no-plots",
              *on_cluster(dask_scheduler), "-o", tmp_path / "lenient")
    assert res.exit_code == 0, res.stderr
    rep = report(tmp_path / "lenient")
    assert rep["n_samples"]["failed"] == 4
    assert {f["key"] for f in rep["failures"]} == {f"test_0000{i}" for i in (4, 5, 6, 7)}
    assert all("SpiceTimeout" in f["error"] for f in rep["failures"])
    assert rep["accuracy"]["ideal"]["accuracy"] is not None  # ideal states still usable
    assert rep["accuracy"]["transfer"]["accuracy"] is None
    assert "4 failed" in res.output

    res = cli("evaluate", "--dataset", tiny["data"], "--config", bad, "--strict", "--no-plots",
              *on_cluster(dask_scheduler), "-o", tmp_path / "strict")
    err = one_line_error(res)
    assert "failed" in err and "SpiceTimeout" in err
    assert not (tmp_path / "strict" / "report.json").exists()


def test_unknown_dataset_name_lists_known_names(tmp_path):
    err = one_line_error(cli("evaluate", "--dataset", "dvs-nope", "-o", tmp_path / "r"))
    for info in datasets.list_datasets():
        assert info.name in err
    assert not (tmp_path / "r").exists()


def test_dataset_file_without_labels(tiny, tmp_path):
    with np.load(tiny["data"]) as z:
        arrays = {k: z[k] for k in z.files if k != "labels"}
    path = tmp_path / "nolabels.npz"
    np.savez(path, **arrays)
    err = one_line_error(cli("evaluate", "--dataset", path, "--config", tiny["config"],
                             "-o", tmp_path / "r"))
    assert "labels" in err and "nolabels.npz" in err
    assert not (tmp_path / "r" / "report.json").exists()


def test_n_test_larger_than_the_split(tiny, tmp_path):
    err = one_line_error(cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"],
                             "--n-test", 5, "-o", tmp_path / "r"))
    assert "--n-test 5" in err and "4" in err
    assert not (tmp_path / "r" / "report.json").exists()


def test_plot_draws_one_result(tiny, run_a, tmp_path):
    rep = report(run_a[0])
    path = run_a[0] / "samples" / f"{rep['trace_sample']}.h5"
    res = cli("plot", path, "-o", tmp_path / "t.png")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG_MAGIC

    r = read_result(path)
    d = trajectory_data(r, n_states=4)
    # The dense engine trace at the sample times is what the states were sampled from.
    for j in range(len(d["states"])):
        assert np.interp(d["t"], d["dense_t"], d["dense_circuit"][:, j]) == pytest.approx(
            d["circuit"][:, j], rel=1e-9, abs=1e-12)
    # The ideal overlay is rebuilt from the stored model + pulses: it must reproduce the
    # stored ideal states at the sample times (same formula, same inputs).
    assert ideal_on_grid(r, r.sample_times) == pytest.approx(r.ideal[0], rel=1e-10, abs=1e-12)

    # A `cimspice simulate --waveforms` result plots the same way.
    h5 = tmp_path / "one.h5"
    res = cli("simulate", tiny["data"], "--index", 4, "-c", tiny["config"], "--waveforms", "-o", h5)
    assert res.exit_code == 0, res.stderr
    res = cli("plot", h5)
    assert res.exit_code == 0, res.stderr
    assert h5.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC


def test_sample_files_hold_the_programmed_hardware(run_a):
    """Sample files are assembled like `simulate` results: conductances, headroom and the run
    attributes that make a run resumable."""
    with h5py.File(run_a[0] / "samples" / "test_00004.h5", "r") as h:
        for name in ("B", "taus", "groups", "G_plus", "G_minus", "G_rram_plus", "G_rram_minus",
                     "gains", "r_tia"):
            assert name in h["model"], name
        assert h["model"]["G_rram_plus"].shape == h["model"]["G_plus"].shape
        assert np.isfinite(h["metrics"].attrs["headroom"])
        for key in ("key", "split", "index", "config", "config_digest", "seed", "source", "error",
                    "simulated", "ngspice_version"):
            assert key in h.attrs, key
        assert h.attrs["key"] == "test_00004" and h.attrs["simulated"] and not h.attrs["error"]


def test_api_call_resumes_a_finished_run(tiny, run_a, tmp_path):
    """evaluate(dataset, run_dir, **options) is evaluate(Options(...)): on a copy of a finished
    run nothing is simulated again and the figures are the same."""
    out = tmp_path / "copy"
    shutil.copytree(run_a[0], out)
    rep = evaluate(str(tiny["data"]), out, config=str(tiny["config"]), circuit_train=True,
                   plots=False, progress=False)
    assert figures(rep) == figures(report(run_a[0])) == figures(report(out))
    assert rep["timing"]["n_simulated"] == 12  # kept from the invocation that simulated them
    assert "note" in rep["timing"]
    with pytest.raises(TypeError):
        evaluate(Options(dataset=str(tiny["data"]), run_dir=out), out)
    with pytest.raises(TypeError):
        evaluate(str(tiny["data"]))


def test_run_sample_is_a_pure_picklable_task(tiny, tmp_path):
    """A task pickles, run_sample writes nothing, and its outcome pickles (for a scheduler
    that runs tasks elsewhere)."""
    import pickle

    from cimspice.config import load_config
    from cimspice.io.event_files import load_dataset
    from cimspice.pipeline import calibration_schedules, make_model, program
    from cimspice.schedule import n_input_rows

    cfg = load_config(tiny["config"])
    ds = load_dataset(tiny["data"])
    model = make_model(cfg, n_input_rows(ds.sensor_size, cfg))
    mapping = program(model, cfg, calibration_schedules(ds, cfg)[0])
    tasks = make_tasks(ds, {"train": [0, 1], "test": [4]}, cfg, model, mapping, circuit_train=False)
    assert [(t.key, t.simulate, t.keep_waveforms) for t in tasks] == [
        ("test_00004", True, True), ("train_00000", False, False), ("train_00001", False, False)]
    task = pickle.loads(pickle.dumps(tasks[1]))
    before = set(os.listdir(tmp_path))
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        out = run_sample(task)
    finally:
        os.chdir(cwd)
    assert set(os.listdir(tmp_path)) == before
    assert isinstance(out, SampleOutcome) and not out.error and out.sim is None
    assert out.prep.ideal.shape == (5, 4) and np.isnan(out.nrmse)
    assert pickle.loads(pickle.dumps(out)).prep.ideal.tobytes() == out.prep.ideal.tobytes()


def _without_split(src: Path, dst: Path) -> None:
    with np.load(src) as z:
        np.savez(dst, **{k: z[k] for k in z.files if k != "split"})


@pytest.mark.parametrize("has_split", [True, False])
def test_simulate_index_reproduces_evaluate_sample(tiny, run_a, tmp_path, has_split, dask_scheduler):
    """`simulate --index i` and evaluate's record of sample i: identical ideal and SPICE states
    (the same calibration rule, split rule and result assembly), with the file's split or, for a
    file without one, with the project's split rule."""
    if has_split:
        data, run = tiny["data"], run_a[0]
    else:
        data = tmp_path / "nosplit.npz"
        _without_split(tiny["data"], data)
        run = tmp_path / "run"
        res = cli("evaluate", "--dataset", data, "--config", tiny["config"], *on_cluster(dask_scheduler),
                  "--n-train", 3, "--n-test", 2, "--circuit-train", "--no-plots", "-o", run)
        assert res.exit_code == 0, res.stderr
    split = datasets.dataset_split(load_dataset(data))
    for code, name in ((1, "test"), (0, "train")):
        i = int(np.flatnonzero(split == code)[0])
        out = tmp_path / f"{name}_{i}.h5"
        res = cli("simulate", data, "--index", i, "--config", tiny["config"], "-o", out)
        assert res.exit_code == 0, res.stderr
        mine, theirs = read_result(out), read_result(run / "samples" / f"{name}_{i:05d}.h5")
        np.testing.assert_array_equal(mine.ideal, theirs.ideal)
        np.testing.assert_array_equal(mine.circuit, theirs.circuit)
        np.testing.assert_array_equal(mine.model["gains"], theirs.model["gains"])


def test_twin_engine_run_matches_ngspice_run_and_never_mixes(tiny, run_a, tmp_path, dask_scheduler):
    """evaluate --engine twin on the reference run's dataset and config: identical ideal and
    software states, circuit states within 0.5 % NRMSE of ngspice's sample by sample, the same
    accuracies (4 test samples: one sample is 25 pp), the engine named in the report; the run
    directory then refuses ngspice samples (a run never mixes engines)."""
    out = tmp_path / "twin"
    res = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], *on_cluster(dask_scheduler),
              "--circuit-train", "--engine", "twin", "--no-plots", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "transfer accuracy (twin)" in res.output and "SPICE" not in res.output
    rep, ref = report(out), report(run_a[0])
    assert rep["engine"] == "twin" and ref["engine"] == "ngspice"
    for p in PROTOCOLS:
        assert abs(rep["accuracy"][p]["accuracy"] - ref["accuracy"][p]["accuracy"]) <= 0.25 + 1e-12
    twin_states, ng_states = load_states(out, "circuit"), load_states(run_a[0], "circuit")
    for kind in ("ideal", "software"):
        a, b = load_states(out, kind), load_states(run_a[0], kind)
        assert all(np.array_equal(a[k][0], b[k][0]) for k in a)
    for k, (x, _) in twin_states.items():
        ng = ng_states[k][0]
        assert np.sqrt(np.mean((x - ng) ** 2)) / np.sqrt(np.mean(ng ** 2)) <= 5e-3, k
    again = cli("evaluate", "--dataset", tiny["data"], "--config", tiny["config"], "--jobs", 1,
                "--circuit-train", "--engine", "ngspice", "--no-plots", "-o", out)
    assert one_line_error(again).count("engine twin") == 1
