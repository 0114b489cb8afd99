#!/usr/bin/env python3
"""Fidelity of the simulated hardware on every built-in dataset (figures quoted in the README).

For each dataset and circuit configuration: software accuracy (dirac SSM on the raw events),
ideal accuracy (pulse SSM on the schedule), circuit accuracy with the readout trained on ideal
states (transfer) and retrained on circuit states, the gaps between them with paired 95 %
confidence intervals (the same test samples under both protocols: d_i = correct_a - correct_b,
mean +- 1.96 sd / sqrt(n)), and the state NRMSE. Runs `cimspice.evaluate` (what the `cimspice
evaluate` command runs) with circuit_train on the chosen engine, every run in this process.

Configurations:
  ideal-parts  linear write, no window, transistors deep in triode (V_g = 5 V), no wire
               resistance, reltol 1e-6: the circuit should reproduce the SSM (target: gap <= 1 pp,
               NRMSE <= 2 %)
  default      the built-in defaults (1T1R with V_g = 1.8 V level-1 access, linear write)
  wires-quant  default + 5 ohm wire segments + 16 conductance levels (a non-ideal array)
  state-read   default with read pulses ([read] mode = 'pulse': sensed device currents, read slots)
  trace-ideal  trace topology, ideal-integrator preset, read pulses, default array
  trace-wox    trace topology, WOx-like threshold preset (saturation window on), read pulses,
               default array (targets: retrained within 1 pp of ideal, transfer within 2 pp)
  trace-wox-lin  trace + WOx preset with the window off on the ideal-parts array (V_g = 5 V):
               target state NRMSE <= 0.5 %

    python bench/fidelity.py                 # all datasets, n = 96 samples each (72 train / 24 test)
    python bench/fidelity.py --n 48 --datasets dvs-bars
    python bench/fidelity.py --engine twin --n 4000     # 1000 test samples per dataset
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import cimspice
from cimspice.experiments.evaluate import Options

CONFIGS = {
    "ideal-parts": "[circuit]\nv_gate = 5.0\nr_wire = 0.0\n[device]\nmode = 'linear'\nwindow = false\n"
                   "[sim]\nreltol = 1e-6\n",
    "default": "",
    "wires-quant": "[circuit]\nr_wire = 5.0\nlevels = 16\n",
    "state-read": "[read]\nmode = 'pulse'\n",
    "trace-ideal": "[circuit]\ntopology = 'trace'\n[device]\npreset = 'ideal'\n[read]\nmode = 'pulse'\n",
    "trace-wox": "[circuit]\ntopology = 'trace'\n[device]\npreset = 'wox'\n[read]\nmode = 'pulse'\n",
    "trace-wox-lin": "[circuit]\ntopology = 'trace'\nv_gate = 5.0\n[device]\npreset = 'wox'\n"
                     "window = false\n[read]\nmode = 'pulse'\n",
}
DEFAULT_CONFIGS = ["ideal-parts", "default", "wires-quant"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96, help="samples per dataset (75 %% train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", nargs="+", default=["dvs-bars", "dvs-digits", "audio-chirps"])
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep run directories here")
    ap.add_argument("--engine", default="ngspice", help="engine of the circuit runs")
    ap.add_argument("--resume", action="store_true",
                    help="with --keep: resume the kept run directories (finished samples are not "
                         "simulated again) instead of starting them afresh")
    a = ap.parse_args()
    t_all = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = a.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for ds in a.datasets:
            for name in a.configs:
                cfg = base / f"{name}.toml"
                cfg.write_text(CONFIGS[name])
                run = base / f"{ds}-{name}"
                t0 = time.perf_counter()
                rep = cimspice.evaluate(Options(
                    dataset=ds, run_dir=run, n=a.n, seed=a.seed, circuit_train=True, plots=False,
                    config=str(cfg), engine=a.engine, jobs=a.jobs, progress=False,
                    force=not (a.resume and a.keep)))
                wall = time.perf_counter() - t0
                rows.append((ds, name, rep, wall))
                print(f"done {ds} {name} in {wall:.0f} s", file=sys.stderr, flush=True)

    print(f"{'dataset':13s} {'config':12s} {'chance':>6s} {'softw.':>6s} {'ideal':>6s} {'transfer':>8s} "
          f"{'retrained':>9s} {'NRMSE mean':>10s} {'NRMSE max':>9s} {'wall s':>6s}")
    for ds, name, rep, wall in rows:
        acc = {p: rep["accuracy"][p]["accuracy"] for p in ("software", "ideal", "transfer", "retrained")}
        f = {p: "n/a" if v is None else f"{100 * v:.1f}" for p, v in acc.items()}
        print(f"{ds:13s} {name:12s} {100 * rep['chance']:6.1f} {f['software']:>6s} {f['ideal']:>6s} "
              f"{f['transfer']:>8s} {f['retrained']:>9s} {100 * rep['nrmse']['mean']:>9.3f}% "
              f"{100 * rep['nrmse']['max']:>8.3f}% {wall:>6.0f}")
    print("\ngaps in pp, paired 95 % CI over the same test samples (positive = accuracy lost):")
    print(f"{'dataset':13s} {'config':12s} {'n test':>6s} {'software-ideal':>16s} {'ideal-transfer':>16s} "
          f"{'ideal-retrained':>16s}")
    for ds, name, rep, wall in rows:
        gaps = [paired_gap(rep, p, q) for p, q in (("software", "ideal"), ("ideal", "transfer"),
                                                  ("ideal", "retrained"))]
        n = rep["accuracy"]["ideal"]["n_test"]
        print(f"{ds:13s} {name:12s} {n:>6d} " + " ".join(f"{g:>16s}" for g in gaps))
    print(f"\n(n = {a.n} samples per dataset, seed {a.seed}, engine {a.engine}; accuracies in %; "
          f"{time.perf_counter() - t_all:.1f} s in all)")


def paired_gap(rep: dict, a: str, b: str) -> str:
    """Accuracy of protocol a minus b, in pp, with a paired normal 95 % CI, over the test samples
    both protocols scored (from the report's per-sample predictions)."""
    pa, pb = rep["accuracy"][a].get("predicted"), rep["accuracy"][b].get("predicted")
    if not pa or not pb:
        return "n/a"
    labels = rep["test_labels"]
    keys = sorted(set(pa) & set(pb))
    d = [float(pa[k] == labels[k]) - float(pb[k] == labels[k]) for k in keys]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n)
    return f"{100 * mean:+.1f} +- {100 * half:.1f}"

if __name__ == "__main__":
    main()
