"""The evaluation report: a pure function of the sample records, then report.json, .md, PNGs.

Accuracy protocols: ``software`` (readout trained and tested on the software reference: the
``dirac`` SSM on the raw, un-merged events, what a model trainer computes), ``ideal`` (readout
trained and tested on ideal states: the pulse SSM on the schedule), ``transfer`` (the
same readout applied to the circuit's test states, from the run's engine), ``retrained``
(readout trained on circuit training states, needs ``circuit_train``; otherwise n/a). Because the report is
computed from the sample files alone, a resumed run's report equals an uninterrupted one
(apart from the ``timing`` block, which describes the invocation).
"""

from __future__ import annotations

import contextlib
import json
import platform
from pathlib import Path

import numpy as np
import scipy
from threadpoolctl import threadpool_limits

from .. import __version__
from ..energy import fmt_energy
from ..engines.ngspice import ngspice_version
from ..io.files import write_text_atomic
from ..readout import accuracy, confusion_matrix, make_readout
from .plots import report_plots
from .tasks import SampleRecord

PROTOCOLS = ("software", "ideal", "transfer", "retrained")
_TITLES = {"software": "software accuracy", "ideal": "ideal accuracy",
           "transfer": "transfer accuracy ({engine})",
           "retrained": "retrained accuracy ({engine})"}
REPORT_FORMAT = 4   # 2: states from a named engine; 3: 'software' protocol, per-sample predictions;
                    # 4: energy (per sample and mean)


# ------------------------------------------------------------------------------------------
# Figures (pure: records -> report dict)
# ------------------------------------------------------------------------------------------

def _stack(recs, attr):
    """(X (S, M*N), labels (S,), keys) of the records holding ``attr`` states."""
    # A sample whose engine run failed still has valid model states (they come first).
    ok = [r for r in recs if getattr(r, attr) is not None
          and (attr in ("ideal", "software") or not r.error)]
    if not ok:
        return None, None, []
    return (np.stack([getattr(r, attr) for r in ok]), np.array([r.label for r in ok]),
            [r.key for r in ok])


def _protocol(clf, X_test, y_test, keys, labels, n_train) -> dict:
    """Accuracy, confusion and each test sample's prediction (for paired statistics)."""
    pred = clf.predict(X_test)
    return {"accuracy": accuracy(y_test, pred), "n_train": int(n_train), "n_test": int(len(y_test)),
            "confusion": confusion_matrix(y_test, pred, labels=labels).tolist(),
            "predicted": {k: int(p) for k, p in zip(keys, pred)}}


def _fit_and_score(kind: str, train_recs, test_recs, attr_train: str, attr_test: str, labels):
    """Readout trained on ``attr_train`` states, scored on ``attr_test`` states; (result, clf)."""
    X_tr, y_tr, _ = _stack(train_recs, attr_train)
    X_te, y_te, keys = _stack(test_recs, attr_test)
    if X_tr is None or np.unique(y_tr).size < 2:
        return _na(f"not enough training samples with {attr_train} states"), None
    if X_te is None:
        return _na(f"no test sample with {attr_test} states"), None
    clf = _readout(kind, len(y_tr)).fit(X_tr, y_tr)
    return _protocol(clf, X_te, y_te, keys, labels, len(y_tr)), clf


def _na(reason: str) -> dict:
    return {"accuracy": None, "n_train": 0, "n_test": 0, "confusion": None, "note": reason}


def _readout(kind: str, n_train: int):
    # Ridge picks alpha by stratified k-fold CV: k cannot exceed the training set.
    return make_readout(kind, cv=min(5, n_train)) if kind == "ridge" else make_readout(kind)


def _clf_info(clf) -> dict:
    info = {"params": json_ready(clf.get_params())}
    if hasattr(clf, "alpha_"):
        info["alpha"] = float(clf.alpha_)
    return info


def _accuracies(readout: str, train, test, labels, circuit_train: bool, engine: str):
    """The four protocols' results and their readouts' info: ({protocol: result}, {name: info})."""
    acc, clf_info = {}, {}
    acc["software"], clf = _fit_and_score(readout, train, test, "software", "software", labels)
    if clf is not None:
        clf_info["software"] = _clf_info(clf)
    acc["ideal"], clf = _fit_and_score(readout, train, test, "ideal", "ideal", labels)
    if clf is None:
        acc["transfer"] = _na("no ideal readout")
    else:
        clf_info["ideal"] = _clf_info(clf)
        X_ts, y_ts, keys = _stack(test, "circuit")
        acc["transfer"] = (_protocol(clf, X_ts, y_ts, keys, labels, acc["ideal"]["n_train"])
                           if X_ts is not None else _na(f"no test sample with {engine} states"))
    if not circuit_train:
        acc["retrained"] = _na(f"needs {engine} states of the training split: rerun with --circuit-train")
    else:
        acc["retrained"], clf = _fit_and_score(readout, train, test, "circuit", "circuit", labels)
        if clf is not None:
            clf_info["retrained"] = _clf_info(clf)
    return acc, clf_info


def compute_report(records: list[SampleRecord], *, readout: str = "ridge", circuit_train: bool = False,
                   engine: str = "ngspice", n_classes: int | None = None,
                   class_names: list | None = None) -> dict:
    """Accuracies of the four protocols, NRMSE statistics, failures (pure function of records)."""
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    labels = np.arange(n_classes if n_classes else 1 + max(r.label for r in records))
    # One BLAS thread: the readouts' small solves run 15x slower on threads that compete with
    # other processes (measured under load), and the figures do not depend on the core count.
    with threadpool_limits(1):
        acc, clf_info = _accuracies(readout, train, test, labels, circuit_train, engine)

    sim_ok = [r for r in records if r.circuit is not None and not r.error]
    nr = np.array([r.nrmse for r in sim_ok])
    failures = [{"key": r.key, "split": r.split, "index": r.index, "error": r.error}
                for r in records if r.error]
    return {
        "cimspice_report": REPORT_FORMAT,
        "engine": engine,
        "readout": {"kind": readout, **clf_info},
        "classes": class_names or [str(c) for c in labels],
        "chance": 1.0 / len(labels),
        "accuracy": {p: acc[p] for p in PROTOCOLS},
        "nrmse": {"mean": float(nr.mean()) if nr.size else None,
                  "max": float(nr.max()) if nr.size else None,
                  "median": float(np.median(nr)) if nr.size else None,
                  "n": int(nr.size),
                  "per_sample": {r.key: r.nrmse for r in sim_ok}},
        "engine_time_s_total": float(sum(r.engine_time_s for r in records)),
        "n_samples": {"train": len(train), "test": len(test),
                      "simulated": int(sum(r.simulated for r in records)),
                      "failed": len(failures)},
        "failures": failures,
        "test_labels": {r.key: int(r.label) for r in test},
        "trace_sample": next((r.key for r in test if r.circuit is not None and not r.error), None),
        "energy": energy_report(sim_ok),
    }


ENERGY_KEYS = ("per_inference_J", "per_event_J", "per_pulse_J", "crossbar_J", "write_J", "read_J",
               "adc_J", "latency_s")


def energy_report(records: list[SampleRecord]) -> dict | None:
    """Per-sample and mean energy of the simulated samples that carry it (None: none do, e.g.
    ``[energy] accounting = false`` or an engine without accounting)."""
    recs = [r for r in records if r.energy]
    if not recs:
        return None
    per = {r.key: {k: float(r.energy[k]) for k in ENERGY_KEYS if k in r.energy} for r in recs}
    mean = {k: float(np.mean([v[k] for v in per.values() if k in v])) for k in ENERGY_KEYS}
    pe = np.array([v["per_event_J"] for v in per.values()])
    return {"n": len(recs), "mean": mean, "min_per_event_J": float(pe.min()),
            "max_per_event_J": float(pe.max()), "per_sample": per}


def versions(records: list[SampleRecord]) -> dict:
    """Versions of cimspice, ngspice (from the samples, else the installed one), NumPy,
    SciPy and Python."""
    ng = next((r.ngspice_version for r in records if r.ngspice_version), "")
    if not ng:
        with contextlib.suppress(Exception):  # ngspice absent: the version stays ''
            ng = ngspice_version()
    return {"cimspice": __version__, "ngspice": ng, "numpy": np.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


# ------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------

def _pct(a) -> str:
    return "n/a" if a is None else f"{100 * a:.1f} %"


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(figure, value) rows of the summary table."""
    acc = report["accuracy"]
    rows = []
    for p in PROTOCOLS:
        a = acc[p]
        detail = f" ({a['n_test']} test, {a['n_train']} train)" if a["accuracy"] is not None else \
            f" ({a.get('note', '')})"
        rows.append((_TITLES[p].format(engine=report.get("engine", "ngspice")),
                     _pct(a["accuracy"]) + detail))
    rows.append(("chance level", _pct(report["chance"])))
    nr = report["nrmse"]
    rows.append(("state NRMSE mean / max",
                 "n/a" if nr["mean"] is None else f"{100 * nr['mean']:.3g} % / {100 * nr['max']:.3g} % "
                                                   f"({nr['n']} samples)"))
    en = report.get("energy")
    if en:
        m, f = en["mean"], fmt_energy
        rows.append(("energy per inference (mean)",
                     f"{f(m['per_inference_J'])}: crossbar {f(m['crossbar_J'])}, write {f(m['write_J'])}, "
                     f"read {f(m['read_J'])}, ADC {f(m['adc_J'])} ({en['n']} samples)"))
        rows.append(("energy per event (mean)",
                     f"{f(m['per_event_J'])} (samples {f(en['min_per_event_J'])} .. "
                     f"{f(en['max_per_event_J'])}); latency {m['latency_s'] * 1e6:.4g} us per inference"))
    rows.append((f"{report.get('engine', 'ngspice')} time (total)",
                 f"{report['engine_time_s_total']:.1f} s"))
    t = report.get("timing", {})
    sps = t.get("samples_per_s")
    rows.append(("throughput", "n/a (nothing simulated)" if not sps else
                 f"{sps:.3g} samples/s ({t['n_simulated']} samples, {t['jobs']} jobs"
                 f"{', ' + str(t['n_in_process']) + ' in-process' if t.get('n_in_process') else ''}, "
                 f"{t['wall_time_s']:.1f} s wall)"))
    n = report["n_samples"]
    rows.append(("samples", f"{n['train']} train + {n['test']} test, {n['simulated']} simulated, "
                            f"{n['failed']} failed"))
    return rows


def summary_table(report: dict) -> str:
    """Plain-text table printed at the end of a run."""
    rows = summary_rows(report)
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    for f in report["failures"][:5]:
        lines.append(f"failed: {f['key']}: {f['error']}")
    if len(report["failures"]) > 5:
        lines.append(f"... and {len(report['failures']) - 5} more failures (report.json)")
    return "\n".join(lines)


def report_markdown(report: dict) -> str:
    ds = report.get("dataset", {})
    v = report.get("versions", {})
    lines = [f"# cimspice evaluation: {ds.get('name', '')}", "",
             f"Dataset `{ds.get('path', '')}`"
             + (f" + test file `{ds['test_path']}`" if ds.get("test_path") else "")
             + f" (digest {ds.get('digest', '')}), config digest "
             f"`{report.get('config_digest', '')}`, readout `{report['readout']['kind']}`; "
             f"cimspice {v.get('cimspice', '')}, ngspice {v.get('ngspice', '')}, numpy {v.get('numpy', '')}.",
             "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in summary_rows(report)]
    lines += energy_markdown(report.get("energy"))
    if report["failures"]:
        lines += ["", "## Failed samples", "", "| sample | error |", "|---|---|"]
        lines += [f"| {f['key']} | {f['error'].replace('|', '/')} |" for f in report["failures"]]
    lines += ["", "![trajectories](trajectories.png)", "![accuracy](accuracy.png)",
              "![confusion](confusion.png)", "![NRMSE](nrmse_hist.png)", ""]
    return "\n".join(lines)


ENERGY_TABLE_ROWS = 50   # samples listed in report.md (report.json has every one)


def energy_markdown(en: dict | None) -> list[str]:
    """The per-sample energy table of report.md (first ENERGY_TABLE_ROWS samples)."""
    if not en:
        return []
    f = fmt_energy
    lines = ["", "## Energy per sample", "",
             "Delivered by the circuit's sources (behavioural stages ideal: their static power and "
             "ADCs are not modelled; ADC = `[energy] adc_per_read_J` x conversions).", "",
             "| sample | per inference | per event | crossbar | write | read | ADC |",
             "|---|---|---|---|---|---|---|"]
    for key, v in list(en["per_sample"].items())[:ENERGY_TABLE_ROWS]:
        lines.append(f"| {key} | {f(v['per_inference_J'])} | {f(v['per_event_J'])} | {f(v['crossbar_J'])} "
                     f"| {f(v['write_J'])} | {f(v['read_J'])} | {f(v['adc_J'])} |")
    m = en["mean"]
    lines.append(f"| **mean** ({en['n']}) | {f(m['per_inference_J'])} | {f(m['per_event_J'])} | "
                 f"{f(m['crossbar_J'])} | {f(m['write_J'])} | {f(m['read_J'])} | {f(m['adc_J'])} |")
    if en["n"] > ENERGY_TABLE_ROWS:
        lines.append(f"\n({en['n'] - ENERGY_TABLE_ROWS} more samples in report.json)")
    return lines


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def write_report(run_dir: Path, report: dict, *, plots: bool = True) -> None:
    """report.json, report.md and the PNG plots, each written atomically."""
    run_dir = Path(run_dir)
    if plots:
        report_plots(run_dir, report)
    write_text_atomic(run_dir / "report.md", report_markdown(report))
    # JSON last: its presence means the whole report is there.
    write_text_atomic(run_dir / "report.json", json.dumps(json_ready(report), indent=1, allow_nan=False) + "\n")


def json_ready(obj):
    """JSON-ready copy: NumPy scalars/arrays to Python, NaN/inf to null."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
