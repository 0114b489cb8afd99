"""Running the validation cases in ngspice and VACASK, comparing, and the table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..engines.ngspice import run_ngspice
from ..engines.vacask import run_vacask
from ..errors import SpiceError
from ..hardware.mapping import states_from_w
from ..pipeline import nrmse
from .cases import CASES, Case, build_case
from .goldens import GRID_POINTS, Golden, Traces, golden_dir, golden_paths, load_golden, nrms, write_golden, xyce_norm
from .twin_tier import TWIN_LIMIT, run_twin_case

VACASK_LIMIT = 0.01          # VACASK vs ngspice normalised RMS must stay within 1 %


def run_ngspice_case(case: Case, timeout: float = 600) -> Traces:
    names = list(dict.fromkeys(["time", *(s.ngspice for s in case.signals),
                                *(s.minus for s in case.signals if s.minus)]))
    run = run_ngspice(case.ngspice_deck, timeout=timeout, names=names)
    plot = run.plots[-1]
    return Traces(plot["time"], {s.name: plot[s.ngspice] - plot[s.minus] if s.minus else plot[s.ngspice]
                                 for s in case.signals}, run.version, run.elapsed_s)


def run_vacask_case(case: Case, timeout: float = 600) -> Traces:
    if case.no_vacask:
        raise ValueError(f"validation case {case.name}: VACASK is not run on it: {case.no_vacask}")
    names = ["time", *(s.vacask for s in case.signals)]
    run = run_vacask(case.vacask_deck, va_files=case.va_files, timeout=timeout, names=names)
    plot = run.plots[-1]
    return Traces(plot["time"], {s.name: plot[s.vacask] for s in case.signals}, run.version,
                  run.elapsed_s)


# --------------------------------------------------------------------------- validation run

@dataclass(frozen=True)
class Row:
    """One table row: a signal of a case."""

    case: str
    signal: str
    norm: float            # ngspice vs golden (Xyce), nan if no golden / not run
    vacask_nrms: float     # VACASK vs ngspice, fraction; nan if not run
    passed: bool
    note: str = ""
    twin_nrms: float = float("nan")   # circuit twin vs ngspice, fraction; nan if not run


@dataclass
class Report:
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)     # per-case remarks (errors, drift, sanity)
    changes: list = field(default_factory=list)   # --update: what changed
    times: dict = field(default_factory=dict)     # {'ngspice': s, 'vacask': s, 'wall': s}
    versions: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows) and not any(
            n.startswith("FAIL") for n in self.notes)


def signal_norm(case: Case, s, ref_t, ref_y, test_t, test_y) -> float:
    """Xyce norm of one signal against its reference: over the test's time points, or for an
    ``at_reads`` signal at the case's read instants only (both traces interpolated there; the
    decks put a time point on every read instant)."""
    if s.at_reads:
        t = np.asarray(case.read_times, float)
        return xyce_norm(t, np.interp(t, ref_t, ref_y), t, np.interp(t, test_t, test_y),
                         s.tol.reltol, s.tol.abstol)
    return xyce_norm(ref_t, ref_y, test_t, test_y, s.tol.reltol, s.tol.abstol)


def _compare_golden(case: Case, tr: Traces, golden: Golden | None) -> dict:
    out = {}
    for s in case.signals:
        if golden is None or s.name not in golden.signals:
            out[s.name] = float("nan")
        else:
            out[s.name] = signal_norm(case, s, golden.time, golden.signals[s.name], tr.time,
                                      tr.signals[s.name])
    return out


def _compare_traces(case: Case, ng: Traces, va: Traces) -> dict:
    """Normalised RMS per signal (VACASK or the twin against ngspice); the scale is the RMS of
    the signal's group (a state pair), so a device resting near 0 is judged on the scale of the
    state it encodes. An ``at_reads`` signal is compared at the read instants only; a signal the
    other simulator does not give (the twin has no separate column currents) is left out."""
    grid = np.linspace(0.0, case.t_stop, GRID_POINTS)
    reads = np.asarray(case.read_times, float)
    sigs = [s for s in case.signals if s.name in va.signals]
    scale = {}
    for s in sigs:
        a = np.interp(reads if s.at_reads else grid, ng.time, ng.signals[s.name])
        scale.setdefault(s.group, []).append(np.mean(a ** 2))
    scale = {g: float(np.sqrt(np.mean(v))) for g, v in scale.items()}
    out = {}
    for s in sigs:
        if s.at_reads:
            d = np.interp(reads, va.time, va.signals[s.name]) - np.interp(reads, ng.time, ng.signals[s.name])
            err = float(np.sqrt(np.mean(d ** 2)))
            out[s.name] = err / scale[s.group] if scale[s.group] > 0 else err
        else:
            out[s.name] = nrms(ng.time, ng.signals[s.name], va.time, va.signals[s.name],
                               scale=scale[s.group], t_stop=case.t_stop)
    return out


def sensed_states(case: Case, tr: Traces) -> np.ndarray:
    """(M, N) states a read-pulse case's read path gives: ``s_n / i_scale / g_n`` at the reads."""
    prep = case.prepared
    t = np.asarray(case.read_times, float)
    s = np.stack([np.interp(t, tr.time, tr.signals[f"s{k}"]) for k in range(prep.mapping.n_states)], -1)
    return s / prep.deck_info.i_scale / prep.mapping.gains


def _sanity(case: Case, tr: Traces, label: str) -> str | None:
    """Independent check of a run where one exists (linear layers: states vs the ideal SSM;
    read-pulse cases: the states their read path senses)."""
    prep = case.prepared
    if prep is None or prep.mapping.gain_method != "analytic":
        return None
    n = prep.mapping.n_states
    if "s0" in tr.signals:
        err = nrmse(sensed_states(case, tr), prep.ideal)
        return f"{case.name}: {label} sensed states (read pulses) vs ideal pulse SSM NRMSE {err * 100:.3f} %"
    wp = np.stack([np.interp(prep.sample_times, tr.time, tr.signals[f"w{k}p"]) for k in range(n)], -1)
    wm = np.stack([np.interp(prep.sample_times, tr.time, tr.signals[f"w{k}m"]) for k in range(n)], -1)
    err = nrmse(states_from_w(wp, wm, prep.mapping), prep.ideal)
    return f"{case.name}: {label} states vs ideal pulse SSM NRMSE {err * 100:.3f} %"


def _describe_change(case: Case, old: Golden | None, new: Traces) -> str:
    if old is None:
        return f"{case.name}: new golden ({new.time.size} points, {len(case.signals)} signals)"
    parts = []
    norms = _compare_golden(case, new, old)
    # 0.01: float32 storage alone gives norms ~1e-4; anything above is a real change
    changed = [f"{k} (norm {v:.3g})" for k, v in norms.items() if not (v <= 0.01)]
    if changed:
        parts.append("signals changed: " + ", ".join(changed))
    if old.time.size != new.time.size:
        parts.append(f"points {old.time.size} -> {new.time.size}")
    if old.meta.get("ngspice_version") != new.version:
        parts.append(f"ngspice {old.meta.get('ngspice_version')} -> {new.version}")
    if old.meta.get("options") != case.options:
        parts.append(f"options '{old.meta.get('options')}' -> '{case.options}'")
    if old.meta.get("deck_sha256") != case.deck_sha256:
        parts.append("deck text changed")
    return f"{case.name}: " + ("; ".join(parts) if parts else "unchanged")


def run_validation(cases=None, *, update: bool = False, directory=None, vacask: bool = True,
                   twin: bool = True, progress: Callable[[str], None] | None = None) -> Report:
    """Run the validation cases (default all) in ngspice and, if ``vacask``, in VACASK, and
    if ``twin`` on the circuit twin (at ngspice's time points).

    ``update``: rewrite the goldens from this run's ngspice traces -- only if every ngspice run
    succeeded (all-or-nothing), each file atomically.
    """
    directory = golden_dir(directory)
    names = list(cases) if cases else list(CASES)
    built = [build_case(n) for n in names]        # unknown names fail before anything runs
    rep = Report()
    t_wall = time.perf_counter()
    t_ng = t_va = t_tw = 0.0
    results = {}
    for case in built:
        if progress:
            progress(case.name)
        paths = golden_paths(case.name, directory)
        try:
            ng = run_ngspice_case(case)
        except SpiceError as exc:
            rep.notes.append(f"FAIL {case.name}: ngspice: {exc}")
            results[case.name] = None
            continue
        t_ng += ng.elapsed_s
        rep.versions["ngspice"] = ng.version
        results[case.name] = ng
        va, va_err = None, None
        run_va = vacask and not case.no_vacask
        if case.no_vacask and vacask:
            rep.notes.append(f"{case.name}: VACASK not run: {case.no_vacask}")
        if run_va:
            try:
                va = run_vacask_case(case)
                t_va += va.elapsed_s
                rep.versions["vacask"] = va.version
            except SpiceError as exc:
                va_err = str(exc)
                rep.notes.append(f"FAIL {case.name}: vacask: {exc}")
        golden = None if update else load_golden(paths["npz"])
        if not update:
            if golden is None:
                rep.notes.append(f"FAIL {case.name}: no golden {paths['npz']}; create it with "
                                 "`cimspice validate --update`")
            elif paths["cir"].exists() and paths["cir"].read_text() != case.ngspice_deck:
                rep.notes.append(f"{case.name}: the deck built by this code differs from "
                                 f"{paths['cir'].name} (its waveforms are what the norm checks; "
                                 "refresh the file with --update once reviewed)")
        norms = ({s.name: 0.0 for s in case.signals} if update
                 else _compare_golden(case, ng, golden))
        agree = _compare_traces(case, ng, va) if va is not None else {}
        tw_agree = {}
        if twin:
            tw = run_twin_case(case, ng.time)
            t_tw += tw.elapsed_s
            rep.versions["twin"] = tw.version
            tw_agree = _compare_traces(case, ng, tw)
        for s in case.signals:
            nv = norms[s.name]
            av = agree.get(s.name, float("nan"))
            tv = tw_agree.get(s.name, float("nan"))
            ok = ((nv <= 1.0) and ((av <= VACASK_LIMIT) if run_va else True) and va_err is None
                  and ((tv <= TWIN_LIMIT) if twin and s.name in tw_agree else True))
            rep.rows.append(Row(case.name, s.name, nv, av, bool(ok), twin_nrms=tv))
        for tr, label in ((ng, "ngspice"), (va, "VACASK")):
            if tr is not None:
                msg = _sanity(case, tr, label)
                if msg:
                    rep.notes.append(msg)
    if update:
        failed = [n for n, r in results.items() if r is None]
        if failed:
            rep.notes.append("FAIL goldens not updated: ngspice failed on " + ", ".join(failed))
        else:
            directory.mkdir(parents=True, exist_ok=True)
            for case in built:
                old = load_golden(golden_paths(case.name, directory)["npz"])
                rep.changes.append(_describe_change(case, old, results[case.name]))
            for case in built:
                write_golden(case, results[case.name], directory)
    rep.times = {"ngspice": t_ng, "vacask": t_va, "twin": t_tw, "wall": time.perf_counter() - t_wall}
    return rep


def format_table(rep: Report) -> str:
    """The validation table (case, signal, ngspice norm vs golden, VACASK-vs-ngspice %,
    twin-vs-ngspice %, result)."""
    lines = [f"{'case':20s} {'signal':6s} {'ngspice vs golden':>18s} {'VACASK vs ngspice':>18s} "
             f"{'twin vs ngspice':>16s}  result",
             f"{'':20s} {'':6s} {'Xyce norm (<=1)':>18s} {'NRMS (<=1 %)':>18s} {'NRMS (<=0.5 %)':>16s}"]
    for r in rep.rows:
        nv = "no golden" if np.isnan(r.norm) else f"{r.norm:.3g}"
        av = "-" if np.isnan(r.vacask_nrms) else f"{r.vacask_nrms * 100:.3f} %"
        tv = "-" if np.isnan(r.twin_nrms) else f"{r.twin_nrms * 100:.4f} %"
        lines.append(f"{r.case:20s} {r.signal:6s} {nv:>18s} {av:>18s} {tv:>16s}  "
                     f"{'pass' if r.passed else 'FAIL'}")
    lines += rep.notes
    ver = ", ".join(f"{k} {v}" for k, v in rep.versions.items())
    n_fail = sum(not r.passed for r in rep.rows)
    status = "all passed" if rep.passed else f"{n_fail} signal(s) failed" + \
        ("" if n_fail else " (see FAIL lines)")
    lines.append(f"{len(rep.rows)} signals, {status} ({ver}); simulator time ngspice "
                 f"{rep.times.get('ngspice', 0):.1f} s, VACASK {rep.times.get('vacask', 0):.1f} s, "
                 f"twin {rep.times.get('twin', 0):.2f} s, wall {rep.times.get('wall', 0):.1f} s")
    return "\n".join(lines)
