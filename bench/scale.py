#!/usr/bin/env python3
"""SPICE at scale: engine time and peak memory vs input rows, monolithic deck vs tiled vs twin.

Input rows R in (16, 64, 256, 700), 8 states (16 columns), default 1T1R layer, a synthetic
audio stream (the project's seeded `audio_stream`) of ``--ms`` ms with ``--per-row`` events per
row (fixed event rate per row: the pulse count grows with R). Engines:

- ``ngspice``        the monolithic deck (today's default); a size whose time, extrapolated from
                     the smaller sizes with the fitted exponent, exceeds ``--cap`` s is skipped
                     and its extrapolated time printed in brackets;
- ``ngspice-tiled``  row tiles of ``--tile`` rows + one state deck (2 ngspice at a time here);
- ``twin``           the NumPy circuit twin.

Each case runs in a fresh subprocess; "engine s" is the engine's own time (wall time of the
engine call for the tiled engine: tiles in parallel plus the state decks), "MB" the largest
peak resident set (VmHWM, polled every 10 ms) of any one ngspice process; the twin runs
in-process, so its figure is the whole Python process (getrusage). NRMSE is the state NRMSE vs the ideal SSM,
"vs mono" the tiled states vs the monolithic deck's (when it ran). Growth exponents are
log-log slopes of engine time vs rows.

    python bench/scale.py                 # 16, 64, 256, 700 rows, 100 ms, 4 events/row
    python bench/scale.py --rows 16 64    # quick
    python bench/scale.py --rows 700 --ms 800 --per-row 9 --skip-mono   # an SHD-sized sample
"""

from __future__ import annotations

import argparse
import glob
import json
import resource
import subprocess
import sys
import threading
import time

import numpy as np

from cimspice import pipeline as P
from cimspice.config import load_config
from cimspice.datasets import audio_stream

ENGINES = ("ngspice", "ngspice-tiled", "twin")


def prepared(rows: int, ms: float, per_row: int, tile: int):
    cfg = load_config(None).replace(ssm={"n_states": 8}, events={"t_end_us": int(ms * 1000)},
                                    circuit={"tile_rows": tile})
    sample = audio_stream(rows, rows * per_row, int(ms * 1000), 1, source=f"scale {rows} rows")
    return P.build(sample, cfg)


def _children() -> list[str]:
    pids = []
    for task in glob.glob("/proc/self/task/*/children"):
        try:
            with open(task) as f:
                pids += f.read().split()
        except OSError:
            pass
    return pids


def poll_peak(stop: threading.Event, peak: list) -> None:
    """Largest VmHWM (kB) of any child process (the ngspice runs), polled every 10 ms."""
    while not stop.is_set():
        for pid in _children():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != "ngspice":   # not yet exec'd: the Python fork
                        continue
                with open(f"/proc/{pid}/status") as st:
                    for line in st:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                pass
        time.sleep(0.01)


def one_case(engine: str, rows: int, ms: float, per_row: int, tile: int) -> dict:
    prep = prepared(rows, ms, per_row, tile)
    stop, peak_kb = threading.Event(), [0]
    poller = threading.Thread(target=poll_peak, args=(stop, peak_kb), daemon=True)
    poller.start()
    t0 = time.perf_counter()
    res = P.simulate(prep, engine=engine)
    wall = time.perf_counter() - t0
    stop.set()
    poller.join()
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if engine == "twin"
            else peak_kb[0]) / 1024.0
    np.save(f"/tmp/cimspice-scale-{engine}-{rows}.npy", res.circuit)
    return {"engine": engine, "rows": rows, "pulses": int(prep.schedule.n_pulses),
            "engine_s": res.engine_time_s, "wall_s": wall, "peak_mb": peak, "nrmse": res.nrmse}


def run_sub(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def slope(xs, ys) -> float:
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[16, 64, 256, 700])
    ap.add_argument("--ms", type=float, default=100.0, help="stream length, ms")
    ap.add_argument("--per-row", type=int, default=4, help="events per row")
    ap.add_argument("--tile", type=int, default=16, help="[circuit] tile_rows of the tiled engine")
    ap.add_argument("--cap", type=float, default=120.0, help="skip monolithic runs predicted above this, s")
    ap.add_argument("--skip-mono", action="store_true", help="no monolithic runs (long streams)")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        eng, rows, ms, per, tile = a.one
        print(json.dumps(one_case(eng, int(rows), float(ms), int(per), int(tile))))
        return
    table, skipped = [], {}
    for rows in sorted(a.rows):
        for eng in ENGINES:
            done = [x for x in table if x["engine"] == eng]
            if eng == "ngspice" and a.skip_mono:
                continue
            if eng == "ngspice" and len(done) >= 2:
                k = slope([x["rows"] for x in done], [x["engine_s"] for x in done])
                guess = done[-1]["engine_s"] * (rows / done[-1]["rows"]) ** k
                if guess > a.cap:
                    skipped[rows] = guess
                    continue
            table.append(run_sub([eng, str(rows), str(a.ms), str(a.per_row), str(a.tile)]))
            print(f"  {eng:14s} {rows:4d} rows: {table[-1]['engine_s']:.2f} s", file=sys.stderr, flush=True)
    print(f"stream {a.ms:g} ms, {a.per_row} events/row, 8 states (16 columns), 1T1R, tile_rows {a.tile}")
    print(f"{'rows':>5s} {'pulses':>6s} | {'mono s':>9s} {'MB':>6s} | {'tiled s':>8s} {'MB':>6s} "
          f"{'vs mono':>8s} | {'twin s':>7s} {'MB':>5s} | {'NRMSE mono':>10s} {'tiled':>9s} {'twin':>9s}")
    for rows in sorted(a.rows):
        r = {x["engine"]: x for x in table if x["rows"] == rows}
        m, t, w = r.get("ngspice"), r["ngspice-tiled"], r["twin"]
        vs = float("nan")
        if m:
            xm = np.load(f"/tmp/cimspice-scale-ngspice-{rows}.npy")
            vs = P.nrmse(np.load(f"/tmp/cimspice-scale-ngspice-tiled-{rows}.npy"), xm)
        mono_s = (f"{m['engine_s']:9.2f}" if m else f"[{skipped[rows]:7.0f}]" if rows in skipped
                  else f"{'-':>9s}")
        mono_mb = f"{m['peak_mb']:6.0f}" if m else f"{'-':>6s}"
        mono_e = f"{m['nrmse']:10.2e}" if m else f"{'-':>10s}"
        print(f"{rows:5d} {t['pulses']:6d} | {mono_s} {mono_mb} | {t['engine_s']:8.2f} {t['peak_mb']:6.0f} "
              f"{vs:8.1e} | {w['engine_s']:7.3f} {w['peak_mb']:5.0f} | {mono_e} {t['nrmse']:9.2e} "
              f"{w['nrmse']:9.2e}")
    print("growth exponents (engine time ~ rows^k, log-log fit):")
    for eng in ENGINES:
        pts = [(x["rows"], x["engine_s"]) for x in table if x["engine"] == eng]
        if pts:
            print(f"  {eng:14s} k = {slope(*zip(*pts)):.2f}  (over {len(pts)} sizes)")
    if skipped:
        print("[brackets]: monolithic runs skipped (predicted above the cap), time extrapolated "
              "with the monolithic exponent")


if __name__ == "__main__":
    main()
