#!/usr/bin/env python3
"""The circuit twin against ngspice on the same samples, in one run: time per sample of the
engine call, the ratio, and the state NRMSE between them, per combination.

    python bench/twin_speed.py                 # every combination, dvs-bars samples 0..3
    python bench/twin_speed.py --samples 2 --configs default sinh
    python bench/twin_speed.py --no-energy --no-stream    # both engines without energy accounting

Timing rule: both engines are timed as the engine call on a prepared circuit
(`cimspice.build` first, not timed; the ngspice deck text is generated before the clock
starts, as the twin needs none). ngspice = `engines.ngspice.NgspiceEngine.run` (subprocess,
raw file read back); twin = `engines.twin.TwinEngine.run` (its compiled loops loaded once
before the table), "cold" = the first call after its caches (1T1R level, drive and row-power
tables, edge maps, wired nets and their solved vectors) are cleared,
"warm" = the median of 5 further calls with the array's tables kept but no solved wired vector
reused (an upper bound of what a later sample of a dataset run costs: on one array, samples
share many of their row-voltage vectors, so a wired dataset run costs less, see
bench/fidelity.py). Then the twin alone on
a 700-channel, 0.8 s, 6000-spike audio stream (r_wire = 0; ngspice would take ~70 min there),
time and peak memory growth for 1x and 4x the stream.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

import cimspice
from cimspice.config import Config
from cimspice.datasets import audio_stream, make_dataset
from cimspice.engines import twin_crossbar, twin_energy, twin_kernel, twin_trace, twin_wired
from cimspice.engines.registry import get_engine
from cimspice.pipeline import nrmse

CONFIGS = {   # name: config sections
    "default": {},
    "access=none": {"circuit": {"access": "none"}},
    "window": {"device": {"window": True}},
    "rram_read_nl=2": {"circuit": {"rram_read_nl": 2.0}},
    "levels=16": {"circuit": {"levels": 16}},
    "v_clamp=0.2": {"circuit": {"v_clamp": 0.2}},
    "sinh": {"device": {"mode": "sinh"}},
    "sinh+window": {"device": {"mode": "sinh", "window": True}, "sim": {"reltol": 1e-5}},
    "r_wire=5,1R": {"circuit": {"r_wire": 5.0, "access": "none"}},
    "r_wire=5,1T1R": {"circuit": {"r_wire": 5.0}},
    "read=pulse": {"read": {"mode": "pulse"}},
    "trace,ideal": {"circuit": {"topology": "trace"}, "device": {"preset": "ideal"},
                    "read": {"mode": "pulse"}},
    "trace,wox": {"circuit": {"topology": "trace"}, "device": {"preset": "wox"},
                  "read": {"mode": "pulse"}},
    "trace,wox,1R": {"circuit": {"topology": "trace", "access": "none"},
                     "device": {"preset": "wox"}, "read": {"mode": "pulse"}},
    "trace,wox,r_wire=5": {"circuit": {"topology": "trace", "r_wire": 5.0},
                           "device": {"preset": "wox"}, "read": {"mode": "pulse"}},
}


def clear_caches() -> None:
    """Forget what the twin keeps per programmed array (1T1R level tables, row powers, the
    wired nets and their solved vectors): the next call is a first sample's."""
    twin_crossbar._TABLE_CACHE.clear()
    twin_energy._POWER_CACHE.clear()
    twin_wired._WIRED_NETS.clear()
    twin_kernel._DRIVE_CACHE.clear()
    twin_trace._EDGE_CACHE.clear()


def load_compiled(sample) -> None:
    """A process's first twin call loads the compiled loops from numba's disk cache (compiles
    them after an install or a change, ~4 s): done once here, so that "cold" is a new programmed
    array, not a new process."""
    tw = get_engine("twin")
    for name in ("default", "read=pulse", "trace,wox"):
        tw.run(cimspice.build(sample, Config().replace(**CONFIGS[name])))


def one(prep) -> dict:
    ng, tw = get_engine("ngspice"), get_engine("twin")
    _ = prep.deck                                  # deck text made before the clock starts
    t0 = time.perf_counter()
    a = ng.run(prep)
    t_ng = time.perf_counter() - t0
    clear_caches()
    t0 = time.perf_counter()
    b = tw.run(prep)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(5):
        for net in twin_wired._WIRED_NETS.values():
            net.memo_clear()    # not this sample's own solved vectors: a new sample's cost
        t0 = time.perf_counter()
        tw.run(prep)
        warm.append(time.perf_counter() - t0)
    m = prep.mapping
    err = nrmse(b.signal / m.gains, a.signal / m.gains)    # sensed states (w+ - w- for 'node')
    return {"ngspice": t_ng, "cold": cold, "warm": statistics.median(warm), "nrmse": err}


def big_stream(scale: int) -> dict:
    """The twin alone on 700 channels, 0.8 s x scale, 6000 x scale spikes (r_wire = 0)."""
    sample = audio_stream(700, 6000 * scale, 800_000 * scale, seed=1, source="shd-like")
    cfg = Config().replace(events={"t_end_us": 800_000 * scale})
    prep = cimspice.build(sample, cfg)
    tw = get_engine("twin")
    tw.run(prep)                                   # warm the tables of this hardware
    clear_caches()
    tracemalloc.start()
    t0 = time.perf_counter()
    tw.run(prep)
    t = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"pulses": prep.schedule.n_pulses, "time": t, "peak_mb": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=4, help="dvs-bars samples 0..n-1")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--no-energy", action="store_true",
                    help="[energy] accounting = false on both engines (the default accounts energy)")
    ap.add_argument("--no-stream", action="store_true", help="skip the 700-channel stream")
    a = ap.parse_args()
    ds = make_dataset("dvs-bars", max(a.samples, 1), 0)
    load_compiled(ds.sample(0))
    print(f"{'combination':15s} {'n':>2s} {'ngspice s':>9s} {'twin cold ms':>12s} {'twin warm ms':>12s} "
          f"{'ratio cold':>10s} {'ratio warm':>10s} {'NRMSE mean':>10s} {'NRMSE max':>9s}")
    for name in a.configs:
        cfg = Config().replace(**CONFIGS[name])
        if a.no_energy:
            cfg = cfg.replace(energy={"accounting": False})
        rows = [one(cimspice.build(ds.sample(i), cfg)) for i in range(a.samples)]
        ng = np.mean([r["ngspice"] for r in rows])
        cold = np.mean([r["cold"] for r in rows])
        warm = np.mean([r["warm"] for r in rows])
        e = [r["nrmse"] for r in rows]
        print(f"{name:15s} {len(rows):>2d} {ng:>9.2f} {cold * 1e3:>12.2f} {warm * 1e3:>12.2f} "
              f"{ng / cold:>10.0f} {ng / warm:>10.0f} {np.mean(e):>10.2e} {max(e):>9.2e}", flush=True)
    if a.no_stream:
        return
    one_x, four_x = big_stream(1), big_stream(4)
    print(f"\ntwin, 700 channels x 0.8 s, 6000 spikes ({one_x['pulses']} pulses): "
          f"{one_x['time']:.2f} s, peak {one_x['peak_mb']:.1f} MB; 4x the stream "
          f"({four_x['pulses']} pulses): {four_x['time']:.2f} s, peak {four_x['peak_mb']:.1f} MB")


if __name__ == "__main__":
    main()
