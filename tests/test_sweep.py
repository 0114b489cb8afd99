"""Issue 13: `cimspice sweep`, a grid of config values x chip instances on dask.distributed.

The CSV is the contract: its columns and rows, the same bytes on 1 or 2 local workers, on a
cluster started by hand, after a resume, after a Ctrl-C and a rerun, and with a worker
SIGKILLed mid-sweep. A sweep row is checked against `evaluate` of the same config (an
independent path: HDF5 sample files, its own report), and against NRMSE recomputed from the
chunk files. Every run uses the twin on audio-chirps (16 samples: 12 train, 4 test) and the
default layer; the larger sweep of the kill tests has 96 samples per unit.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cimspice
from cimspice.config import load_config
from cimspice.errors import InputError
from cimspice.experiments.report import compute_report
from cimspice.experiments.sweep_grid import parse_axes, point_configs
from cimspice.experiments.sweep_report import ci95, csv_text, plot_lines, point_stats, unit_row
from cimspice.experiments.sweep_tasks import (ChunkJob, ProgramJob, chunk_bytes, chunk_done,
                                              chunk_records, ideal_only, program_unit, read_chunk,
                                              run_chunk)
from cli_helpers import CLI_ENV, alive, cli, cli_argv, one_line_error, wait_for, worker_pids

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ("--dataset", "audio-chirps", "--n", 16, "--engine", "twin",
         "--set", "variation.tau_sigma=0,0.3", "--seeds", 2, "--no-plots")
# 4 points x 2 instances x 96 samples (~3 s of twin work): long enough to be interrupted
LARGE = ("--dataset", "audio-chirps", "--n", 96, "--engine", "twin",
         "--set", "variation.tau_sigma=0,0.1,0.2,0.3", "--seeds", 2, "--no-plots")
COLUMNS = ["variation.tau_sigma", "seed", "software", "ideal", "transfer", "retrained",
           "nrmse_mean", "n_test", "n_failed"]


def rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((run_dir / "sweep.csv").read_text())))


def run_ok(*args):
    res = cli("sweep", *args)
    assert res.exit_code == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The reference: SMALL on one local worker, with plots."""
    out = tmp_path_factory.mktemp("sweep") / "ref"
    res = run_ok(*[a for a in SMALL if a != "--no-plots"], "--jobs", 1, "-o", out)
    return out, res


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "large"
    run_ok(*LARGE, "--jobs", 2, "-o", out)
    return out


# ---------------------------------------------------------------------------------------------

def test_csv_columns_rows_and_files(small):
    out, res = small
    text = (out / "sweep.csv").read_text()
    assert text.splitlines()[0].split(",") == COLUMNS
    got = rows(out)
    assert [(r["variation.tau_sigma"], r["seed"]) for r in got] == [
        ("0.0", "0"), ("0.0", "1"), ("0.3", "0"), ("0.3", "1")]   # point order, then seed
    for r in got:
        assert r["n_test"] == "4" and r["n_failed"] == "0"
        assert all(0.0 <= float(r[p]) <= 1.0 for p in ("software", "ideal", "transfer", "retrained"))
    nominal, spread = got[:2], got[2:]
    # nominal devices: both instances are the same chip; a tau spread of 0.3 moves the states
    # by tens of % and differently on each instance
    assert nominal[0]["nrmse_mean"] == nominal[1]["nrmse_mean"] and float(nominal[0]["nrmse_mean"]) < 1e-4
    assert all(float(r["nrmse_mean"]) > 0.05 for r in spread)
    assert spread[0]["nrmse_mean"] != spread[1]["nrmse_mean"]
    # the model and the readout of the software and ideal references do not depend on the chip
    assert len({(r["software"], r["ideal"]) for r in got}) == 1
    for name in ("accuracy.png", "nrmse.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    md = (out / "report.md").read_text()
    assert "| variation.tau_sigma |" in md and "![accuracy](accuracy.png)" in md
    summary = json.loads((out / "sweep.json").read_text())
    assert [p["values"] for p in summary["points"]] == [[0.0], [0.3]]
    assert summary["points"][1]["nrmse_mean"]["n"] == 2
    assert "variation.tau_sigma" in res.stdout and "on twin: 64 simulated now" in res.stdout
    assert not list((out / "results").glob(".*"))


def test_nrmse_recomputed_from_the_chunk_files(small):
    out, _ = small
    got = rows(out)
    for k, r in enumerate(got):
        unit = f"p{k // 2:03d}_s{k % 2:03d}"
        files = sorted((out / "results").glob(f"{unit}_c*.npz"))
        assert files
        nr = []
        for f in files:
            with np.load(f) as z:
                assert str(z["config_digest"]) and z["has_circuit"].all()
                for c, i in zip(z["circuit"], z["ideal"]):
                    nr.append(np.sqrt(np.mean((c - i) ** 2)) / np.sqrt(np.mean(i ** 2)))
        assert len(nr) == 16
        assert float(r["nrmse_mean"]) == pytest.approx(np.mean(nr), rel=1e-5)


def test_a_row_equals_evaluate_of_the_same_chip(small, tmp_path):
    """Unit (tau_sigma 0.3, instance 1) against `evaluate` of that config on the sweep's own
    dataset file: the same accuracies and mean NRMSE."""
    out, _ = small
    cfg = load_config(None).replace(variation={"tau_sigma": 0.3, "seed": 1})
    (tmp_path / "chip.toml").write_text(cfg.to_toml())
    rep = cimspice.evaluate(str(out / "dataset.npz"), tmp_path / "ev", config=str(tmp_path / "chip.toml"),
                            circuit_train=True, engine="twin", plots=False, progress=False, jobs=1)
    row = rows(out)[3]
    for p in ("software", "ideal", "transfer", "retrained"):
        assert float(row[p]) == pytest.approx(rep["accuracy"][p]["accuracy"], abs=1e-6), p
    assert float(row["nrmse_mean"]) == pytest.approx(rep["nrmse"]["mean"], rel=1e-5)


def test_rerun_resumes_without_work(small):
    out, _ = small
    before = (out / "sweep.csv").read_bytes()
    stamps = {f: f.stat().st_mtime_ns for f in (out / "results").iterdir()}
    res = run_ok(*SMALL, "--jobs", 1, "-o", out)
    assert "on twin: 0 simulated now" in res.stdout
    assert (out / "sweep.csv").read_bytes() == before
    assert {f: f.stat().st_mtime_ns for f in (out / "results").iterdir()} == stamps


def test_two_workers_and_a_cluster_give_the_same_csv(small, tmp_path, dask_scheduler):
    ref = (small[0] / "sweep.csv").read_bytes()
    run_ok(*SMALL, "--jobs", 2, "-o", tmp_path / "jobs2")
    assert (tmp_path / "jobs2" / "sweep.csv").read_bytes() == ref
    run_ok(*SMALL, "--scheduler", dask_scheduler["address"], "-o", tmp_path / "cluster")
    assert (tmp_path / "cluster" / "sweep.csv").read_bytes() == ref


def test_changed_grid_refuses_the_run_dir_without_force(small, tmp_path):
    out = tmp_path / "grid"
    shutil.copytree(small[0], out)
    other = [a if a != "variation.tau_sigma=0,0.3" else "variation.tau_sigma=0,0.2" for a in SMALL]
    err = one_line_error(cli("sweep", *other, "-o", out))
    assert "--set grid" in err and "--force" in err
    assert (out / "sweep.csv").is_file()   # nothing discarded
    run_ok(*other, "--force", "-o", out)
    assert [r["variation.tau_sigma"] for r in rows(out)] == ["0.0", "0.0", "0.2", "0.2"]
    assert len(list((out / "results").glob("*.npz"))) == 4


def test_two_keys_and_a_key_that_changes_the_circuit(tmp_path):
    """Quantised conductances (levels 4) raise the NRMSE on every instance; two keys make the
    product grid, the first key slowest, and one plot line per value of the second."""
    out = tmp_path / "levels"
    run_ok("--dataset", "audio-chirps", "--n", 16, "--engine", "twin", "--set", "circuit.levels=0,4",
           "--set", "circuit.g_min=1e-6,2e-6", "--jobs", 1, "-o", out)
    got = rows(out)
    assert list(got[0])[:3] == ["circuit.levels", "circuit.g_min", "seed"]
    assert [(r["circuit.levels"], r["circuit.g_min"]) for r in got] == [
        ("0", "1e-06"), ("0", "2e-06"), ("4", "1e-06"), ("4", "2e-06")]
    analog = [float(r["nrmse_mean"]) for r in got[:2]]
    quantised = [float(r["nrmse_mean"]) for r in got[2:]]
    assert max(analog) < 1e-3 and min(quantised) > 0.02
    lines = plot_lines(json.loads((out / "sweep.json").read_text()), "nrmse_mean")["lines"]
    assert [label for label, *_ in lines] == ["circuit.g_min=1e-06", "circuit.g_min=2e-06"]
    assert (out / "accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_worker_sigkilled_mid_sweep_changes_nothing(large, tmp_path):
    out = tmp_path / "killed_worker"
    proc = subprocess.Popen(cli_argv("sweep", *LARGE, "--jobs", 2, "-o", out), env=CLI_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: list((out / "results").glob("*.npz")), 120, "no result file appeared", proc)
    victim = wait_for(lambda: [p for p in worker_pids(proc.pid) if alive(p)], 10, "no worker")[0]
    assert len(list((out / "results").glob("*.npz"))) < 16   # mid-sweep: 8 units x 2 chunks
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert not alive(victim)
    assert (out / "sweep.csv").read_bytes() == (large / "sweep.csv").read_bytes()
    assert not list((out / "results").glob(".*"))


def test_ctrl_c_then_rerun_gives_the_same_csv(large, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(cli_argv("sweep", *LARGE, "--jobs", 1, "-o", out), env=CLI_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: list((out / "results").glob("*.npz")), 120, "no result file appeared", proc)
    workers = worker_pids(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted:") and "rerun" in lines[0], lines
    assert not (out / "sweep.csv").exists() and not list((out / "results").glob(".*"))
    kept = len(list((out / "results").glob("*.npz")))
    assert 0 < kept < 16
    wait_for(lambda: not any(alive(p) for p in workers), 10, "a worker survived Ctrl-C")
    n_kept = sum(np.load(f)["index"].size for f in (out / "results").glob("*.npz"))
    res = run_ok(*LARGE, "--jobs", 2, "-o", out)
    assert f"on twin: {96 * 8 - n_kept} simulated now" in res.stdout   # only what was not kept
    assert (out / "sweep.csv").read_bytes() == (large / "sweep.csv").read_bytes()


# --------------------------------------------------------------------------- bad input, pure

@pytest.mark.parametrize("sets, expect", [
    (["variation.foo=1"], ["unknown key 'foo'", "tau_sigma, write_sigma"]),
    (["nosuch.x=1"], ["unknown section [nosuch]", "variation"]),
    (["variation.tau_sigma=0,abc"], ["'abc'", "not a number"]),
    (["foo"], ["--set foo", "section.key=v1,v2"]),
    (["circuit.levels=0,,4"], ["empty value"]),
    (["circuit.levels=1.5"], ["'1.5'", "not an integer"]),
    (["variation.recalibrate=yes"], ["true or false"]),
    (["variation.tau_sigma=-0.1"], ["--set variation.tau_sigma=-0.1", "[variation] tau_sigma", ">= 0"]),
    (["variation.adc_bits=25"], ["--set variation.adc_bits=25", "0..24"]),
    (["ssm.taus=0.1"], ["list-valued key cannot be swept"]),
    (["variation.seed=1,2"], ["--seeds"]),
    (["circuit.levels=0,4,0"], ["repeated"]),
    (["circuit.levels=0", "circuit.levels=4"], ["given twice"]),
])
def test_bad_set_is_one_line_naming_it(sets, expect):
    with pytest.raises(InputError) as info:
        point_configs(load_config(None), parse_axes(sets, load_config(None)))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("--set ")
    for needle in expect:
        assert needle in msg, (needle, msg)


def test_a_bad_combination_names_the_point():
    """Each value is fine alone; together g_min exceeds g_max."""
    base = load_config(None)
    axes = parse_axes(["circuit.g_min=1e-6,5e-5", "circuit.g_max=1e-4,2e-5"], base)
    with pytest.raises(InputError, match=r"^--set point circuit.g_min=5e-05, circuit.g_max=2e-05: "
                                         r"\[circuit\] g_min: need 0 < g_min < g_max"):
        point_configs(base, axes)


def test_values_take_the_type_of_the_field():
    base = load_config(None)
    axes = parse_axes(["circuit.levels=0,4", "circuit.compensate_access=true,false",
                       "events.merge=extend,drop", "variation.tau_sigma=0,1e-1"], base)
    assert [a.values for a in axes] == [(0, 4), (True, False), ("extend", "drop"), (0.0, 0.1)]
    # the Python form, values coerced as the config holds them
    (axis,) = parse_axes({"variation.g_sigma": [0, 0.05]}, base)
    assert axis.values == (0.0, 0.05) and all(isinstance(v, float) for v in axis.values)
    assert parse_axes("circuit.levels=0,4", base) == axes[:1]   # one --set given alone
    points = point_configs(base, axes)
    assert len(points) == 16 and points[1][0] == (0, True, "extend", 0.1)
    assert points[1][1].variation.tau_sigma == 0.1 and points[-1][1].events.merge == "drop"


def test_a_point_the_engine_cannot_run_is_refused_before_anything_is_written(tmp_path):
    err = one_line_error(cli("sweep", "--dataset", "audio-chirps", "--n", 16, "--engine", "twin",
                             "--set", "sim.reltol=1e-4,0.05", "-o", tmp_path / "run"))
    assert "--engine twin at --set sim.reltol=0.05, --seeds instance 0: twin: [sim] reltol" in err
    assert not (tmp_path / "run").exists()


def test_ci95_is_the_student_t_interval():
    s = ci95([1.0, 2.0, 3.0, None])
    assert s["mean"] == 2.0 and s["n"] == 3
    assert s["ci95"] == pytest.approx(4.302652729911275 / np.sqrt(3))   # t(0.975, 2) * sd / sqrt(n)
    assert ci95([0.5]) == {"mean": 0.5, "ci95": None, "n": 1}
    assert ci95([None]) == {"mean": None, "ci95": None, "n": 0}
    rows_ = [{"values": [v], "seed": s, "n_failed": 0, **{m: float(v + s) for m in
             ("software", "ideal", "transfer", "retrained", "nrmse_mean")}}
             for v in (0, 1) for s in (0, 1)]
    stats = point_stats(rows_)
    assert [p["values"] for p in stats] == [[0], [1]] and stats[1]["ideal"]["mean"] == 1.5


# --------------------------------------------------------------------------- failures, pure

@pytest.fixture(scope="module")
def unit_job():
    """A chunk job of 6 samples (4 test, 2 train) of one unit, as the sweep makes it."""
    from cimspice import datasets
    from cimspice.experiments import rundir
    from cimspice.experiments.tasks import make_tasks
    from cimspice.pipeline import calibration_schedules, make_model, program
    from cimspice.schedule import n_input_rows

    ds = datasets.make_dataset("audio-chirps", 16, 0)
    cfg = load_config(None).replace(variation={"tau_sigma": 0.2, "seed": 3})
    model = make_model(cfg, n_input_rows(ds.sensor_size, cfg))
    schedules, record = calibration_schedules(ds, cfg)
    chosen = rundir.select(ds, 2, 4)
    tasks = make_tasks(ds, chosen, cfg, model, program(model, cfg, schedules, engine="twin",
                                                        record=record), circuit_train=True, engine="twin")
    return ProgramJob("p000_s003", model, cfg.to_toml(), schedules, record, "twin"), \
        ChunkJob("p000_s003", 0, tasks, cfg.digest())


def test_a_chunk_that_killed_its_workers_is_recorded_then_redone(unit_job, tmp_path):
    _, job = unit_job
    indices = [t.index for t in job.tasks]
    path = tmp_path / "c.npz"
    path.write_bytes(ideal_only(job, "WorkerDied: the worker running it died 4 times"))
    data = read_chunk(path)
    assert not chunk_done(data, job.config_digest, "twin", indices)   # a rerun simulates it again
    recs = chunk_records(data, job.config_digest)
    assert all(r.ideal is not None and r.circuit is None and r.error.startswith("WorkerDied")
               for r in recs)
    rep = compute_report(recs, circuit_train=True, engine="twin", n_classes=4)
    assert rep["accuracy"]["ideal"]["accuracy"] is not None          # ideal states kept
    assert rep["accuracy"]["transfer"]["accuracy"] is None and rep["n_samples"]["failed"] == 6

    data, summary = run_chunk(job)
    path.write_bytes(data)
    assert summary == {"n": 6, "n_failed": 0}
    done = read_chunk(path)
    assert chunk_done(done, job.config_digest, "twin", indices)
    assert not chunk_done(done, "another-config", "twin", indices)
    assert not chunk_done(done, job.config_digest, "ngspice", indices)
    assert not chunk_done(done, job.config_digest, "twin", indices[:-1])
    assert all(r.circuit is not None and not r.error for r in chunk_records(done, job.config_digest))


def test_a_unit_that_cannot_be_programmed_is_a_row_of_failures(unit_job):
    prog, job = unit_job
    error, mapping = program_unit(dataclasses.replace(prog, config_toml="[circuit]\nlevels = 1\n"))
    assert mapping is None and error.startswith("ConfigError: ") and "levels" in error, error
    samples = [(t.split, t.index, t.label) for t in job.tasks]
    data = np.load(io.BytesIO(chunk_bytes(samples, [None] * 6, "d", "twin",
                                          errors=[f"program: {error}"] * 6)))
    recs = chunk_records({k: data[k] for k in data.files}, "d")
    row = unit_row((0.2,), 3, compute_report(recs, circuit_train=True, engine="twin", n_classes=4))
    assert row["n_failed"] == 6 and row["nrmse_mean"] is None
    assert all(row[p] is None for p in ("software", "ideal", "transfer", "retrained"))
    assert csv_text(["variation.tau_sigma"], [row]).splitlines()[1] == "0.2,3,,,,,,4,6"
    ok_error, mapping = program_unit(prog)
    assert ok_error == "" and mapping.n_states == 8
