"""Speed of `cimspice sweep`: the twin target and the 2-worker speed-up on ngspice.

1. The twin target (issue 13): 7 points x 5 chip instances x 96 samples of one built-in dataset
   (``--set variation.tau_sigma=0,0.05,...,0.3 --seeds 5 --n 96 --engine twin``, local workers,
   default --jobs) must take <= 60 s, the whole command.
2. ngspice, --jobs 1 vs --jobs 2 (as bench/evaluate_speed.py for evaluate): a small sweep
   (``--set circuit.levels=0,4``, 1 instance, ``--ngspice-n`` samples, every one simulated);
   target: 2 workers >= 1.7x faster than 1. Both runs must write the same sweep.csv.

Each run goes into a fresh run directory; the table gives the wall time of the whole command,
of the engine phase (cluster start-up included, then shown alone) and samples per second.
``--rounds R`` repeats each run R times and reports each column's median (the machine's load
moves single runs by 10-30 %).

    python bench/sweep_speed.py                        # both parts
    python bench/sweep_speed.py --skip-ngspice         # the twin target only
    python bench/sweep_speed.py --ngspice-n 12 --rounds 3

The machine should be otherwise idle: other processes competing for the cores slow every run
and lower the ratio.
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

TWIN_SET = "variation.tau_sigma=0,0.05,0.1,0.15,0.2,0.25,0.3"
TARGET_S = 60.0
SPEEDUP_TARGET = 1.7


def run(out: Path, args: list[str]) -> tuple[float, dict, bytes]:
    """(wall s, sweep.json, sweep.csv bytes) of one `cimspice sweep ARGS -o OUT`."""
    cmd = [sys.executable, "-m", "cimspice.cli", "sweep", *args, "--no-plots", "-o", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"sweep {' '.join(args)} failed:\n{proc.stderr}")
    return wall, json.loads((out / "sweep.json").read_text()), (out / "sweep.csv").read_bytes()


def measure(tmp: Path, name: str, args: list[str], rounds: int) -> tuple[list[float], bytes]:
    """Medians of (jobs, wall, engine phase, start-up, samples/s) over ``rounds`` fresh runs;
    the CSV of the last one (every run must write the same)."""
    cols, csvs = [], set()
    for r in range(rounds):
        wall, summary, csv = run(tmp / f"{name}_{r}", args)
        t = summary["timing"]
        cols.append((t["jobs"], wall, t["wall_time_s"], t["cluster_start_s"] or 0.0,
                     t["n_simulated"] / wall))
        csvs.add(csv)
    if len(csvs) != 1:
        sys.exit(f"{name}: the runs wrote different sweep.csv files")
    return [statistics.median(c) for c in zip(*cols)], csvs.pop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="audio-chirps")
    ap.add_argument("--n", type=int, default=96, help="samples per unit of the twin sweep")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ngspice-n", type=int, default=8, help="samples per unit of the ngspice sweep")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-ngspice", action="store_true")
    args = ap.parse_args()

    twin = ["--dataset", args.dataset, "--n", str(args.n), "--set", TWIN_SET, "--seeds",
            str(args.seeds), "--engine", "twin"]
    spice = ["--dataset", args.dataset, "--n", str(args.ngspice_n), "--set", "circuit.levels=0,4",
             "--engine", "ngspice"]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cimspice-bench-") as tmp:
        tmp = Path(tmp)
        rows["twin"], _ = measure(tmp, "twin", twin, args.rounds)
        if not args.skip_ngspice:
            rows["ngspice, 1 worker"], csv1 = measure(tmp, "spice1", [*spice, "--jobs", "1"], args.rounds)
            rows["ngspice, 2 workers"], csv2 = measure(tmp, "spice2", [*spice, "--jobs", "2"], args.rounds)

    n_units = 7 * args.seeds
    print(f"cimspice sweep: {args.dataset}, {os.cpu_count()} CPUs, {args.rounds} round(s)"
          + (" (medians)" if args.rounds > 1 else ""))
    print(f"  twin:    --set {TWIN_SET} --seeds {args.seeds} --n {args.n} "
          f"({n_units} units x {args.n} = {n_units * args.n} samples)")
    if not args.skip_ngspice:
        print(f"  ngspice: --set circuit.levels=0,4 --n {args.ngspice_n} ({2 * args.ngspice_n} samples)")
    print(f"{'run':>20}  {'workers':>7}  {'wall s':>7}  {'engine phase s':>14}  {'start-up s':>10}  "
          f"{'samples/s':>9}")
    for name, (jobs, wall, phase, start, sps) in rows.items():
        print(f"{name:>20}  {jobs:>7g}  {wall:>7.1f}  {phase:>14.1f}  {start:>10.1f}  {sps:>9.2f}")
    ok = rows["twin"][1] <= TARGET_S
    print(f"twin target: {rows['twin'][1]:.1f} s <= {TARGET_S:g} s: {'yes' if ok else 'NO'}")
    if not args.skip_ngspice:
        a, b = rows["ngspice, 1 worker"], rows["ngspice, 2 workers"]
        print(f"ngspice speed-up, 2 workers vs 1: wall {a[1] / b[1]:.2f}x; engine phase "
              f"{a[2] / b[2]:.2f}x; engine phase without the start-up "
              f"{(a[2] - a[3]) / (b[2] - b[3]):.2f}x (target >= {SPEEDUP_TARGET:g}x)")
        same = csv1 == csv2
        print(f"same sweep.csv on 1 and 2 workers: {'yes' if same else 'NO'}")
        ok &= same
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
