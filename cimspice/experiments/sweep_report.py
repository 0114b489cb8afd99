"""The figures and files of a sweep: one row per (point, chip instance), mean and 95 % CI over
the instances per point, ``sweep.csv``, ``sweep.json``, ``report.md`` and the PNG plots.

Pure functions first (rows -> statistics -> table and plot data), files last. Accuracies are
fractions (0..1) and NRMSE a ratio everywhere but in the printed tables and plots (%).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from scipy import stats

from ..io.files import write_text_atomic
from .plots import pyplot, save_figure
from .report import PROTOCOLS, json_ready
from .sweep_grid import value_text

METRICS = (*PROTOCOLS, "nrmse_mean")
SWEEP_FORMAT = 1
_FAILURES_LISTED = 20   # in report.md (sweep.json has every one)


# ------------------------------------------------------------------------------------------
# Figures (pure)
# ------------------------------------------------------------------------------------------

def unit_row(values: tuple, seed: int, report: dict) -> dict:
    """The figures of one unit from its :func:`~.report.compute_report` dict."""
    acc = report["accuracy"]
    return {"values": list(values), "seed": seed,
            **{p: acc[p]["accuracy"] for p in PROTOCOLS},
            "nrmse_mean": report["nrmse"]["mean"], "n_test": report["n_samples"]["test"],
            "n_failed": report["n_samples"]["failed"], "failures": report["failures"]}


def ci95(xs) -> dict:
    """Mean and half-width of the 95 % Student-t confidence interval of the values that are
    not None (half-width None below 2 values; mean None without any)."""
    x = np.array([v for v in xs if v is not None], dtype=float)
    if not x.size:
        return {"mean": None, "ci95": None, "n": 0}
    half = None
    if x.size >= 2:
        half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return {"mean": float(x.mean()), "ci95": half, "n": int(x.size)}


def point_stats(rows: list[dict]) -> list[dict]:
    """Per point (rows grouped by their values, in row order): each metric's :func:`ci95`
    over the chip instances and the number of failed samples."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r["values"]), []).append(r)
    return [{"values": list(vals), "seeds": [r["seed"] for r in rs],
             "n_failed": sum(r["n_failed"] for r in rs),
             **{m: ci95([r[m] for r in rs]) for m in METRICS}} for vals, rs in groups.items()]


def csv_text(names: list[str], rows: list[dict]) -> str:
    """sweep.csv: the swept keys, seed, the four accuracies (fractions), mean state NRMSE,
    test samples and failed samples; '' for a figure that is not available."""
    def num(v):
        return "" if v is None else format(v, ".6g")

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*names, "seed", *METRICS, "n_test", "n_failed"])
    for r in rows:
        w.writerow([*map(value_text, r["values"]), r["seed"], *(num(r[m]) for m in METRICS),
                    r["n_test"], r["n_failed"]])
    return buf.getvalue()


def _cell(s: dict, scale: float = 100.0, fmt: str = ".1f") -> str:
    if s["mean"] is None:
        return "n/a"
    text = format(scale * s["mean"], fmt)
    return text if s["ci95"] is None else f"{text} ± {format(scale * s['ci95'], fmt)}"


def table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-point table: swept values, accuracies and NRMSE in %, as
    mean ± 95 % CI half-width over the chip instances, failed samples."""
    header = [*summary["keys"], *(f"{p} %" for p in PROTOCOLS), "NRMSE %", "failed"]
    rows = [[*map(value_text, pt["values"]), *(_cell(pt[p]) for p in PROTOCOLS),
             _cell(pt["nrmse_mean"], fmt=".3g"), str(pt["n_failed"])] for pt in summary["points"]]
    return header, rows


def text_table(summary: dict) -> str:
    """The per-point table as aligned plain text (the CLI's output)."""
    header, rows = table(summary)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in [header, *rows])


def summary_text(summary: dict, n_failures: int = 5) -> str:
    """What the CLI prints: the per-point table, the sweep's size and the first failures."""
    t, sel, rows = summary["timing"], summary["selected"], summary["rows"]
    failures = [(r, f) for r in rows for f in r["failures"]]
    lines = [text_table(summary),
             f"{len(summary['points'])} point(s) x {summary['seeds']} chip instance(s) x "
             f"{sel['train'] + sel['test']} samples on {summary['engine']}: {t['n_simulated']} "
             f"simulated now ({t['wall_time_s']:.1f} s), {len(failures)} failed"]
    lines += [f"failed: {_point(r)} seed {r['seed']} {f['key']}: {f['error']}"
              for r, f in failures[:n_failures]]
    if len(failures) > n_failures:
        lines.append(f"... and {len(failures) - n_failures} more failures (sweep.json)")
    return "\n".join(lines)


def _point(row: dict) -> str:
    return ", ".join(map(value_text, row["values"])) or "-"


def plot_lines(summary: dict, metric: str) -> dict:
    """What a plot of ``metric`` vs the first swept key shows: ``x`` (positions), ``ticks``
    (labels, or None for a numeric axis), ``xlabel`` and ``lines`` = [(label, x, mean, ci95)],
    one per combination of the other keys' values (means and CIs None where unavailable)."""
    keys = summary["keys"]
    xs = [pt["values"][0] if keys else "" for pt in summary["points"]]
    distinct = list(dict.fromkeys(xs))
    numeric = bool(keys) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in distinct)
    pos = {v: (float(v) if numeric else float(i)) for i, v in enumerate(distinct)}
    lines: dict = {}
    for x, pt in zip(xs, summary["points"]):
        label = ", ".join(f"{k}={value_text(v)}" for k, v in zip(keys[1:], pt["values"][1:]))
        line = lines.setdefault(label, ([], [], []))
        line[0].append(pos[x])
        line[1].append(pt[metric]["mean"])
        line[2].append(pt[metric]["ci95"])
    return {"x": [pos[v] for v in distinct],
            "ticks": None if numeric else [value_text(v) for v in distinct],
            "xlabel": keys[0] if keys else "", "lines": [(k, *v) for k, v in lines.items()]}


# ------------------------------------------------------------------------------------------
# Drawing
# ------------------------------------------------------------------------------------------

def _draw(ax, data: dict, scale: float) -> None:
    for label, x, mean, ci in data["lines"]:
        ok = [i for i, m in enumerate(mean) if m is not None]
        if not ok:
            continue
        ax.errorbar([x[i] for i in ok], [scale * mean[i] for i in ok],
                    yerr=[scale * (ci[i] or 0.0) for i in ok], marker="o", ms=4, capsize=3,
                    lw=1.2, label=label or None)
    if data["ticks"] is not None:
        ax.set_xticks(data["x"], data["ticks"])
    ax.set_xlabel(data["xlabel"])
    ax.grid(alpha=0.3)


def plot_accuracy(summary: dict, path: Path) -> None:
    """Test accuracy of the four protocols vs the first swept key (mean, 95 % CI bars)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(8.5, 6.2), sharex=True, sharey=True,
                             constrained_layout=True)
    for ax, p in zip(axes.ravel(), PROTOCOLS):
        _draw(ax, plot_lines(summary, p), 100.0)
        ax.axhline(100 * summary["chance"], color="k", ls=":", lw=1)
        ax.set_title(p, fontsize=10)
        ax.set_ylim(0, 105)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    if any(label for label, *_ in plot_lines(summary, "ideal")["lines"]):
        axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"{summary['title']}: mean and 95 % CI over {summary['seeds']} chip instance(s); "
                 f"dotted: chance", fontsize=9)
    save_figure(fig, path)


def plot_nrmse(summary: dict, path: Path) -> None:
    """Mean state NRMSE vs the first swept key (mean, 95 % CI bars); log scale over decades."""
    plt = pyplot()
    data = plot_lines(summary, "nrmse_mean")
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    _draw(ax, data, 100.0)
    means = [m for _, _, ms, _ in data["lines"] for m in ms if m is not None]
    if means and min(means) > 0 and max(means) / min(means) > 100:
        ax.set_yscale("log")
    ax.set_ylabel("state NRMSE vs ideal SSM (%)")
    if any(label for label, *_ in data["lines"]):
        ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{summary['title']} ({summary['engine']})", fontsize=9)
    save_figure(fig, path)


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

PLOTS = {"accuracy.png": plot_accuracy, "nrmse.png": plot_nrmse}


def report_markdown(summary: dict) -> str:
    ds, sel = summary["dataset"], summary["selected"]
    header, rows = table(summary)
    lines = [f"# cimspice sweep: {summary['title']}", "",
             f"Dataset `{ds.get('path', '')}` ({ds.get('name', '')}, digest {ds.get('digest', '')}), "
             f"{sel['train']} train + {sel['test']} test samples, every one simulated on "
             f"`{summary['engine']}`; {summary['seeds']} chip instance(s) per point ([variation] "
             f"seed 0..{summary['seeds'] - 1}); base config digest `{summary['config_digest']}`, "
             f"readout `{summary['readout']}`, chance {100 * summary['chance']:.1f} %.", "",
             "Accuracies and mean state NRMSE in %, mean ± 95 % confidence half-width over the "
             "chip instances (Student t); one row per instance in `sweep.csv`.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    failures = [(r, f) for r in summary["rows"] for f in r["failures"]]
    if failures:
        lines += ["", "## Failed samples", "", "| point | seed | sample | error |", "|---|---|---|---|"]
        for r, f in failures[:_FAILURES_LISTED]:
            lines.append(f"| {_point(r)} | {r['seed']} | {f['key']} | {f['error'].replace('|', '/')} |")
        if len(failures) > _FAILURES_LISTED:
            lines.append(f"\n({len(failures) - _FAILURES_LISTED} more in sweep.json)")
    lines += ["", *(f"![{name[:-4]}]({name})" for name in PLOTS), ""]
    return "\n".join(lines)


def write_sweep_report(run_dir: Path, summary: dict, *, plots: bool = True) -> None:
    """sweep.csv, the PNGs, report.md and sweep.json (last: its presence means all are there),
    each written atomically."""
    run_dir = Path(run_dir)
    write_text_atomic(run_dir / "sweep.csv", csv_text(summary["keys"], summary["rows"]))
    if plots:
        for name, draw in PLOTS.items():
            draw(summary, run_dir / name)
    write_text_atomic(run_dir / "report.md", report_markdown(summary))
    write_text_atomic(run_dir / "sweep.json",
                      json.dumps(json_ready(summary), indent=1, allow_nan=False) + "\n")
