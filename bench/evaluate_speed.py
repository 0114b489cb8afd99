"""Speed-up of `cimspice evaluate` with 2 Dask worker processes over 1 (--jobs 2 vs --jobs 1).

Makes one small built-in dataset, then runs the same evaluation into fresh run directories
(--jobs 1, then --jobs 2: a local dask.distributed cluster of that many worker processes, one
thread each) and prints a table (jobs; wall time of the whole command; wall time of the engine
phase, of which the cluster start-up; samples per second; the sum of the per-sample ngspice
times) and the speed-up ratios. ``--rounds R`` alternates the two R times and reports each
column's median (the machine's load moves single runs by 10-30 %). Every run must give
identical states; the script checks that too.

    python bench/evaluate_speed.py                    # dvs-bars, 16 samples, all simulated
    python bench/evaluate_speed.py --n 24 --rounds 3 --config my.toml
    python bench/evaluate_speed.py --scheduler tcp://127.0.0.1:8786   # also a cluster by hand

The machine should be otherwise idle: other processes competing for the 2 cores lower the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from cimspice import datasets


def run(data: Path, out: Path, where: list[str], config: str | None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "cimspice.cli", "evaluate", "--dataset", str(data),
           "--circuit-train", "--no-plots", *where, "-o", str(out)]
    if config:
        cmd += ["--config", config]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"evaluate {' '.join(where)} failed:\n{proc.stderr}")
    return wall, json.loads((out / "report.json").read_text())


def states(run_dir: Path) -> dict:
    out = {}
    for f in sorted((run_dir / "samples").glob("*.h5")):
        with h5py.File(f, "r") as h:
            out[f.stem] = h["states/circuit"][()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="dvs-bars")
    ap.add_argument("--n", type=int, default=16, help="samples (all are simulated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=None)
    ap.add_argument("--rounds", type=int, default=1, help="alternate --jobs 1 / 2 this many times")
    ap.add_argument("--scheduler", default=None,
                    help="also run on this existing Dask cluster (tcp://host:port)")
    args = ap.parse_args()

    setups = [("1", ["--jobs", "1"]), ("2", ["--jobs", "2"])]
    if args.scheduler:
        setups.append(("sched", ["--scheduler", args.scheduler]))
    rows: dict = {name: [] for name, _ in setups}
    with tempfile.TemporaryDirectory(prefix="cimspice-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data.npz"
        datasets.save_dataset(data, datasets.make_dataset(args.dataset, args.n, args.seed))
        ref = None
        same = True
        for r in range(args.rounds):
            for name, where in setups:
                out = tmp / f"run{name}_{r}"
                wall, rep = run(data, out, where, args.config)
                t = rep["timing"]
                rows[name].append((t["jobs"], wall, t["wall_time_s"], t.get("cluster_start_s") or 0.0,
                                   t["n_simulated"] / wall, rep["engine_time_s_total"]))
                s = states(out)
                ref = ref if ref is not None else s
                same &= s.keys() == ref.keys() and all(np.array_equal(s[k], ref[k]) for k in s)

    med = {name: [statistics.median(col) for col in zip(*rs)] for name, rs in rows.items()}
    print(f"cimspice evaluate on dask.distributed: {args.dataset}, {args.n} samples simulated "
          f"(--circuit-train), {os.cpu_count()} CPUs, config {args.config or 'default'}, "
          f"{args.rounds} round(s)" + (" (medians)" if args.rounds > 1 else ""))
    print(f"{'workers':>7}  {'wall s':>7}  {'engine phase s':>14}  {'start-up s':>10}  "
          f"{'samples/s':>9}  {'sum ngspice s':>13}")
    for name, (jobs, wall, phase, start, sps, spice_s) in med.items():
        label = f"{jobs:g}" if name != "sched" else f"{jobs:g} (sched)"
        print(f"{label:>7}  {wall:>7.1f}  {phase:>14.1f}  {start:>10.1f}  {sps:>9.3f}  {spice_s:>13.1f}")
    a, b = med["1"], med["2"]
    print(f"speed-up, 2 workers vs 1: wall {a[1] / b[1]:.2f}x; engine phase {a[2] / b[2]:.2f}x; "
          f"engine phase without the start-up {(a[2] - a[3]) / (b[2] - b[3]):.2f}x")
    print(f"identical states in every run: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
