#!/usr/bin/env python3
"""Energy per event and per inference on the built-in datasets (the README's energy tables).

For each dataset and topology x preset: the energy the circuit's sources deliver, per input
event (before merging) and per inference (one sample), split into crossbar, write and read
(ADC 0: ``[energy] adc_per_read_J`` is the user's figure), the latency per inference, and the
digital baseline of the same layer (cimspice.energy.digital_baseline, Horowitz ISSCC 2014,
45 nm). The circuit runs on the twin (exact, >= 500x faster), each dataset's hardware programmed
on its calibration samples as ``evaluate`` does; "ng/twin" is ngspice's total over the twin's
on the first sample (the truth cross-check). Then the knobs: each changed alone on dvs-bars,
the ratio of every component to the unchanged configuration's (same samples).

    python bench/energy.py                    # 24 samples per dataset, then the knobs
    python bench/energy.py --n 8 --datasets dvs-bars --no-knobs
    python bench/energy.py --no-table         # the knobs only
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cimspice
from cimspice.config import Config
from cimspice.datasets import make_dataset
from cimspice.energy import digital_baseline, fmt_energy
from cimspice.pipeline import build, calibration_schedules, make_model, program

CONFIGS = {
    "state/custom-linear": {},
    "trace/ideal": {"circuit": {"topology": "trace"}, "device": {"preset": "ideal"},
                    "read": {"mode": "pulse"}},
    "trace/wox": {"circuit": {"topology": "trace"}, "device": {"preset": "wox"},
                  "read": {"mode": "pulse"}},
    # the same device written in 1 us (the preset derives its rate from t_p), read in 1 us
    "trace/wox 1us": {"circuit": {"topology": "trace"}, "device": {"preset": "wox"},
                      "read": {"mode": "pulse", "t_read": 1e-6},
                      "events": {"t_p": 1e-6, "t_rise": 1e-7}},
    # and every conductance / 10 (cells 0.1-10 uS, device 0.1-10 uS), v_in 0.1 V
    "trace/wox 1us G/10": {"circuit": {"topology": "trace", "g_min": 1e-7, "g_max": 1e-5, "v_in": 0.1},
                           "device": {"preset": "wox", "g_on": 1e-5, "g_off": 1e-7},
                           "read": {"mode": "pulse", "t_read": 1e-6},
                           "events": {"t_p": 1e-6, "t_rise": 1e-7}},
}
BASES = {**CONFIGS, "state/custom-linear, read pulses": {"read": {"mode": "pulse"}}}

# (configuration, knob label, changed sections): each applied alone to the configuration
KNOBS = [
    ("state/custom-linear", "v_in 0.2 -> 0.1 V", {"circuit": {"v_in": 0.1}}),
    ("state/custom-linear", "g_min..g_max / 2", {"circuit": {"g_min": 0.5e-6, "g_max": 50e-6}}),
    ("state/custom-linear", "t_p 100 -> 50 us", {"events": {"t_p": 50e-6}}),
    ("state/custom-linear", "device g_on / 2", {"device": {"g_on": 50e-6}}),
    ("state/custom-linear", "read pulses", {"read": {"mode": "pulse"}}),
    ("state/custom-linear, read pulses", "v_read 0.1 -> 0.05 V", {"read": {"v_read": 0.05}}),
    ("state/custom-linear, read pulses", "t_read 10 -> 20 us", {"read": {"t_read": 20e-6}}),
    ("trace/wox", "v_in 0.2 -> 0.1 V", {"circuit": {"v_in": 0.1}}),
    ("trace/wox", "g_min..g_max / 2", {"circuit": {"g_min": 0.5e-6, "g_max": 50e-6}}),
    ("trace/wox", "t_p 100 -> 50 us", {"events": {"t_p": 50e-6}}),
    ("trace/wox", "v_write 1 -> 0.8 V", {"device": {"v_write": 0.8}}),
    ("trace/wox", "device g_on / 2", {"device": {"g_on": 50e-6}}),
    ("trace/wox", "v_read 0.1 -> 0.05 V", {"read": {"v_read": 0.05}}),
    ("trace/wox", "t_read 10 -> 20 us", {"read": {"t_read": 20e-6}}),
]
PARTS = ("crossbar_J", "write_J", "read_J")


def run_config(ds, cfg: Config, n: int, check: bool) -> dict:
    """Twin energy figures of the first ``n`` samples (hardware programmed on the dataset's
    calibration samples, ngspice for the non-linear gain fits); ngspice total / twin total on
    sample 0 when ``check``."""
    schedules, record = calibration_schedules(ds, cfg)
    model = make_model(cfg, schedules[0].n_rows)
    mapping = program(model, cfg, schedules, record=record)
    figs, ratio = [], float("nan")
    for i in range(n):
        prep = build(ds.sample(i), cfg, model=model, mapping=mapping)
        figs.append(cimspice.simulate(prep, engine="twin").energy)
        if check and i == 0:
            ratio = cimspice.simulate(prep).energy["total_J"] / figs[0]["total_J"]
    out = {k: float(np.mean([f[k] for f in figs])) for k in figs[0] if k.endswith(("_J", "_s"))}
    out.update(n_events=float(np.mean([f["n_events"] for f in figs])),
               n_reads=figs[0]["n_reads"], ng_twin=ratio, n=n, model=model)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=24, help="samples per dataset")
    ap.add_argument("--knob-n", type=int, default=8, help="dvs-bars samples per knob")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", nargs="+", default=["dvs-bars", "dvs-digits", "audio-chirps"])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--no-check", action="store_true", help="skip the ngspice cross-check")
    ap.add_argument("--no-knobs", action="store_true")
    ap.add_argument("--no-table", action="store_true", help="the knobs only")
    a = ap.parse_args()
    if not a.no_table:
        table(a)
    if not a.no_knobs:
        knobs(a)


def table(a) -> None:
    t0 = time.perf_counter()
    print(f"{'dataset':13s} {'config':19s} {'events':>6s} {'per event':>10s} {'per infer.':>10s} "
          f"{'crossbar':>9s} {'write':>9s} {'read':>9s} {'latency':>8s} {'ng/twin':>7s} "
          f"{'digital int8':>12s} {'fp32':>9s}")
    f = fmt_energy
    for name in a.datasets:
        ds = make_dataset(name, max(a.n, 32), a.seed)
        for cname in a.configs:
            r = run_config(ds, Config().replace(**CONFIGS[cname]), a.n, not a.no_check)
            m = r["model"]
            d8 = digital_baseline(m.n_states, len(m.taus), precision="int8",
                                  n_events=round(r["n_events"]), n_reads=r["n_reads"])
            d32 = digital_baseline(m.n_states, len(m.taus), precision="fp32",
                                   n_events=round(r["n_events"]), n_reads=r["n_reads"])
            print(f"{name:13s} {cname:19s} {r['n_events']:>6.0f} {f(r['per_event_J']):>10s} "
                  f"{f(r['per_inference_J']):>10s} {f(r['crossbar_J']):>9s} {f(r['write_J']):>9s} "
                  f"{f(r['read_J']):>9s} {r['latency_s'] * 1e6:>6.0f}us {r['ng_twin']:>7.4f} "
                  f"{f(d8['per_event_J']):>12s} {f(d32['per_event_J']):>9s}", flush=True)
    print(f"\n(mean over n = {a.n} samples per dataset, seed {a.seed}, engine twin; per event = per "
          f"input event before merging; digital = per event of the same layer, Horowitz ISSCC "
          f"2014 45 nm; {time.perf_counter() - t0:.0f} s)")


def knobs(a) -> None:
    ds = make_dataset("dvs-bars", max(a.knob_n, 32), a.seed)
    base = {c: run_config(ds, Config().replace(**BASES[c]), a.knob_n, False)
            for c in {k[0] for k in KNOBS}}
    print(f"\nknobs (dvs-bars, {a.knob_n} samples; each component relative to the unchanged "
          f"configuration):")
    print(f"{'config':34s} {'knob':24s} {'crossbar':>9s} {'write':>9s} {'read':>9s} {'total':>9s}")
    for cname, label, change in KNOBS:
        sections = {k: {**BASES[cname].get(k, {}), **v} for k, v in change.items()}
        r = run_config(ds, Config().replace(**{**BASES[cname], **sections}), a.knob_n, False)
        b = base[cname]
        cells = [("n/a" if b[p] == 0 and r[p] == 0 else "new" if b[p] == 0 else f"x{r[p] / b[p]:.3g}")
                 for p in PARTS + ("total_J",)]
        print(f"{cname:34s} {label:24s} " + " ".join(f"{c:>9s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
