"""Speed-up of `cimspice evaluate` with 2 worker processes over --jobs 1.

Makes one small built-in dataset, then runs the same evaluation twice into fresh run
directories (--jobs 1, then --jobs 2) and prints a table (jobs, wall time of the whole command,
wall time of the ngspice phase, samples per second) and the speed-up ratio. Both runs must give
identical states; the script checks that too.

    python bench/evaluate_speed.py                    # dvs-bars, 16 samples, all simulated
    python bench/evaluate_speed.py --n 24 --config my.toml

The machine should be otherwise idle: other processes competing for the 2 cores lower the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from cimspice import datasets


def run(data: Path, out: Path, jobs: int, config: str | None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "cimspice.cli", "evaluate", "--dataset", str(data),
           "--circuit-train", "--no-plots", "--jobs", str(jobs), "-o", str(out)]
    if config:
        cmd += ["--config", config]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"evaluate --jobs {jobs} failed:\n{proc.stderr}")
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
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cimspice-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data.npz"
        datasets.save_dataset(data, datasets.make_dataset(args.dataset, args.n, args.seed))
        rows = []
        for jobs in (1, 2):
            wall, rep = run(data, tmp / f"run{jobs}", jobs, args.config)
            t = rep["timing"]
            rows.append((jobs, wall, t["wall_time_s"], t["n_simulated"] / wall,
                         rep["engine_time_s_total"]))
        a, b = states(tmp / "run1"), states(tmp / "run2")
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    print(f"cimspice evaluate: {args.dataset}, {args.n} samples simulated (--circuit-train), "
          f"{os.cpu_count()} CPUs, config {args.config or 'default'}")
    print(f"{'jobs':>4}  {'wall s':>8}  {'ngspice phase s':>15}  {'samples/s':>9}  {'sum ngspice s':>13}")
    for jobs, wall, phase, sps, spice_s in rows:
        print(f"{jobs:>4}  {wall:>8.1f}  {phase:>15.1f}  {sps:>9.3f}  {spice_s:>13.1f}")
    print(f"speed-up (wall, jobs 2 vs 1): {rows[0][1] / rows[1][1]:.2f}x; "
          f"ngspice phase: {rows[0][2] / rows[1][2]:.2f}x")
    print(f"identical states with --jobs 1 and 2: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
