"""Size and event-rate table of the built-in datasets (the numbers in README / docs/datasets.md).

    python bench/dataset_stats.py [--n 200] [--seed 0] [--accuracy]

Columns: classes; sensor size (tonic order) and input rows with the default configuration
(4x4 pooling, ON/OFF merged; audio: one row per channel); mean (min-max) events per sample; nominal stream
duration; mean event rate (events / duration). ``--accuracy`` adds the ideal-SSM test accuracy:
events -> the default pipeline's pulse schedule (stream end = nominal duration) ->
``random_ssm`` (Gaussian B, seed 0) -> ``simulate_ssm(method='pulse')`` at ``m`` evenly spaced
instants -> ``RidgeReadout`` (alpha by 5-fold CV) trained on the train split, scored on the test
split, for each ``--n-states``, and a no-memory control (one 0.5 ms decay).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cimspice import datasets as D  # noqa: E402
from cimspice import ssm as S  # noqa: E402
from cimspice.config import load_config  # noqa: E402
from cimspice.pipeline import make_model  # noqa: E402
from cimspice.readout import RidgeReadout  # noqa: E402
from cimspice.schedule import n_input_rows, schedule_sample  # noqa: E402


def ideal_states(ds, *, n_states=8, taus=(0.01, 0.04), m=10, split_polarity=False):
    """(S, m, N) ideal states of every sample through the package's default pipeline
    (``schedule.schedule_sample``: pooling, polarity, merge gap of the default config), with the
    stream ending at the dataset's nominal duration."""
    cfg = load_config(None).replace(ssm={"n_states": n_states, "taus": list(taus), "n_samples": m},
                                    events={"t_end_us": int(ds.params["duration_us"]),
                                            "split_polarity": split_polarity})
    schedules = [schedule_sample(ds.sample(i), cfg) for i in range(len(ds))]
    model = make_model(cfg, schedules[0].n_rows)
    return np.stack([S.simulate_ssm(model, sch, S.default_sample_times(sch.duration, m),
                                    method="pulse") for sch in schedules])


def readout_accuracy(ds, X) -> float:
    tr, te = ds.split == D.SPLIT_TRAIN, ds.split == D.SPLIT_TEST
    return float(RidgeReadout().fit(X[tr], ds.labels[tr]).score(X[te], ds.labels[te]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split-polarity", action="store_true",
                    help="ON/OFF as separate input rows (default: merged, as the default config)")
    ap.add_argument("--n", type=int, default=200, help="samples per dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accuracy", action="store_true", help="add ideal SSM + ridge accuracy")
    ap.add_argument("--n-states", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--taus", type=float, nargs="+", default=[0.01, 0.04], help="seconds")
    ap.add_argument("--m", type=int, default=10, help="sample times per stream")
    ap.add_argument("--control-tau", type=float, default=5e-4,
                    help="no-memory control: one decay of this many seconds (0 = skip)")
    args = ap.parse_args(argv)

    head = ("| dataset | classes | sensor | input rows | events/sample (min-max) | duration | "
            "event rate | gen. time |")
    rule = "|---|---:|---|---:|---|---:|---:|---:|"
    if args.accuracy:
        head += "".join(f" acc N={n} |" for n in args.n_states)
        rule += "---:|" * len(args.n_states)
        if args.control_tau > 0:
            head += f" acc N={args.n_states[0]}, tau {args.control_tau * 1e3:g} ms |"
            rule += "---:|"
    print(f"n = {args.n} samples per dataset, seed {args.seed}"
          + (f"; accuracy: default pipeline, taus {args.taus} s, m = {args.m}, "
             f"test split" if args.accuracy else ""))
    print(head)
    print(rule)
    for info in D.list_datasets():
        t0 = time.perf_counter()
        ds = D.make_dataset(info.name, args.n, args.seed)
        gen = time.perf_counter() - t0
        counts = np.diff(ds.offsets)
        dur_s = ds.duration_us * 1e-6
        w, h, p = ds.sensor_size
        rows = n_input_rows(ds.sensor_size,
                            load_config(None).replace(events={"split_polarity": args.split_polarity}))
        row = (f"| {info.name} | {len(ds.classes)} | {w}x{h}x{p} | {rows} | "
               f"{counts.mean():.0f} ({counts.min()}-{counts.max()}) | {dur_s * 1e3:.0f} ms | "
               f"{counts.mean() / dur_s / 1e3:.1f} kev/s | {gen:.1f} s |")
        if args.accuracy:
            for n in args.n_states:
                X = ideal_states(ds, n_states=n, taus=tuple(args.taus), m=args.m,
                                 split_polarity=args.split_polarity)
                row += f" {readout_accuracy(ds, X):.3f} |"
            if args.control_tau > 0:
                X = ideal_states(ds, n_states=args.n_states[0], split_polarity=args.split_polarity,
                                 taus=(args.control_tau,), m=args.m)
                row += f" {readout_accuracy(ds, X):.3f} |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
