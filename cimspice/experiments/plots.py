"""Plots (matplotlib, Agg backend): data preparation first, drawing second, files atomic.

``*_data`` functions compute what is drawn (pure, testable); ``plot_*`` functions draw it into
a PNG written atomically (temp file + rename). Times are shown in ms, states in SSM units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config, config_from_toml
from ..errors import InputError
from ..io.files import atomic_path
from ..io.results import read_result
from ..schedule import PulseSchedule
from ..ssm import SSMParams, simulate_ssm


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib  # lazily: a heavy dependency that only drawing needs

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------
# Trajectories of one result file
# ------------------------------------------------------------------------------------------

def trajectory_data(result, n_states: int = 4) -> dict:
    """What the trajectory plot of one result (results.Result, first sample) shows.

    Returns: t (M,) s sample times, ideal (M, K) and circuit (M, K) or None for the K chosen
    states (the K with the largest ideal RMS), states (K,) their indices, raster_t (P,) s and
    raster_row (P,) pulse onsets, dense_t (T,) s with dense_circuit (T, K) from stored
    waveforms (or None) and dense_ideal (T, K) recomputed from the stored model and pulses
    (or None when the file lacks them), engine (the name of the engine behind ``circuit``).
    """
    ideal = np.asarray(result.ideal)
    if ideal.ndim != 3 or ideal.shape[1] == 0:
        raise InputError("result: field '/states/ideal' is empty; this sample failed before its "
                         "states were computed (see its 'error' attribute)")
    ideal = ideal[0]
    circuit = None if result.circuit is None else np.asarray(result.circuit)[0]
    t = np.asarray(result.sample_times, dtype=float)
    rms = np.sqrt(np.mean(ideal ** 2, axis=0))
    states = np.sort(np.argsort(-rms, kind="stable")[: max(1, min(n_states, ideal.shape[1]))])
    out = {"t": t, "ideal": ideal[:, states],
           "circuit": None if circuit is None else circuit[:, states],
           "states": states, "raster_t": None, "raster_row": None, "dense_t": None,
           "dense_circuit": None, "dense_ideal": None,
           "engine": str((result.attrs or {}).get("engine", "")) or "circuit"}
    ev = result.events or {}
    if "t" in ev and "c" in ev:
        out["raster_t"] = np.asarray(ev["t"], dtype=float)
        out["raster_row"] = np.asarray(ev["c"])
    w = result.waveforms or {}
    gains = result.model.get("gains") if result.model else None
    if {"time", "w_plus", "w_minus"} <= set(w) and gains is not None and np.all(np.isfinite(gains)):
        x = (np.asarray(w["w_plus"]) - np.asarray(w["w_minus"])) / np.asarray(gains)
        out["dense_t"] = np.asarray(w["time"], dtype=float)
        out["dense_circuit"] = x[:, states]
    if result.sample_times.size:
        duration = float(result.sample_times[-1])
        t_fine = np.linspace(duration / 800, duration, 800)
        dense = ideal_on_grid(result, t_fine)
        if dense is not None:
            out["dense_ideal_t"] = t_fine
            out["dense_ideal"] = dense[:, states]
    return out


def ideal_on_grid(result, times) -> np.ndarray | None:
    """Ideal SSM states (T, N) at ``times`` (s) recomputed from the file's model (B, taus,
    groups), pulses (events t, c, u, width) and config; None when the file lacks them."""
    model, ev = result.model or {}, result.events or {}
    if not ({"B", "taus", "groups"} <= set(model) and {"t", "c", "u", "width"} <= set(ev)):
        return None
    try:
        cfg = config_from_toml(result.attrs["config"]) if "config" in result.attrs else Config()
        params = SSMParams(B=model["B"], taus=model["taus"], groups=model["groups"])
        duration = float(result.sample_times[-1])
        sch = PulseSchedule(row=np.asarray(ev["c"]).astype(np.int32), t_on=np.asarray(ev["t"], float),
                            width=np.asarray(ev["width"], float), amplitude=np.asarray(ev["u"], float),
                            n_rows=params.n_inputs, t_p=cfg.events.t_p, t_rise=cfg.events.t_rise,
                            min_gap=cfg.events.min_gap, duration=duration)
        return simulate_ssm(params, sch, np.asarray(times, dtype=float), method=cfg.ssm.method)
    except Exception:  # a plot must not fail because an optional overlay cannot be rebuilt
        return None


def plot_trajectories(data: dict, path: str | Path, title: str = "") -> None:
    """Ideal vs circuit states (one panel per state) above the input event raster."""
    plt = pyplot()
    k = len(data["states"])
    fig, axes = plt.subplots(k + 1, 1, figsize=(8, 1.6 * k + 1.8), sharex=True,
                             gridspec_kw={"height_ratios": [1.0] * k + [1.2]})
    ms = 1e3
    for j, ax in enumerate(axes[:k]):
        n = int(data["states"][j])
        if data.get("dense_ideal") is not None:
            ax.plot(data["dense_ideal_t"] * ms, data["dense_ideal"][:, j], color="k", lw=1.0,
                    label="ideal SSM")
        if data["dense_circuit"] is not None:
            ax.plot(data["dense_t"] * ms, data["dense_circuit"][:, j], color="tab:red", lw=0.9,
                    ls="--", label=data["engine"])
        ax.plot(data["t"] * ms, data["ideal"][:, j], "o", color="k", ms=4, mfc="none",
                label="ideal at sample times")
        if data["circuit"] is not None:
            ax.plot(data["t"] * ms, data["circuit"][:, j], "x", color="tab:red", ms=5,
                    label=f"{data['engine']} at sample times")
        ax.set_ylabel(f"x[{n}]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=7, ncol=2, frameon=False)
    ax = axes[-1]
    if data["raster_t"] is not None and data["raster_t"].size:
        ax.plot(data["raster_t"] * ms, data["raster_row"], "|", color="tab:blue", ms=4, mew=0.8)
    ax.set_ylabel("input row")
    ax.set_xlabel("time (ms)")
    if title:
        axes[0].set_title(title, fontsize=9)
    save_figure(fig, path)


def plot_result_file(result_path: str | Path, out: str | Path | None = None, n_states: int = 4) -> Path:
    """`cimspice plot`: the trajectories of one result file -> PNG (default: beside it)."""
    result_path = Path(result_path)
    res = read_result(result_path)
    out = Path(out) if out else result_path.with_suffix(".png")
    data = trajectory_data(res, n_states=n_states)
    nr = res.metrics.get("state_nrmse")
    title = f"{result_path.name}" + (f"  (state NRMSE {100 * float(nr):.3g} %)"
                                    if nr is not None and np.isfinite(nr) else "")
    plot_trajectories(data, out, title=title)
    return out


# ------------------------------------------------------------------------------------------
# Evaluation report plots
# ------------------------------------------------------------------------------------------

def accuracy_data(report: dict) -> tuple[list[str], list[float | None]]:
    """(protocol names in report order, their accuracies or None)."""
    acc = report["accuracy"]
    names = list(acc)
    return names, [acc[p]["accuracy"] for p in names]


def plot_accuracy(report: dict, path: str | Path) -> None:
    plt = pyplot()
    names, vals = accuracy_data(report)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    xs = np.arange(len(names))
    heights = [100 * v if v is not None else 0.0 for v in vals]
    ax.bar(xs, heights, color=["0.3", "tab:red", "tab:orange"])
    for x, v in zip(xs, vals):
        ax.text(x, (100 * v if v is not None else 0) + 1, "n/a" if v is None else f"{100 * v:.1f}",
                ha="center", va="bottom", fontsize=8)
    ax.axhline(100 * report["chance"], color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(xs, names)
    ax.set_ylim(0, 110)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, path)


def plot_confusions(report: dict, path: str | Path) -> None:
    plt = pyplot()
    acc = report["accuracy"]
    names = [p for p in acc if acc[p].get("confusion") is not None]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)) + 0.6, 3.4),
                             squeeze=False, constrained_layout=True)
    classes = report.get("classes") or []
    for ax, p in zip(axes[0], names):
        cm = np.asarray(acc[p]["confusion"])
        ax.imshow(cm, cmap="Blues", vmin=0)
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="w" if v > cm.max() / 2 else "k")
        ticks = np.arange(cm.shape[0])
        labels = classes if len(classes) == cm.shape[0] else [str(t) for t in ticks]
        ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
        # class names only on the first panel: the others share its rows
        ax.set_yticks(ticks, labels if ax is axes[0][0] else [], fontsize=6)
        ax.set_title(f"{p} ({100 * acc[p]['accuracy']:.1f} %)", fontsize=9)
        ax.set_xlabel("predicted")
    axes[0][0].set_ylabel("true")
    if not names:
        axes[0][0].text(0.5, 0.5, "no accuracy available", ha="center", va="center")
        axes[0][0].set_axis_off()
    save_figure(fig, path)


def plot_nrmse_hist(report: dict, path: str | Path) -> None:
    plt = pyplot()
    vals = np.array(list(report["nrmse"]["per_sample"].values()), dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    if vals.size:
        ax.hist(100 * vals, bins=min(30, max(5, vals.size // 2)), color="tab:red", alpha=0.8)
        ax.axvline(100 * vals.mean(), color="k", ls="--", lw=1, label=f"mean {100 * vals.mean():.3g} %")
        ax.legend(frameon=False, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no simulated sample", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("state NRMSE vs ideal SSM (%)")
    ax.set_ylabel("samples")
    save_figure(fig, path)


def report_plots(run_dir: str | Path, report: dict) -> list[Path]:
    """All report PNGs of an evaluation run directory."""
    run_dir = Path(run_dir)
    written = []
    plot_accuracy(report, run_dir / "accuracy.png")
    plot_confusions(report, run_dir / "confusion.png")
    plot_nrmse_hist(report, run_dir / "nrmse_hist.png")
    written += [run_dir / n for n in ("accuracy.png", "confusion.png", "nrmse_hist.png")]
    key = report.get("trace_sample")
    if key:
        res = read_result(run_dir / "samples" / f"{key}.h5")
        plot_trajectories(trajectory_data(res), run_dir / "trajectories.png",
                          title=f"{key}: ideal vs {report.get('engine', 'circuit')} (state NRMSE "
                                f"{100 * report['nrmse']['per_sample'][key]:.3g} %)")
        written.append(run_dir / "trajectories.png")
    return written
