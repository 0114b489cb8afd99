"""Result files (HDF5), always written atomically: temp file + rename.

Layout::

    /                attrs: cimspice_version, engine, simulator_version, ngspice_version, created,
                     config (TOML), seed, source
    /events          the pulse schedule: t (pulse start, s), c (input row), u (amplitude), width (s)
    /sample_times    (M,) s
    /states/software (S, M, N)      software reference: dirac SSM on the raw events (no merging)
    /states/ideal    (S, M, N)      /states/circuit (S, M, N) when simulated, by the engine named
                     in the root attribute ``engine`` (files of 0.1.0: /states/spice, still read)
    /waveforms/...   optional traces (time, w+ and w- per state), compressed
    /model/B, taus, groups, G_plus, G_minus, G_rram_plus, G_rram_minus, r_tia, gains
    /labels          (S,) when known
    /metrics         attrs: state_nrmse, wall_time_s, engine_time_s, n_events, ...
    /energy          scalar datasets (when the engine accounted energy; cimspice.energy.NAMES):
                     crossbar_J, write_J, read_J, adc_J, total_J, per_event_J, per_pulse_J,
                     per_inference_J (J), latency_s (s), n_events, n_pulses, n_reads,
                     n_conversions; attrs: engine, not_modelled
    /variation       the draws of hardware.variation the run used (when [variation] is on):
                     chip/ (tau_factor, rate_factor, driver_offset, g_plus_factor, g_minus_factor;
                     attr seed), sample/ (write_factor, read_normal; attr key), full_scale (N,)
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..text import storable_text
from ..energy import NOT_MODELLED
from ..errors import InputError
from .files import atomic_path


@dataclass
class Result:
    """In-memory image of one result file."""

    sample_times: np.ndarray
    ideal: np.ndarray                    # (S, M, N)
    circuit: np.ndarray | None = None    # (S, M, N) states from the engine in attrs['engine']
    software: np.ndarray | None = None   # (S, M, N) software reference (dirac, raw events)
    events: dict | None = None           # {'t','c','u'} arrays
    model: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    waveforms: dict = field(default_factory=dict)
    energy: dict = field(default_factory=dict)   # /energy scalars (empty: not accounted)
    variation: dict = field(default_factory=dict)  # /variation: {'chip': {...}, 'sample': {...},
                                                   # 'full_scale': (N,), 'seed', 'key'}


def _put(group, name: str, data) -> None:
    """``group[name] = data`` for a small numeric array through h5py's low-level API: a third
    of create_dataset's cost (its Python layer is most of a sample file's write time, measured);
    no creation time stored (same data, same bytes). Other kinds take the high-level path."""
    a = np.ascontiguousarray(data)
    if a.dtype.kind not in "iuf" or a.size == 0:
        group.create_dataset(name, data=a)
        return
    space = h5py.h5s.create_simple(a.shape) if a.ndim else h5py.h5s.create(h5py.h5s.SCALAR)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    d = h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(a.dtype), space, dcpl=dcpl)
    d.write(h5py.h5s.ALL, h5py.h5s.ALL, a)


_GZIP = {"compression": "gzip", "compression_opts": 4}
_GZIP_MIN_BYTES = 65536


def write_result(path: str | Path, result: Result) -> None:
    """Write ``result`` to ``path`` (HDF5) atomically; deterministic apart from attrs['created']."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["cimspice_version"] = __version__
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            for k, v in result.attrs.items():
                f.attrs[k] = storable_text(v) if isinstance(v, str) else v
            if result.events is not None:
                g = f.create_group("events")
                for k, v in result.events.items():
                    _put(g, k, v)
            _put(f, "sample_times", np.asarray(result.sample_times, dtype=float))
            st = f.create_group("states")
            _put(st, "ideal", np.asarray(result.ideal, dtype=float))
            if result.software is not None:
                _put(st, "software", np.asarray(result.software, dtype=float))
            if result.circuit is not None:
                _put(st, "circuit", np.asarray(result.circuit, dtype=float))
            if result.waveforms:
                wg = f.create_group("waveforms")
                for k, v in result.waveforms.items():
                    v = np.asarray(v)   # dense traces compressed; (M, N) ones not worth it
                    if v.nbytes > _GZIP_MIN_BYTES:
                        wg.create_dataset(k, data=v, **_GZIP)
                    else:
                        _put(wg, k, v)
            mg = f.create_group("model")
            for k, v in result.model.items():
                if isinstance(v, str):
                    mg.attrs[k] = storable_text(v)
                else:
                    _put(mg, k, v)
            if result.labels is not None:
                _put(f, "labels", np.asarray(result.labels, dtype=np.int64))
            met = f.create_group("metrics")
            for k, v in result.metrics.items():
                met.attrs[k] = v
            if result.energy:
                eg = f.create_group("energy")
                eg.attrs["engine"] = storable_text(str(result.attrs.get("engine", "")))
                eg.attrs["not_modelled"] = NOT_MODELLED
                for k, v in result.energy.items():
                    _put(eg, k, v)
            if result.variation:
                vg = f.create_group("variation")
                for k, v in result.variation.items():
                    if isinstance(v, dict):
                        sub = vg.create_group(k)
                        for name, arr in v.items():
                            _put(sub, name, arr)
                    elif np.ndim(v) == 0:
                        vg.attrs[k] = v
                    else:
                        _put(vg, k, v)


def _metrics(f) -> dict:
    """The metrics attributes; a 0.1.0 file's ``spice_time_s`` is read as ``engine_time_s``."""
    met = dict(f["metrics"].attrs) if "metrics" in f else {}
    if "spice_time_s" in met:
        met.setdefault("engine_time_s", met.pop("spice_time_s"))
    return met


def _variation(g) -> dict:
    out = dict(g.attrs)
    for k in g:
        out[k] = {n: g[k][n][()] for n in g[k]} if isinstance(g[k], h5py.Group) else g[k][()]
    return out


def read_result(path: str | Path, lean: bool = False) -> Result:
    """Read a result file written by :func:`write_result`; ``lean``: without the events, the
    model, the waveforms and the variation draws (what a report needs; 2x faster)."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable cimspice HDF5 result ({exc}); run `cimspice simulate` to make one") from None
    with f:
        if "states" not in f or "ideal" not in f["states"]:
            raise InputError(f"{path}: field '/states/ideal' missing; not a cimspice result file")
        full = not lean
        res = Result(
            sample_times=f["sample_times"][()],
            ideal=f["states/ideal"][()],
            circuit=next((f["states"][k][()] for k in ("circuit", "spice") if k in f["states"]), None),
            software=f["states/software"][()] if "software" in f["states"] else None,
            events={k: f["events"][k][()] for k in f["events"]} if full and "events" in f else None,
            model={**{k: f["model"][k][()] for k in f["model"]}, **dict(f["model"].attrs)}
            if full and "model" in f else {},
            labels=f["labels"][()] if "labels" in f else None,
            metrics=_metrics(f),
            attrs=dict(f.attrs),
            waveforms={k: f["waveforms"][k][()] for k in f["waveforms"]} if full and "waveforms" in f else {},
            energy={k: f["energy"][k][()].item() for k in f["energy"]} if "energy" in f else {},
            variation=_variation(f["variation"]) if full and "variation" in f else {},
        )
    return res
