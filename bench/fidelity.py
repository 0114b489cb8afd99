#!/usr/bin/env python3
"""Fidelity of the simulated hardware on every built-in dataset (figures quoted in the README).

For each dataset and circuit configuration: ideal accuracy, SPICE accuracy with the readout
trained on ideal states (transfer) and retrained on SPICE states, and the state NRMSE. Runs
`cimspice evaluate` (the same code path as a user's run) with --circuit-train.

Configurations:
  ideal-parts  linear write, no window, transistors deep in triode (V_g = 5 V), no wire
               resistance, reltol 1e-6: the circuit should reproduce the SSM (target: gap <= 1 pp,
               NRMSE <= 2 %)
  default      the built-in defaults (1T1R with V_g = 1.8 V level-1 access, linear write)
  wires-quant  default + 5 ohm wire segments + 16 conductance levels (a non-ideal array)

    python bench/fidelity.py                 # all datasets, n = 96 samples each (72 train / 24 test)
    python bench/fidelity.py --n 48 --datasets dvs-bars
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "ideal-parts": "[circuit]\nv_gate = 5.0\nr_wire = 0.0\n[device]\nmode = 'linear'\nwindow = false\n"
                   "[sim]\nreltol = 1e-6\n",
    "default": "",
    "wires-quant": "[circuit]\nr_wire = 5.0\nlevels = 16\n",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96, help="samples per dataset (75 %% train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", nargs="+", default=["dvs-bars", "dvs-digits", "audio-chirps"])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep run directories here")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = a.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for ds in a.datasets:
            for name in a.configs:
                cfg = base / f"{name}.toml"
                cfg.write_text(CONFIGS[name])
                run = base / f"{ds}-{name}"
                cmd = [sys.executable, "-m", "cimspice.cli", "evaluate", "--dataset", ds, "--n", str(a.n),
                       "--seed", str(a.seed), "--circuit-train", "--no-plots", "-c", str(cfg), "-o", str(run),
                       "--force"]
                if a.jobs:
                    cmd += ["--jobs", str(a.jobs)]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                wall = time.perf_counter() - t0
                rep = json.loads((run / "report.json").read_text())
                rows.append((ds, name, rep, wall))
                print(f"done {ds} {name} in {wall:.0f} s", file=sys.stderr, flush=True)

    def acc(rep, key):
        v = rep["accuracy"][key]
        v = v.get("accuracy") if isinstance(v, dict) else v
        return "n/a" if v is None else f"{100 * v:.1f}"

    print(f"{'dataset':13s} {'config':12s} {'chance':>6s} {'ideal':>6s} {'transfer':>8s} {'retrained':>9s} "
          f"{'gap pp':>6s} {'NRMSE mean':>10s} {'NRMSE max':>9s} {'wall s':>6s}")
    for ds, name, rep, wall in rows:
        ideal = rep["accuracy"]["ideal"]
        tr = rep["accuracy"]["transfer"]
        iv = ideal.get("accuracy") if isinstance(ideal, dict) else ideal
        tv = tr.get("accuracy") if isinstance(tr, dict) else tr
        gap = "n/a" if iv is None or tv is None else f"{100 * (iv - tv):.1f}"
        chance = 100.0 * rep["chance"]
        print(f"{ds:13s} {name:12s} {chance:6.1f} {acc(rep, 'ideal'):>6s} {acc(rep, 'transfer'):>8s} "
              f"{acc(rep, 'retrained'):>9s} {gap:>6s} {100 * rep['nrmse']['mean']:>9.3f}% "
              f"{100 * rep['nrmse']['max']:>8.3f}% {wall:>6.0f}")
    print(f"\n(n = {a.n} samples per dataset, seed {a.seed}; accuracies in %, gap = ideal - transfer)")


if __name__ == "__main__":
    main()
