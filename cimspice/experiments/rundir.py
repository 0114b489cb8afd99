"""The run directory of an evaluation: what it was made from, and what it may be mixed with.

::

    RUN_DIR/manifest.json          what the samples were made from (config, dataset, weights digests)
    RUN_DIR/dataset.npz            the generated dataset (only when a built-in NAME was given)
    RUN_DIR/samples/<split>_<index>.h5   one result file per sample

A resumed run reuses sample files only when the config, dataset, weights and programmed
hardware all have the digests recorded in the manifest (:func:`check_run_dir`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..datasets import SPLIT_TEST, SPLIT_TRAIN, dataset_split, list_datasets, make_dataset, save_dataset
from ..errors import InputError
from ..io.event_files import load_dataset, load_train_test
from ..io.files import write_text_atomic

MANIFEST_FORMAT = 1


# ------------------------------------------------------------------------------------------
# Identities
# ------------------------------------------------------------------------------------------

def dataset_digest(ds) -> str:
    """Content hash of an events.EventDataset (events, offsets, labels, split, sensor)."""
    h = hashlib.sha256()
    for arr in (ds.events, ds.offsets, ds.labels, ds.split if ds.split is not None else np.zeros(0),
                np.asarray(ds.sensor_size)):
        a = np.ascontiguousarray(arr)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def hardware_digest(model, mapping) -> str:
    """Hash of the SSM and of the programmed circuit: a resumed run must not mix samples
    simulated on different hardware, even when the config text is the same."""
    h = hashlib.sha256()
    for name in ("B", "taus", "groups"):
        h.update(np.ascontiguousarray(getattr(model, name), dtype=float).tobytes())
    for name in ("g_plus", "g_minus", "g_rram_plus", "g_rram_minus", "r_tia", "tau", "gains"):
        h.update(np.ascontiguousarray(getattr(mapping, name), dtype=float).tobytes())
    if mapping.chip is not None:          # the chip instance's device draws
        for arr in mapping.chip.arrays().values():
            h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# Dataset and selection
# ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _generated(name: str, n: int | None, seed: int):
    """make_dataset, remembered: runs of one process on the same built-in dataset (several
    configurations, a sweep) generate it once (only saved from here, never modified)."""
    return make_dataset(name, n, seed)


def resolve_dataset(spec: str, run_dir: Path, *, n: int | None = None, seed: int | None = None,
                    test_spec: str | None = None, force: bool = False):
    """(EventDataset, identity dict): an existing file (``.npz`` or SHD-layout ``.h5``), a
    training file and a ``test_spec`` test file, or a built-in NAME generated into
    ``run_dir/dataset.npz`` with ``n`` samples and ``seed`` (a run directory made from another
    dataset keeps its file: refused unless ``force``, as :func:`check_run_dir` would)."""
    p = Path(spec)
    if (test_spec is not None or p.exists()) and (n is not None or seed is not None):
        raise InputError(f"--dataset {spec}: --n and --seed generate a built-in dataset; they "
                         f"do not apply to a file (drop them or give a dataset name)")
    if test_spec is not None:
        for flag, f in (("--dataset", spec), ("--test-dataset", test_spec)):
            if not Path(f).exists():
                raise InputError(f"--dataset {spec} --test-dataset {test_spec}: {flag} {f}: no such "
                                 f"file; give a training and a test dataset file")
        ds = load_train_test(p, test_spec)
        q = Path(test_spec)
        ident = {"kind": "files", "path": str(p.resolve()), "test_path": str(q.resolve()),
                 "name": str(ds.params.get("name")), "seed": None, "n": len(ds)}
    elif p.exists():
        ds = load_dataset(p)
        ident = {"kind": "file", "path": str(p.resolve()), "name": str(ds.params.get("name", p.stem)),
                 "seed": ds.params.get("seed"), "n": len(ds)}
    else:
        known = sorted(i.name for i in list_datasets())
        if spec not in known:
            hint = "no such file, and not " if (p.suffix or os.sep in spec) else ""
            raise InputError(f"--dataset {spec}: {hint}unknown dataset name; known datasets: "
                             f"{', '.join(known)} (or give a dataset .npz or SHD-layout .h5 file)")
        seed = 0 if seed is None else seed
        target = Path(run_dir) / "dataset.npz"
        old = read_manifest(run_dir)
        want = {"kind": "builtin", "name": spec, "seed": seed, "n": n}
        same = old is not None and {k: old.get("dataset", {}).get(k) for k in want} == want
        if old is not None and not same and not force:
            made_from = old.get("dataset", {})
            raise InputError(f"{run_dir}: made with another dataset ({made_from.get('name')}, "
                             f"seed {made_from.get('seed')}, n {made_from.get('n')}); use another "
                             f"-o directory or --force to discard its samples")
        if not (same and target.is_file()):
            made = _generated(spec, n, seed)
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            save_dataset(target, made)
        ds = load_dataset(target)
        ident = {**want, "path": str(target.resolve()), "n_samples": len(ds)}
    ident["digest"] = dataset_digest(ds)
    return ds, ident


def select(ds, n_train: int | None, n_test: int | None) -> dict:
    """{'train': indices, 'test': indices}: the first n of each split, in dataset order."""
    split = dataset_split(ds)
    chosen = {}
    for code, name, want in ((SPLIT_TRAIN, "train", n_train), (SPLIT_TEST, "test", n_test)):
        idx = np.flatnonzero(split == code)
        if want is None:
            want = idx.size
        if want < 1:
            raise InputError(f"--n-{name} {want}: need at least 1 {name} sample")
        if want > idx.size:
            raise InputError(f"--n-{name} {want}: the {name} split of {ds.source} has only "
                             f"{idx.size} samples; use --n-{name} <= {idx.size}")
        chosen[name] = [int(i) for i in idx[:want]]
    labels = np.asarray(ds.labels)[chosen["train"]]
    if np.unique(labels).size < 2:
        raise InputError(f"--n-train {len(chosen['train'])}: the selected training samples of "
                         f"{ds.source} hold {np.unique(labels).size} class; raise --n-train so "
                         f"that >= 2 classes are present")
    return chosen


# ------------------------------------------------------------------------------------------
# Manifest and run directory
# ------------------------------------------------------------------------------------------

def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_manifest(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / "manifest.json")


def write_manifest(run_dir: Path, manifest: dict) -> None:
    write_text_atomic(Path(run_dir) / "manifest.json", json.dumps(manifest, indent=1) + "\n")


def check_run_dir(run_dir: Path, identity: dict, force: bool) -> None:
    """Refuse to mix samples made from another config / dataset / weights / engine (unless force,
    which deletes the old sample files)."""
    old = read_manifest(run_dir)
    samples = Path(run_dir) / "samples"
    if old is None:
        if samples.is_dir() and any(samples.glob("*.h5")) and not force:
            raise InputError(f"{run_dir}: has sample files but no manifest.json; use another -o "
                             f"directory or --force to discard them")
    else:
        for what, key in (("config", "config_digest"), ("weights", "weights_digest"),
                          ("SSM or circuit mapping (weights or code changed)", "hardware_digest")):
            if old.get(key) != identity[key] and not force:
                raise InputError(f"{run_dir}: made with another {what} ({key} {old.get(key)} != "
                                 f"{identity[key]}); use another -o directory or --force to "
                                 f"discard its samples")
        old_engine = old.get("engine", "ngspice")   # 0.1.0 manifests: ngspice runs
        if old_engine != identity["engine"] and not force:
            raise InputError(f"{run_dir}: made with engine {old_engine}, not {identity['engine']} (a run "
                             f"never mixes engines); use another -o directory or --force to discard "
                             f"its samples")
        if old.get("dataset", {}).get("digest") != identity["dataset"]["digest"] and not force:
            raise InputError(f"{run_dir}: made with another dataset ({old.get('dataset', {}).get('path')}); "
                             f"use another -o directory or --force to discard its samples")
    if force and samples.is_dir():
        for f in samples.iterdir():
            if f.suffix in (".h5", ".tmp"):
                f.unlink()


def open_run_dir(run_dir: Path, identity: dict, force: bool) -> None:
    """Create the run directory (its parent exists), check it against ``identity`` and make
    ``samples/``, without temp files left by a SIGKILLed writer."""
    run_dir = Path(run_dir)
    run_dir.mkdir(exist_ok=True)
    check_run_dir(run_dir, identity, force)
    (run_dir / "samples").mkdir(exist_ok=True)
    for stale in (run_dir / "samples").glob(".*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def drop_report(run_dir: Path) -> dict | None:
    """Delete report.json and report.md (a report always describes a finished run of the
    current manifest); returns the old report.json content, or None."""
    old = read_json(Path(run_dir) / "report.json")
    for name in ("report.json", "report.md"):
        with contextlib.suppress(FileNotFoundError):
            (Path(run_dir) / name).unlink()
    return old
