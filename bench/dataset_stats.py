"""Size and event-rate table of the built-in datasets (the numbers in README / docs/datasets.md).

    python bench/dataset_stats.py [--n 200] [--seed 0] [--accuracy]

Columns: classes; sensor size (tonic order) and input rows after the default pooling (4x4 pixels,
ON/OFF split; audio: one row per channel); mean (min-max) events per sample; nominal stream
duration; mean event rate (events / duration). ``--accuracy`` adds the ideal-SSM test accuracy:
events -> pooled channels -> pulse schedule (t_p = 100 µs, stream end = nominal duration) ->
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
from cimspice import events as E  # noqa: E402


def ideal_states(ds, *, pool=4, n_states=8, taus=(0.01, 0.04), m=10, t_p=100e-6, seed=0):
    """(S, m, N) ideal states of every sample with the default pipeline settings."""
    from cimspice import ssm as S

    schedules = []
    for i in range(len(ds)):
        s = ds.sample(i)
        if not s.is_audio:
            s = E.Downsample(pool)(s)
        t, c, rows = E.to_channels(s)
        schedules.append(E.make_schedule(t, c, rows, t_p=t_p, t_end=ds.params["duration_us"]))
    model = S.random_ssm(schedules[0].n_rows, n_states, taus, seed=seed)
    return np.stack([S.simulate_ssm(model, sch, S.default_sample_times(sch.duration, m),
                                    method="pulse") for sch in schedules])


def readout_accuracy(ds, X) -> float:
    from cimspice.readout import RidgeReadout

    tr, te = ds.split == D.SPLIT_TRAIN, ds.split == D.SPLIT_TEST
    return float(RidgeReadout().fit(X[tr], ds.labels[tr]).score(X[te], ds.labels[te]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="samples per dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accuracy", action="store_true", help="add ideal SSM + ridge accuracy")
    ap.add_argument("--n-states", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--taus", type=float, nargs="+", default=[0.01, 0.04], help="seconds")
    ap.add_argument("--m", type=int, default=10, help="sample times per stream")
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--control-tau", type=float, default=5e-4,
                    help="no-memory control: one decay of this many seconds (0 = skip)")
    args = ap.parse_args(argv)

    head = (f"| dataset | classes | sensor | input rows | events/sample (min-max) | duration | "
            f"event rate | gen. time |")
    rule = "|---|---:|---|---:|---|---:|---:|---:|"
    if args.accuracy:
        head += "".join(f" acc N={n} |" for n in args.n_states)
        rule += "---:|" * len(args.n_states)
        if args.control_tau > 0:
            head += f" acc N={args.n_states[0]}, tau {args.control_tau * 1e3:g} ms |"
            rule += "---:|"
    print(f"n = {args.n} samples per dataset, seed {args.seed}"
          + (f"; accuracy: pool {args.pool}, taus {args.taus} s, m = {args.m}, t_p = 100 us, "
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
        rows = w if h == 1 else (-(-w // args.pool)) * (-(-h // args.pool)) * p
        row = (f"| {info.name} | {len(ds.classes)} | {w}x{h}x{p} | {rows} | "
               f"{counts.mean():.0f} ({counts.min()}-{counts.max()}) | {dur_s * 1e3:.0f} ms | "
               f"{counts.mean() / dur_s / 1e3:.1f} kev/s | {gen:.1f} s |")
        if args.accuracy:
            for n in args.n_states:
                X = ideal_states(ds, pool=args.pool, n_states=n, taus=tuple(args.taus), m=args.m)
                row += f" {readout_accuracy(ds, X):.3f} |"
            if args.control_tau > 0:
                X = ideal_states(ds, pool=args.pool, n_states=args.n_states[0],
                                 taus=(args.control_tau,), m=args.m)
                row += f" {readout_accuracy(ds, X):.3f} |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
