#!/usr/bin/env python3
"""ngspice spot checks of the variation curves (figures quoted in the README, "Variation").

For each in-circuit [variation] key at two spreads: the state NRMSE (circuit vs ideal SSM) of a
few samples on ngspice and on the twin, the same chip instance and noise draws on both (one
mapping, calibrated on the twin), and their ratio. Target (issue 13): the ngspice NRMSE within
10 % of the twin's. Also the twin-vs-ngspice NRMSE between the two engines' states.

    python bench/variation_spot.py                   # 4 samples of audio-chirps, seed 0
    python bench/variation_spot.py --samples 2 --dataset dvs-bars
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cimspice.config import config_from_toml
from cimspice.datasets import make_dataset
from cimspice.pipeline import build, calibration_schedules, make_model, nrmse, program, simulate
from cimspice.schedule import n_input_rows

TRACE_WOX = "[circuit]\ntopology = 'trace'\n[device]\npreset = 'wox'\n[read]\nmode = 'pulse'\n"
STATE = ""
# (topology label, config, key, two spreads)
POINTS = [
    ("trace+wox", TRACE_WOX, "tau_sigma", (0.1, 0.3)),
    ("trace+wox", TRACE_WOX, "write_sigma", (0.1, 0.3)),
    ("trace+wox", TRACE_WOX, "write_noise", (0.1, 0.3)),
    ("trace+wox", TRACE_WOX, "g_sigma", (0.05, 0.2)),
    ("state", STATE, "tau_sigma", (0.1, 0.3)),
    ("state", STATE, "write_sigma", (0.1, 0.3)),
    ("state", STATE, "write_noise", (0.1, 0.3)),
    ("state", STATE, "g_sigma", (0.05, 0.2)),
    ("state", STATE, "driver_offset", (0.0005, 0.002)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="audio-chirps")
    ap.add_argument("--samples", type=int, default=4, help="test samples per point")
    ap.add_argument("--seed", type=int, default=0, help="variation seed (the chip instance)")
    args = ap.parse_args()
    ds = make_dataset(args.dataset, 64, 0)
    rows = []
    print(f"dataset {args.dataset}, {args.samples} samples per point, chip seed {args.seed}; "
          f"state NRMSE vs the ideal SSM (mean over the samples)\n")
    print("| topology | key | value | ngspice | twin | ngspice / twin | twin vs ngspice | ngspice s |")
    print("|---|---|---|---|---|---|---|---|")
    for topo, toml, key, values in POINTS:
        for value in values:
            cfg = config_from_toml(toml).replace(variation={key: value, "seed": args.seed})
            model = make_model(cfg, n_input_rows(ds.sensor_size, cfg))
            schedules, record = calibration_schedules(ds, cfg)
            mapping = program(model, cfg, schedules, engine="twin", record=record)
            test = np.flatnonzero(np.arange(len(ds)) % 4 == 1)[:args.samples]
            ng, tw, diff, t_ng = [], [], [], 0.0
            for i in test:
                prep = build(ds.sample(int(i)), cfg, model=model, mapping=mapping, key=int(i))
                t0 = time.perf_counter()
                a = simulate(prep, engine="ngspice")
                t_ng += time.perf_counter() - t0
                b = simulate(prep, engine="twin")
                ng.append(a.nrmse)
                tw.append(b.nrmse)
                diff.append(nrmse(b.circuit, a.circuit))
            r = np.mean(ng) / np.mean(tw)
            rows.append(r)
            print(f"| {topo} | {key} | {value:g} | {np.mean(ng) * 100:.2f} % | {np.mean(tw) * 100:.2f} % | "
                  f"{r:.4f} | {max(diff):.1e} | {t_ng / len(test):.1f} |", flush=True)
    print(f"\nngspice / twin NRMSE ratio: {min(rows):.4f} .. {max(rows):.4f} (target 0.9 .. 1.1)")


if __name__ == "__main__":
    main()
