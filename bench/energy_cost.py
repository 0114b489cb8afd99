#!/usr/bin/env python3
"""What energy accounting costs: ngspice time with and without the integrator nodes, on the
same prepared circuits (and the twin's time, and whether the states move at all).

    python bench/energy_cost.py                    # 4 dvs-bars samples x 4 configurations, 3 repeats
    python bench/energy_cost.py --samples 2 --repeats 5 --configs state-node trace-wox

Timing rule: the deck is built with ``[energy] accounting`` true and false from one prepared
sample (same mapping, schedule and sample times; only the integrator lines differ); the two
ngspice runs alternate (off, on, off, on, ...) so that machine load hits both alike. ngspice
time is the CPU time (user + sys) of the ngspice process, read from the children's rusage,
which a busy shared machine disturbs far less than wall time; the wall time is printed too.
"points" compares the number of time points of the two runs (equal: the integrators did not
move ngspice's steps) and "state diff" is max |signal_on - signal_off| / max |signal_off|.
The twin is timed as the median of 5 warm calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time

import numpy as np

import cimspice
from cimspice.config import Config
from cimspice.datasets import make_dataset
from cimspice.engines.base import sample_plot
from cimspice.engines.ngspice import run_ngspice, saved_names
from cimspice.engines.registry import get_engine

CONFIGS = {
    "state-node": {},
    "state-pulse": {"read": {"mode": "pulse"}},
    "trace-ideal": {"circuit": {"topology": "trace"}, "device": {"preset": "ideal"},
                    "read": {"mode": "pulse"}},
    "trace-wox": {"circuit": {"topology": "trace"}, "device": {"preset": "wox"},
                  "read": {"mode": "pulse"}},
}


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ngspice_once(prep) -> dict:
    info = prep.deck_info
    c0, t0 = cpu_children(), time.perf_counter()
    run = run_ngspice(prep.deck, timeout=prep.cfg.sim.timeout, names=saved_names(info))
    cpu, wall = cpu_children() - c0, time.perf_counter() - t0
    plot = run.plot("tran")
    got = sample_plot(plot, info, prep.sample_times, prep.mapping)
    sig = got["sensed"] if got["sensed"] is not None else got["w_plus"] - got["w_minus"]
    return {"cpu": cpu, "wall": wall, "points": plot["time"].size, "signal": sig}


def twin_time(prep) -> float:
    tw = get_engine("twin")
    tw.run(prep)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        tw.run(prep)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=4, help="dvs-bars samples 0..n-1")
    ap.add_argument("--repeats", type=int, default=3, help="ngspice runs per sample and setting")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    a = ap.parse_args()
    ds = make_dataset("dvs-bars", max(a.samples, 1), 0)
    print(f"{'config':12s} {'n':>2s} {'cpu off s':>9s} {'cpu on s':>8s} {'cpu +%':>7s} "
          f"{'wall off s':>10s} {'wall on s':>9s} {'points':>7s} {'state diff':>10s} "
          f"{'twin off ms':>11s} {'twin on ms':>10s}")
    all_ratio = []
    for name in a.configs:
        cfg_on = Config().replace(**CONFIGS[name])
        cfg_off = cfg_on.replace(energy={"accounting": False})
        rows = []
        for i in range(a.samples):
            on = cimspice.build(ds.sample(i), cfg_on)
            off = dataclasses.replace(on, cfg=cfg_off)
            res = {"on": [], "off": []}
            for _ in range(a.repeats):
                for label, prep in (("off", off), ("on", on)):
                    res[label].append(ngspice_once(prep))
            sig_on, sig_off = res["on"][-1]["signal"], res["off"][-1]["signal"]
            rows.append({
                "cpu_on": statistics.median(r["cpu"] for r in res["on"]),
                "cpu_off": statistics.median(r["cpu"] for r in res["off"]),
                "wall_on": statistics.median(r["wall"] for r in res["on"]),
                "wall_off": statistics.median(r["wall"] for r in res["off"]),
                "same_points": res["on"][0]["points"] == res["off"][0]["points"],
                "diff": float(np.max(np.abs(sig_on - sig_off)) / np.max(np.abs(sig_off))),
                "twin_on": twin_time(on), "twin_off": twin_time(off)})
        s = {k: float(np.sum([r[k] for r in rows])) for k in
             ("cpu_on", "cpu_off", "wall_on", "wall_off", "twin_on", "twin_off")}
        ratio = s["cpu_on"] / s["cpu_off"] - 1
        all_ratio.append(ratio)
        same = sum(r["same_points"] for r in rows)
        print(f"{name:12s} {len(rows):>2d} {s['cpu_off'] / len(rows):>9.2f} {s['cpu_on'] / len(rows):>8.2f} "
              f"{100 * ratio:>+7.1f} {s['wall_off'] / len(rows):>10.2f} {s['wall_on'] / len(rows):>9.2f} "
              f"{same:>3d}/{len(rows):<3d} {max(r['diff'] for r in rows):>10.1e} "
              f"{1e3 * s['twin_off'] / len(rows):>11.1f} {1e3 * s['twin_on'] / len(rows):>10.1f}",
              flush=True)
    print(f"\nngspice CPU time added by energy accounting: {100 * min(all_ratio):+.1f} % .. "
          f"{100 * max(all_ratio):+.1f} % (per configuration, sum over samples, median of "
          f"{a.repeats} alternating runs each)")


if __name__ == "__main__":
    main()
