"""Write the bad-input corpus (run once; the files are committed): ``python make_corpus.py``.

Every file here is malformed in exactly one way; ``cases.toml`` says which command refuses it
and what the one error line must name. The output is byte-for-byte deterministic (fixed
zip timestamps, no HDF5 time stamps, no random draws without a seed), so re-running the script
on a clean checkout changes nothing. ``good/audio8.npz`` is the valid sample the
configuration and weights cases run with (8 audio channels, 24 events in 20 ms).
"""

from __future__ import annotations

import io
import shutil
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from cimspice.events import AUDIO_DTYPE, VISION_DTYPE  # noqa: E402

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------- writers

def savez(path: Path, **arrays) -> None:
    """np.savez with fixed member timestamps (np.savez stamps the current time)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME), buf.getvalue())


def save_npy(path: Path, arr) -> None:
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def save_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def shd(path: Path, times: list, units: list, *, p=None, labels=None, units_dtype=np.uint16):
    """SHD layout: ragged spikes/times (s) and spikes/units, optional spikes/p and labels."""
    with h5py.File(path, "w", track_order=False) as f:
        t = f.create_dataset("spikes/times", (len(times),), h5py.vlen_dtype(np.float64),
                             track_times=False)
        u = f.create_dataset("spikes/units", (len(units),), h5py.vlen_dtype(units_dtype),
                             track_times=False)
        for i, ti in enumerate(times):
            t[i] = np.asarray(ti, np.float64)
        for i, ui in enumerate(units):
            u[i] = np.asarray(ui, units_dtype)
        if p is not None:
            pp = f.create_dataset("spikes/p", (len(p),), h5py.vlen_dtype(np.int8), track_times=False)
            for i, pi in enumerate(p):
                pp[i] = np.asarray(pi, np.int8)
        if labels is not None:
            f.create_dataset("labels", data=np.asarray(labels, np.int64), track_times=False)


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


# --------------------------------------------------------------------------- event arrays

def audio(t, x, p=None) -> np.ndarray:
    ev = np.zeros(len(t), AUDIO_DTYPE)
    ev["t"], ev["x"], ev["p"] = t, x, 1 if p is None else p
    return ev


def vision(t, x, y, p=None) -> np.ndarray:
    ev = np.zeros(len(t), VISION_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, 1 if p is None else p
    return ev


def columns(dtype, **cols) -> np.ndarray:
    """A structured array with arbitrary field dtypes (for wrong-dtype cases)."""
    n = len(next(iter(cols.values())))
    arr = np.zeros(n, dtype)
    for k, v in cols.items():
        arr[k] = v
    return arr


def good_audio(seed: int, n: int = 24, channels: int = 8, span_us: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return audio(np.sort(rng.integers(0, span_us, n)), rng.integers(0, channels, n))


T3 = [0, 100, 200]
AUDIO_SENSOR = np.array([8, 1, 1], np.int64)
VISION_SENSOR = np.array([4, 4, 2], np.int64)


# --------------------------------------------------------------------------- corpus

def events_files(d: Path) -> None:
    # npz (single sample)
    savez(d / "unsorted.npz", events=vision([0, 130, 120], [0, 1, 2], [0, 0, 1]),
          sensor_size=VISION_SENSOR)
    savez(d / "nan_t.npz", events=columns([("t", "<f8"), ("x", "<i2"), ("p", "i1")],
                                          t=[0.0, np.nan, 200.0], x=[0, 1, 2], p=[1, 1, 1]))
    savez(d / "string_t.npz", events=columns([("t", "<U6"), ("x", "<i2"), ("p", "i1")],
                                             t=["0", "1ms", "2ms"], x=[0, 1, 2], p=[1, 1, 1]))
    savez(d / "x_outside_sensor.npz", events=audio(T3, [0, 9, 2]), sensor_size=AUDIO_SENSOR)
    savez(d / "missing_t.npz", events=columns([("x", "<i2"), ("y", "<i2"), ("p", "i1")],
                                              x=[0, 1], y=[0, 1], p=[1, 0]))
    savez(d / "extra_field.npz",
          events=columns([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1"), ("q", "<f4")],
                         t=[0, 1], x=[0, 1], y=[0, 1], p=[1, 0], q=[0.5, 0.5]))
    savez(d / "empty.npz", events=np.zeros(0, AUDIO_DTYPE), sensor_size=AUDIO_SENSOR)
    savez(d / "sensor_size_text.npz", events=audio(T3, [0, 1, 2]), sensor_size=np.str_("8x1x1"))
    savez(d / "label_fraction.npz", events=audio(T3, [0, 1, 2]), sensor_size=AUDIO_SENSOR,
          label=np.float64(1.5))
    savez(d / "truncated.npz", events=good_audio(1, n=200), sensor_size=AUDIO_SENSOR)
    truncate(d / "truncated.npz")
    # a valid npz under an extension no reader knows
    savez(d / "events.mat", events=audio(T3, [0, 1, 2]), sensor_size=AUDIO_SENSOR)

    # npy (structured array alone)
    save_npy(d / "negative_t.npy", vision([0, -5, 10], [0, 1, 1], [0, 0, 1]))
    save_npy(d / "overflow_t_uint64.npy", columns([("t", "<u8"), ("x", "<i2"), ("p", "i1")],
                                                  t=[0, 2 ** 63 + 5], x=[0, 1], p=[1, 1]))
    save_npy(d / "float_x.npy", columns([("t", "<i8"), ("x", "<f4"), ("y", "<i2"), ("p", "i1")],
                                        t=T3, x=[0.0, 1.5, 2.0], y=[0, 0, 0], p=[1, 1, 1]))
    save_npy(d / "missing_p.npy", columns([("t", "<i8"), ("x", "<i2"), ("y", "<i2")],
                                          t=T3, x=[0, 1, 2], y=[0, 0, 1]))
    save_npy(d / "empty.npy", np.zeros(0, VISION_DTYPE))
    save_npy(d / "truncated.npy", good_audio(2, n=200))
    truncate(d / "truncated.npy", 0.6)

    # csv
    save_text(d / "overflow_t.csv", "t,x,p\n0,0,1\n1e30,1,1\n")
    save_text(d / "fraction_t.csv", "t,x,y,p\n10,0,0,1\n20.5,1,0,1\n")
    save_text(d / "y_outside_sensor.csv", "# sensor_size=4,4,2\nt,x,y,p\n0,0,0,1\n5,1,4,0\n")
    save_text(d / "polarity_2.csv", "t,x,y,p\n0,0,0,1\n1,0,0,2\n")
    save_text(d / "empty.csv", "# sensor_size=8,1,1\nt,x,p\n")
    save_text(d / "bad_header.csv", "time,channel,polarity\n0,0,1\n5,1,1\n")
    save_text(d / "no_header.csv", "0,0,0,1\n5,1,0,1\n")
    save_text(d / "stray_text.csv", "t,x,p\n0,0,1\n5,oops,1\n9,2,1\n")
    save_text(d / "missing_column.csv", "t,x,y,p\n0,0,0,1\n5,1,1\n")
    (d / "latin1.csv").write_bytes("# caf\u00e9\nt,x,p\n0,0,1\n".encode("latin-1"))

    # HDF5 (SHD layout)
    shd(d / "nan_t.h5", [[0.0, np.nan]], [[0, 1]])
    shd(d / "empty.h5", [[]], [[]])
    shd(d / "units_count.h5", [[0.0, 1e-3]], [[0, 1], [2]])
    shd(d / "index_out_of_range.h5", [[0.0, 1e-3], [2e-3]], [[0, 1], [1]], labels=[0, 1])
    with h5py.File(d / "wrong_layout.hdf5", "w") as f:   # events as a table, not spikes/*
        f.create_dataset("data/events", data=audio(T3, [0, 1, 2]), track_times=False)
    shd(d / "truncated.h5", [list(np.linspace(0, 0.02, 300))], [list(np.arange(300) % 8)])
    truncate(d / "truncated.h5")

    # dataset npz (many samples)
    ev = audio([0, 50, 100, 0, 70], [0, 1, 2, 3, 4])
    savez(d / "dataset_offsets_beyond.npz", events=ev, offsets=np.array([0, 3, 9]),
          labels=np.array([0, 1]), sensor_size=AUDIO_SENSOR)
    savez(d / "dataset_offsets_decreasing.npz", events=ev, offsets=np.array([0, 4, 3, 5]),
          labels=np.array([0, 1, 0]), sensor_size=AUDIO_SENSOR)
    savez(d / "dataset_labels_missing.npz", events=ev, offsets=np.array([0, 3, 5]),
          sensor_size=AUDIO_SENSOR)
    savez(d / "dataset_empty_sample.npz", events=ev, offsets=np.array([0, 5, 5]),
          labels=np.array([0, 1]), sensor_size=AUDIO_SENSOR)

    # 0-byte file of every extension
    for ext in ("npz", "npy", "csv", "h5", "hdf5"):
        (d / f"zero_bytes.{ext}").write_bytes(b"")


def config_files(d: Path) -> None:
    texts = {
        "wrong_type.toml": '[ssm]\nn_states = "eight"\n',
        "wrong_type_bool.toml": "[device]\nwindow = 1\n",
        "unknown_key.toml": "[circuit]\ngmin = 1e-6\n",
        "unknown_section.toml": "[solver]\nreltol = 1e-4\n",
        "negative_tau.toml": "[ssm]\ntaus = [-0.01, 0.04]\n",
        "zero_tau.toml": "[ssm]\ntaus = [0.0]\n",
        "inverted_conductance.toml": "[circuit]\ng_min = 1e-4\ng_max = 1e-6\n",
        "equal_conductance.toml": "[circuit]\ng_min = 5e-5\ng_max = 5e-5\n",
        "device_g_on_below_g_off.toml": "[device]\ng_on = 1e-6\ng_off = 1e-4\n",
        "t_rise_ge_t_p.toml": "[events]\nt_p = 100e-6\nt_rise = 200e-6\n",
        "min_gap_zero.toml": "[events]\nmin_gap = 0.0\n",
        "channel_pool_zero.toml": "[events]\nchannel_pool = 0\n",
        # the pulse is longer than the shortest decay allows (tau must exceed t_p)
        "pulse_longer_than_tau.toml": "[events]\nt_p = 0.02\nt_rise = 1e-4\n[ssm]\ntaus = [0.01, 0.04]\n",
        "unknown_choice.toml": '[device]\nmode = "cubic"\n',
        "nan_value.toml": "[circuit]\nv_in = nan\n",
        "tile_rows_negative.toml": "[circuit]\ntile_rows = -16\n",
        "tile_rows_with_wires.toml": "[circuit]\ntile_rows = 16\nr_wire = 5.0\n",
        "bad_syntax.toml": "[ssm\nn_states = 8\n",
        # device presets, the read path and the circuit topology (hardware/presets.py)
        "unknown_topology.toml": '[circuit]\ntopology = "ring"\n',
        "unknown_preset.toml": '[device]\npreset = "taox"\n',
        "unknown_read_mode.toml": '[read]\nmode = "probe"\n',
        "wox_with_lam.toml": '[circuit]\ntopology = "trace"\n[device]\npreset = "wox"\nlam = 100.0\n',
        "v_write_below_threshold.toml": ('[circuit]\ntopology = "trace"\n[device]\npreset = "wox"\n'
                                         "v_write = 0.5\n"),
        "read_disturb.toml": ('[circuit]\ntopology = "trace"\n[device]\npreset = "ideal"\n'
                              '[read]\nmode = "pulse"\nv_read = 0.5\n'),
        "merge_count_trace.toml": '[events]\nmerge = "count"\n[circuit]\ntopology = "trace"\n',
        "window_not_bool.toml": '[device]\nwindow = "on"\n',
        # energy accounting (cimspice/energy.py)
        "adc_energy_negative.toml": "[energy]\nadc_per_read_J = -1e-12\n",
        "energy_accounting_not_bool.toml": '[energy]\naccounting = "yes"\n',
        "energy_unknown_key.toml": "[energy]\nadc_per_read = 1e-12\n",
        # variation (hardware/variation.py)
        "variation_negative_sigma.toml": "[variation]\ng_sigma = -0.05\n",
        "variation_adc_bits.toml": "[variation]\nadc_bits = 32\n",
        "variation_offset_on_trace.toml": ('[circuit]\ntopology = "trace"\n[read]\nmode = "pulse"\n'
                                           '[variation]\ndriver_offset = 0.01\n'),
        "variation_unknown_key.toml": "[variation]\ntau_spread = 0.1\n",
        "variation_seed_not_int.toml": "[variation]\nseed = 1.5\n",
        # valid keys; refused when the schedule is built: 10 read slots of 5 ms in a 20 ms stream
        "read_slots_overlap.toml": ('[circuit]\ntopology = "trace"\n[device]\npreset = "wox"\n'
                                    '[read]\nmode = "pulse"\nt_read = 5e-3\n'),
        # Valid keys and ranges, but tolerances no solver can meet: ngspice stops with
        # 'Timestep too small' (a real non-convergence, not a fake).
        "impossible_tolerance.toml": "[sim]\nreltol = 1e-9\nabstol = 1e-30\nvntol = 1e-30\n",
    }
    for name, text in texts.items():
        save_text(d / name, text)


def weights_files(d: Path) -> None:
    rng = np.random.default_rng(7)
    B = rng.normal(size=(8, 8))                 # 8 states x 8 inputs: matches good/audio8.npz
    taus = np.array([0.01, 0.04])
    groups = np.arange(8) % 2
    savez(d / "B_wrong_inputs.npz", B=B[:, :5], taus=taus, groups=groups)
    savez(d / "B_1d.npz", B=B[0], taus=taus, groups=groups)
    B_nan = B.copy()
    B_nan[2, 3] = np.nan
    savez(d / "B_nan.npz", B=B_nan, taus=taus, groups=groups)
    savez(d / "B_missing.npz", W=B, taus=taus, groups=groups)
    savez(d / "taus_negative.npz", B=B, taus=np.array([0.01, -0.04]), groups=groups)
    savez(d / "taus_zero.npz", B=B, taus=np.array([0.0, 0.04]), groups=groups)
    savez(d / "groups_out_of_range.npz", B=B, taus=taus, groups=np.array([0, 1, 2, 0, 1, 0, 1, 0]))
    savez(d / "groups_wrong_length.npz", B=B, taus=taus, groups=groups[:6])
    savez(d / "C_wrong_states.npz", B=B, taus=taus, groups=groups, C=np.ones((3, 5)))
    savez(d / "truncated.npz", B=rng.normal(size=(16, 16)), taus=taus, groups=np.arange(16) % 2)
    truncate(d / "truncated.npz")
    save_npy(d / "single_array.npy", B)         # a bare array, not an archive of named keys


def device_files(d: Path) -> None:
    """vmem.lib with one syntax error each; the test copies device_models/ and swaps one in."""
    src = (ROOT / "device_models" / "vmem.lib").read_text(encoding="utf-8")
    edits = {
        # a missing closing parenthesis in the read-current expression
        "unclosed_paren/vmem.lib": ("Br p n I = (goff + (gon - goff)*V(w))",
                                    "Br p n I = (goff + (gon - goff)*V(w)"),
        # a missing closing brace in a parameter expression
        "unclosed_brace/vmem.lib": ("Cw w 0 1 ic={w0}\n", "Cw w 0 1 ic={w0\n"),
    }
    for rel, (old, new) in edits.items():
        # the first subcircuit (vmem) is the one edited; vmem_odd repeats these lines
        if old not in src.split(".ends vmem")[0]:
            raise SystemExit(f"device_models/vmem.lib changed: {old!r} not in subckt vmem; "
                             f"update make_corpus.py")
        text = src.replace(old, new, 1)
        out = d / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        save_text(out, text)


def good_files(d: Path) -> None:
    savez(d / "audio8.npz", events=good_audio(0), sensor_size=AUDIO_SENSOR)


def main() -> None:
    for sub, make in (("events", events_files), ("config", config_files),
                      ("weights", weights_files), ("device", device_files), ("good", good_files)):
        d = HERE / sub
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        make(d)
    n = sum(1 for p in HERE.rglob("*") if p.is_file() and p.parent != HERE)
    print(f"wrote {n} files under {HERE}")


if __name__ == "__main__":
    main()
