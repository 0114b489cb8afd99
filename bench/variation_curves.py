#!/usr/bin/env python3
"""Accuracy vs variation on the built-in datasets (the README's "Variation" curves and table).

For each [variation] key, one `cimspice sweep` per dataset (twin engine, 5 chip instances):
the realistic chip (trace topology, WOx-like preset, read pulses) for the device and array
keys, the state topology (the one with write drivers) for driver_offset. Prints, per key and
dataset, the retrained and transfer accuracy (mean +- 95 % CI over the chip instances) and the
state NRMSE at each spread, and the spread at which the mean retrained / transfer accuracy has
dropped 1 pp below the nominal chip's (linear interpolation between swept points; '>' = not
reached). Draws docs/variation_curves.png.

    python bench/variation_curves.py                          # 300 train / 1000 test per dataset
    python bench/variation_curves.py --n-train 96 --n-test 32 --seeds 2 --keys tau_sigma   # quick

The sweep runs are kept in --work (resumable: a rerun reuses finished chunks).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import cimspice
from cimspice.experiments.sweep import sweep

TRACE_WOX = ("[circuit]\ntopology = 'trace'\n[device]\npreset = 'wox'\n[read]\nmode = 'pulse'\n"
             "[energy]\naccounting = false\n")
STATE = "[energy]\naccounting = false\n"
KEYS = {   # key: (config, spreads incl. the nominal 0, axis label)
    "tau_sigma": (TRACE_WOX, [0, 0.2, 0.5, 1.0], "sigma of ln tau"),
    "write_sigma": (TRACE_WOX, [0, 0.2, 0.5, 1.0], "sigma of ln write rate"),
    "write_noise": (TRACE_WOX, [0, 0.2, 0.5, 1.0], "relative sigma of dw per pulse"),
    "g_sigma": (TRACE_WOX, [0, 0.1, 0.3, 0.6], "relative sigma of G"),
    "read_noise": (TRACE_WOX, [0, 0.03, 0.1, 0.3], "sigma / full scale"),
    "adc_bits": (TRACE_WOX, [0, 6, 4, 3, 2], "ADC bits"),
    "driver_offset": (STATE, [0, 0.001, 0.003, 0.01], "sigma of the offset, V (state)"),
}
DATASETS = ("dvs-bars", "dvs-digits", "audio-chirps")


def threshold(xs, drops):
    """The spread at which the accuracy drop first reaches 1 pp (linear interpolation), or None."""
    for i in range(1, len(xs)):
        if drops[i] >= 1.0:
            x0, x1, d0, d1 = xs[i - 1], xs[i], drops[i - 1], drops[i]
            return x1 if d1 == d0 else x0 + (1.0 - d0) * (x1 - x0) / (d1 - d0)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", nargs="+", default=list(KEYS), choices=list(KEYS))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path("bench_runs/variation"))
    ap.add_argument("--png", type=Path, default=Path("docs/variation_curves.png"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    n_total = 4 * max(args.n_test, args.n_train // 3 + 1)   # the split rule: 1 test in 4
    files = {}
    for name in args.datasets:   # one generated file per dataset, shared by every sweep
        path = args.work / f"{name}_{n_total}.npz"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "cimspice.cli", "datasets", "make", name, "-o",
                            str(path), "--n", str(n_total)], check=True, stdout=subprocess.DEVNULL)
        files[name] = path
    results = {}
    t0 = time.perf_counter()
    for key in args.keys:
        toml, values, _ = KEYS[key]
        cfg = args.work / f"{'state' if toml is STATE else 'trace_wox'}.toml"
        cfg.write_text(toml)
        for name in args.datasets:
            t1 = time.perf_counter()
            summ = sweep(str(files[name]), args.work / f"{key}_{name}", config=str(cfg),
                         sets=[f"variation.{key}={','.join(map(str, values))}"], seeds=args.seeds,
                         n_train=args.n_train, n_test=args.n_test, engine="twin", jobs=args.jobs,
                         plots=False)
            results[(key, name)] = summ
            print(f"# {key} {name}: {time.perf_counter() - t1:.0f} s", file=sys.stderr, flush=True)
    print(f"twin, {args.seeds} chip instances, {args.n_train} train / {args.n_test} test samples per "
          f"dataset; {time.perf_counter() - t0:.0f} s\n")
    print("| key | dataset | spreads | retrained % | transfer % | state NRMSE % | 1 pp drop (retrained / transfer) |")
    print("|---|---|---|---|---|---|---|")
    found = {}
    for (key, name), summ in results.items():
        xs = [pt["values"][0] for pt in summ["points"]]
        cells, out = {}, []
        for proto in ("retrained", "transfer"):
            m = [pt[proto]["mean"] * 100 for pt in summ["points"]]
            c = [pt[proto]["ci95"] or 0.0 for pt in summ["points"]]
            cells[proto] = " / ".join(f"{a:.1f}±{b * 100:.1f}" for a, b in zip(m, c))
            # nominal first, then growing spread (fewer ADC bits)
            order = np.argsort([(-x if key == "adc_bits" else x) if x else -np.inf for x in xs])
            xo = [xs[i] for i in order]
            th = threshold(xo, [m[order[0]] - m[i] for i in order])
            out.append(f"{th:.3g}" if th is not None else f"not within {xo[-1]:g}")
            found[(key, name, proto)] = th
        nr = " / ".join(f"{pt['nrmse_mean']['mean'] * 100:.1f}" for pt in summ["points"])
        print(f"| {key} | {name} | {', '.join(f'{x:g}' for x in xs)} | {cells['retrained']} | "
              f"{cells['transfer']} | {nr} | {out[0]} / {out[1]} |")
    (args.work / "curves.json").write_text(json.dumps(
        {f"{k}|{d}": v for (k, d), v in results.items()}, indent=1, default=str))
    draw(results, args)


def draw(results: dict, args) -> None:
    import matplotlib   # noqa: PLC0415 (plotting only here)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt   # noqa: PLC0415
    keys = list(dict.fromkeys(k for k, _ in results))
    cols = min(4, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colors = dict(zip(DATASETS, ("tab:blue", "tab:orange", "tab:green")))
    for ax, key in zip(axes.ravel(), keys):
        for (k, name), summ in results.items():
            if k != key:
                continue
            xs = np.array([pt["values"][0] for pt in summ["points"]], float)
            for proto, style in (("retrained", "-"), ("transfer", "--")):
                m = np.array([pt[proto]["mean"] for pt in summ["points"]]) * 100
                c = np.array([pt[proto]["ci95"] or 0.0 for pt in summ["points"]]) * 100
                x = np.where(xs == 0, 12, xs) if key == "adc_bits" else xs
                o = np.argsort(x)
                ax.errorbar(x[o], m[o], yerr=c[o], fmt=style, marker="o", ms=3, capsize=2,
                            color=colors.get(name), label=f"{name} {proto}")
        ax.set_title(key)
        ax.set_xlabel(KEYS[key][2] + (" (12 = none)" if key == "adc_bits" else ""))
        ax.set_ylabel("accuracy %")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    fig.suptitle(f"accuracy vs variation (twin, mean ± 95 % CI over {args.seeds} chips; "
                 f"solid: retrained, dashed: transfer)", fontsize=9)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=110)
    print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
