#!/usr/bin/env python3
"""Speed of one SSM-layer simulation: wall time, ngspice time, peak memory, overhead.

Arrays are physical crossbars of R rows x C columns (C = 2 x states, differential pairs) with
the default configuration (1T1R cells with NMOS access, linear state devices), a 100 ms stream
and 10 events per row. A "naive" deck of the same cell count (a volatile device and a transistor
in every cell, default ngspice step control) is run once for the ratio. Each case runs in a fresh
subprocess; peak memory is ngspice's own (VmHWM), from a second run of the same deck.

    python bench/simulate_speed.py            # table
    python bench/simulate_speed.py --quick    # 8x8 and 16x16 only, no naive deck
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from cimspice import pipeline as sim
from cimspice.config import load_config
from cimspice.datasets import audio_stream
from cimspice.engines.ngspice import run_ngspice
from cimspice.hardware.devices import device_lib_text


def stream(n_rows: int, per_row: int, duration_us: int, seed: int):
    """``per_row`` events per row on average, seeded (the project's synthetic audio stream)."""
    return audio_stream(n_rows, n_rows * per_row, duration_us, seed, source=f"bench {n_rows} rows")


def ngspice_peak_mb(deck: str) -> float:
    """Peak resident memory of ngspice alone on ``deck`` (VmHWM polled from /proc, MB).

    getrusage(RUSAGE_CHILDREN) would also count the Python parent's pages copied at fork.
    """
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "deck.cir")
        with open(path, "w") as f:
            f.write(deck)
        proc = subprocess.Popen(["ngspice", "-b", "-r", os.path.join(d, "o.raw"), path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    for line in st:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.01)
    return peak / 1024.0


def one_case(rows: int, cols: int, duration_ms: float, per_row: int) -> dict:
    cfg = load_config(None).replace(ssm={"n_states": cols // 2},
                                    events={"t_end_us": int(duration_ms * 1000)})
    sample = stream(rows, per_row, int(duration_ms * 1000), seed=1)
    sim.build(stream(2, 2, 1000, seed=0), cfg.replace(events={"t_end_us": 0}))  # warm imports
    t0 = time.perf_counter()
    prep = sim.build(sample, cfg)
    res = sim.simulate(prep)
    wall = time.perf_counter() - t0
    child = ngspice_peak_mb(prep.deck)
    return {"rows": rows, "cols": cols, "pulses": prep.schedule.n_pulses, "duration_ms": duration_ms,
            "wall_s": wall, "ngspice_s": res.engine_time_s, "peak_mb": child, "nrmse": res.nrmse}


def naive_case(rows: int, cols: int, per_row: int) -> dict:
    """Every cell a volatile device + transistor, PWL pulses of 1.2 V, default step control."""
    rng = np.random.default_rng(1)
    lines = ["* naive 1T1R deck with a volatile device in every cell", device_lib_text()]
    for r in range(rows):
        ts = np.sort(rng.choice(np.arange(1, 499), per_row, replace=False)) * 2e-4  # 200 us slots: no overlap
        pts = ["0 0"] + [f"{t:.6g} 0 {t + 1e-6:.6g} 1.2 {t + 1e-4:.6g} 1.2 {t + 1.01e-4:.6g} 0" for t in ts]
        lines.append(f"Vr{r} r{r} 0 PWL({' '.join(pts)})")
    lines.append("Vwl wl 0 DC 1.8")
    for c in range(cols):
        lines.append(f"Vc{c} c{c} 0 DC 0")
        for r in range(rows):
            lines.append(f"xv{r}_{c} r{r} m{r}_{c} vmem mode=1 win=1")
            lines.append(f"mn{r}_{c} m{r}_{c} wl c{c} 0 nacc w=2e-6 l=0.18e-6")
    lines += [".save i(vc0)", ".options reltol=1e-3 method=gear", ".tran 10u 100m 0 50u", ".end"]
    deck = "\n".join(lines) + "\n"
    t0 = time.perf_counter()
    run = run_ngspice(deck, timeout=900)
    wall = time.perf_counter() - t0
    child = ngspice_peak_mb(deck)
    return {"rows": rows, "cols": cols, "pulses": rows * per_row, "duration_ms": 100.0,
            "wall_s": wall, "ngspice_s": run.elapsed_s, "peak_mb": child, "nrmse": float("nan")}


def run_sub(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        kind, rows, cols, dur, per_row = a.one[0], *map(float, a.one[1:])
        fn = naive_case if kind == "naive" else one_case
        res = fn(int(rows), int(cols), int(per_row)) if kind == "naive" else fn(int(rows), int(cols), dur, int(per_row))
        print(json.dumps(res))
        return
    sizes = [(8, 8), (16, 16)] if a.quick else [(8, 8), (16, 16), (32, 32)]
    cases = [("layer", r, c, 100, 10) for r, c in sizes]
    cases.append(("layer", 16, 16, 400, 40))  # 4x longer stream, same event rate: memory growth
    if not a.quick:
        cases.append(("naive", 16, 16, 100, 10))
    rows = []
    for kind, r, c, dur, per in cases:
        res = run_sub([kind, str(r), str(c), str(dur), str(per)])
        res["kind"] = kind
        rows.append(res)
    print(f"{'deck':6s} {'array':>7s} {'pulses':>6s} {'stream':>7s} {'wall s':>7s} {'ngspice s':>9s} "
          f"{'outside %':>9s} {'peak MB':>7s} {'NRMSE':>9s}")
    for x in rows:
        outside = 100.0 * (x["wall_s"] - x["ngspice_s"]) / x["wall_s"]
        print(f"{x['kind']:6s} {x['rows']:>3d}x{x['cols']:<3d} {x['pulses']:>6d} {x['duration_ms']:>5.0f}ms "
              f"{x['wall_s']:>7.2f} {x['ngspice_s']:>9.2f} {outside:>9.1f} {x['peak_mb']:>7.1f} {x['nrmse']:>9.2e}")
    base = next(x for x in rows if x["kind"] == "layer" and x["rows"] == 16 and x["duration_ms"] == 100)
    long = next(x for x in rows if x["kind"] == "layer" and x["duration_ms"] == 400)
    print(f"\nmemory, 400 ms vs 100 ms stream (16x16): {long['peak_mb'] / base['peak_mb']:.2f}x "
          f"for 4x the stream")
    naive = [x for x in rows if x["kind"] == "naive"]
    if naive:
        print(f"naive 16x16 deck / cimspice 16x16 layer, ngspice time: "
              f"{naive[0]['ngspice_s'] / base['ngspice_s']:.1f}x")


if __name__ == "__main__":
    main()
