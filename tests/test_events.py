"""Events: readers/writers, validation at the boundary, transforms, pulse schedule."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from cimspice import events as E
from cimspice import schedule as SC
from cimspice.io import event_files as F
from cimspice.cli import main
from cimspice.errors import EventFileError, InputError


# --------------------------------------------------------------------------- helpers

def vision_sample(n=200, seed=0, label=3, class_name="left-fast"):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, E.VISION_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 50_000, n))
    ev["x"] = rng.integers(0, 16, n)
    ev["y"] = rng.integers(0, 12, n)
    ev["p"] = rng.integers(0, 2, n)
    return E.EventSample(ev, (16, 12, 2), label, "<test>", class_name)


def audio_sample(n=150, seed=1, polarity=False, label=2, class_name="up"):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, E.AUDIO_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 80_000, n))
    ev["x"] = rng.integers(0, 20, n)
    ev["p"] = rng.integers(0, 2, n) if polarity else 1
    return E.EventSample(ev, (20, 1, 2 if polarity else 1), label, "<test>", class_name)


SAMPLES = {"vision": vision_sample, "audio": audio_sample,
           "audio-pol": lambda: audio_sample(polarity=True)}


def inferred_sensor(ev):
    """Independent statement of the inference rule for files without a sensor size."""
    if "y" in ev.dtype.names:
        return (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1, 2)
    return (int(ev["x"].max()) + 1, 1, 1 if np.all(ev["p"] == 1) else 2)


def run_info(*args):
    return CliRunner().invoke(main, ["events", "info", *map(str, args)])


def check_schedule(s: SC.PulseSchedule):
    """The netlist's safety contract: per-row occupied intervals separated by >= min_gap."""
    start, end = s.occupied()
    assert np.all(start > 0)
    assert np.all(np.diff(s.t_on) >= 0)
    o = np.lexsort((s.t_on, s.row))
    r, a, b = s.row[o], start[o], end[o]
    same = r[1:] == r[:-1]
    assert np.all((a[1:] - b[:-1])[same] >= s.min_gap)
    assert s.duration >= (b.max() if b.size else 0.0)
    carried = float(np.sum(s.amplitude * s.width / s.t_p))
    # amplitude*width/t_p is an integer count computed in floating point: 1e-9 relative slack
    assert carried + s.n_dropped == pytest.approx(s.n_events, rel=1e-9, abs=1e-9)
    assert s.n_pulses + s.n_merged + s.n_dropped == s.n_events


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("ext", [".npz", ".npy", ".csv", ".h5", ".hdf5"])
def test_every_reader_round_trips_every_writer(tmp_path, kind, ext):
    s = SAMPLES[kind]()
    path = tmp_path / f"sample{ext}"
    if ext in (".h5", ".hdf5") and kind == "vision":
        with pytest.raises(EventFileError, match="field 'y'"):
            F.save_events(path, s)
        assert list(tmp_path.iterdir()) == []
        return
    F.save_events(path, s)
    back = F.load_events(path)
    assert back.events.dtype == s.events.dtype
    assert np.array_equal(back.events, s.events)
    assert back.source == str(path)
    if ext == ".npy":   # a bare structured array: no metadata, sensor size inferred
        assert back.sensor_size == inferred_sensor(s.events)
        assert back.label is None
    else:
        assert back.sensor_size == s.sensor_size
        assert back.label == s.label
        assert back.class_name == s.class_name
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_dataset_file_read_and_index(tmp_path):
    """A dataset .npz as `cimspice datasets make` writes it, built here with NumPy alone."""
    parts = [vision_sample(n, seed) for n, seed in ((30, 0), (45, 1), (12, 2))]
    path = tmp_path / "ds.npz"
    np.savez(path, events=np.concatenate([p.events for p in parts]),
             offsets=np.array([0, 30, 75, 87]), labels=np.array([1, 0, 1]),
             split=np.array([0, 0, 1], np.int8), sensor_size=np.array([16, 12, 2]),
             classes=np.array(["slow", "fast"]), name=np.str_("toy"), seed=np.int64(7),
             params=np.str_('{"speeds": [1.0, 2.0]}'))
    ds = E.EventDataset(np.concatenate([p.events for p in parts]), np.array([0, 30, 75, 87]),
                        np.array([1, 0, 1]), None, (16, 12, 2), ("slow", "fast"))
    back = F.load_dataset(path)
    assert len(back) == 3
    assert np.array_equal(back.events, ds.events)
    assert back.offsets.tolist() == [0, 30, 75, 87]
    assert back.split.tolist() == [0, 0, 1]
    assert back.classes == ("slow", "fast")
    assert back.params == {"name": "toy", "seed": 7, "speeds": [1.0, 2.0]}
    for i, p in enumerate(parts):
        got = F.load_events(path, index=i)
        assert np.array_equal(got.events, p.events)
        assert got.label == ds.labels[i] and got.class_name == ds.classes[ds.labels[i]]
        assert got.sensor_size == (16, 12, 2)
    # readable with NumPy alone
    with np.load(path) as z:
        assert z["events"].dtype == E.VISION_DTYPE and z["offsets"].size == 4
    res = run_info(path, "--index", 1)
    assert res.exit_code == 0, res.output
    assert "events         45" in res.stdout and "label          0 (slow)" in res.stdout


def test_real_shd_layout_multi_sample(tmp_path):
    """A file in the layout of the SHD release: float seconds, uint16 units, extra/keys."""
    path = tmp_path / "shd_like.h5"
    times = [np.array([0.0001, 0.0012345, 0.5], np.float32), np.array([0.25, 0.25, 0.3])]
    units = [np.array([3, 699, 10], np.uint16), np.array([1, 2, 1], np.uint16)]
    with h5py.File(path, "w") as f:
        dt = f.create_dataset("spikes/times", (2,), h5py.vlen_dtype(np.float32))
        du = f.create_dataset("spikes/units", (2,), h5py.vlen_dtype(np.uint16))
        for i in range(2):
            dt[i], du[i] = times[i], units[i]
        f["labels"] = np.array([4, 1], np.uint16)
        f["extra/keys"] = np.array([b"zero", b"one", b"two", b"three", b"four"])
    s = F.load_events(path, index=0)
    assert s.events["t"].tolist() == np.rint(times[0].astype(np.float64) * 1e6).tolist()
    assert s.events["x"].tolist() == [3, 699, 10] and np.all(s.events["p"] == 1)
    assert s.sensor_size == (700, 1, 1)     # SHD/SSC have 700 channels
    assert (s.label, s.class_name) == (4, "four")
    with pytest.raises(EventFileError, match="--index"):
        F.load_events(path)
    t, c, n = E.to_channels(F.load_events(path, index=1))
    assert n == 700 and c.tolist() == [1, 2, 1]


def test_sort_flag_sorts_stably(tmp_path):
    path = tmp_path / "unsorted.csv"
    path.write_text("t,x,p\n50,1,1\n10,2,1\n50,0,1\n10,3,1\n")
    s = F.load_events(path, sort=True)
    assert s.events["t"].tolist() == [10, 10, 50, 50]
    assert s.events["x"].tolist() == [2, 3, 1, 0]    # ties keep file order
    assert run_info(path, "--sort").exit_code == 0


def test_dtype_coercion_from_wider_ints(tmp_path):
    ev = np.zeros(3, [("t", "<u8"), ("x", "<i8"), ("y", "<i4"), ("p", "<i8")])
    ev["t"] = [1, 2, 3]
    ev["x"] = [0, 5, 2]
    ev["p"] = [1, 0, 1]
    np.save(tmp_path / "wide.npy", ev)
    s = F.load_events(tmp_path / "wide.npy")
    assert s.events.dtype == E.VISION_DTYPE and s.events["x"].tolist() == [0, 5, 2]


# --------------------------------------------------------------------------- validation

def _npz(events, **extra):
    def write(path):
        np.savez(path, events=events, **extra)
    return write


def _vision(t, x=None, y=None, p=None):
    n = len(t)
    ev = np.zeros(n, E.VISION_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x or [0] * n, y or [0] * n, p or [1] * n
    return ev


def _text(s):
    def write(path):
        path.write_text(s)
    return write


def _npy(arr):
    def write(path):
        np.save(path, arr)
    return write


def _truncated_npz(path):
    ev = vision_sample(500).events
    np.savez(path, events=ev, sensor_size=np.array([16, 12, 2]))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _h5(times, units, with_units=True):
    def write(path):
        with h5py.File(path, "w") as f:
            t = f.create_dataset("spikes/times", (1,), h5py.vlen_dtype(np.float64))
            t[0] = np.asarray(times, float)
            if with_units:
                u = f.create_dataset("spikes/units", (1,), h5py.vlen_dtype(np.uint16))
                u[0] = np.asarray(units, np.uint16)
    return write


def _dataset(path):
    ev = _vision([0, 1, 2, 3])
    np.savez(path, events=ev, offsets=np.array([0, 2, 4]), labels=np.array([0, 1]),
             sensor_size=np.array([4, 4, 2]))


def _zero_events(path):
    np.savez(path, events=np.zeros(0, E.VISION_DTYPE))


BAD_FILES = [
    # (id, file name, writer, substrings the error line must contain)
    ("unsorted", "u.npz", _npz(_vision([0, 130, 120])),
     ["field 't'", "not sorted at index 2 (t=120 < 130)", "--sort"]),
    ("negative-t", "neg.csv", _text("t,x,y,p\n0,0,0,1\n-5,0,0,1\n"),
     ["field 't'", "negative at index 1"]),
    ("nan-t", "nan.csv", _text("t,x,y,p\n0,0,0,1\n5,0,0,1\nnan,1,1,0\n"),
     ["field 't'", "NaN at index 2"]),
    ("overflow-t-csv", "big.csv", _text("t,x,p\n0,0,1\n1e30,0,1\n"),
     ["field 't'", "index 1", "int64"]),
    ("overflow-t-h5", "big.h5", _h5([0.0, 1e20], [0, 1]), ["field 't'", "index 1", "int64"]),
    ("nan-t-h5", "nan.h5", _h5([0.0, float("nan")], [0, 1]), ["field 't'", "NaN at index 1"]),
    ("fraction-t", "frac.csv", _text("t,x,y,p\n10.5,0,0,1\n"),
     ["field 't'", "not an integer at index 0"]),
    ("x-outside", "x.npz", _npz(_vision([0, 1, 2], x=[0, 4, 1]), sensor_size=np.array([4, 4, 2])),
     ["field 'x'", "index 1", "0 <= x < 4"]),
    ("y-negative", "y.npy", _npy(_vision([0, 1], y=[0, -1])), ["field 'y'", "-1 at index 1"]),
    ("x-fraction", "xf.csv", _text("t,x,p\n0,1.5,1\n"), ["field 'x'", "not an integer"]),
    ("p-not-binary", "p.csv", _text("t,x,y,p\n0,0,0,1\n1,0,0,2\n"),
     ["field 'p'", "value 2 at index 1"]),
    ("missing-column", "m.csv", _text("t,x,y\n0,0,0\n"), ["field 'p'", "missing"]),
    ("unknown-field", "q.npy",
     _npy(np.zeros(2, [("t", "<i8"), ("x", "<i2"), ("q", "<i2"), ("p", "i1")])),
     ["field 'q'", "unknown"]),
    ("empty-csv", "e.csv", _text("t,x,y,p\n"), ["field 't'", "no events"]),
    ("empty-npz-events", "e.npz", _zero_events, ["field 't'", "no events"]),
    ("zero-bytes", "zero.npz", _text(""), ["empty file (0 bytes)"]),
    ("truncated-npz", "trunc.npz", _truncated_npz, ["not a readable .npz", "re-create"]),
    ("h5-missing-units", "nounits.h5", _h5([0.0], [0], with_units=False),
     ["field 'spikes/units'", "missing"]),
    ("h5-garbage", "junk.h5", _text("this is not an HDF5 file\n" * 20), ["not a readable HDF5"]),
    ("csv-not-number", "nn.csv", _text("t,x,p\n0,abc,1\n"),
     ["field 'x'", "'abc' at index 0 is not a number"]),
    ("csv-ragged", "rag.csv", _text("t,x,y,p\n0,0,0,1\n1,0,0\n"),
     ["field 'p'", "event 1 has 3 values"]),
    ("csv-no-header", "nh.csv", _text("0,0,0,1\n"), ["no header line"]),
    ("npz-no-events-key", "k.npz", lambda p: np.savez(p, t=np.arange(3)),
     ["field 'events'", "missing"]),
    ("npy-not-structured", "plain.npy", _npy(np.zeros((3, 4))),
     ["field 'events'", "not a structured array"]),
    ("bad-sensor", "s.npz", _npz(_vision([0]), sensor_size=np.array([0, 4, 2])),
     ["field 'sensor_size'", "out of range"]),
    ("dataset-no-index", "ds.npz", _dataset, ["2 samples", "--index"]),
    ("unknown-extension", "events.txt", _text("t,x,p\n0,0,1\n"), ["unknown extension '.txt'"]),
]


@pytest.mark.parametrize("name,writer,needles", [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_malformed_file_gives_one_error_line(tmp_path, name, writer, needles):
    path = tmp_path / name
    writer(path)
    with pytest.raises(EventFileError) as info:
        F.load_events(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and "fix:" in msg
    for needle in needles:
        assert needle in msg
    res = run_info(path)
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: {msg}"]
    assert res.stdout == ""


def test_directory_missing_file_and_index_errors(tmp_path):
    (tmp_path / "d.npz").mkdir()
    cases = [((tmp_path / "d.npz",), "is a directory"),
             ((tmp_path / "nope.npz",), "no such file")]
    _dataset(tmp_path / "ds.npz")
    cases.append(((tmp_path / "ds.npz", "--index", "5"), "sample index 5 out of range"))
    F.save_events(tmp_path / "one.npz", vision_sample(10))
    cases.append(((tmp_path / "one.npz", "--index", "1"), "out of range (file holds 1 sample)"))
    for args, needle in cases:
        res = run_info(*args)
        assert res.exit_code == 1
        (line,) = res.stderr.strip().splitlines()
        assert str(args[0]) in line and needle in line


def test_save_rejects_invalid_sample_and_writes_nothing(tmp_path):
    s = vision_sample(20)
    bad = s.events.copy()
    bad["t"][5] = -1
    with pytest.raises(EventFileError, match=r"field 't': negative at index 5"):
        F.save_events(tmp_path / "bad.npz", E.EventSample(bad, s.sensor_size))
    outside = s.events.copy()
    outside["y"][3] = 12
    with pytest.raises(EventFileError, match=r"field 'y': 12 at index 3"):
        F.save_events(tmp_path / "bad.csv", E.EventSample(outside, s.sensor_size))
    with pytest.raises(EventFileError, match="unknown extension"):
        F.save_events(tmp_path / "bad.mat", s)
    assert list(tmp_path.iterdir()) == []


def test_info_prints_hand_counted_summary(tmp_path):
    path = tmp_path / "small.csv"
    # 4 events over 2 ms on a 3x2 sensor; channels (p,y,x): (1,0,0) (0,1,2) (1,0,0) (1,1,1)
    path.write_text("# sensor_size=3,2,2\n# label=1\nt,x,y,p\n"
                    "1000,0,0,1\n1500,2,1,0\n2000,0,0,1\n3000,1,1,1\n")
    res = run_info(path)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "events         4" in out
    assert "2.000 ms" in out
    assert "3 of 12" in out                  # 3 distinct channels of 3*2*2
    assert "2000.0 ev/s" in out              # 4 events / 2 ms
    assert "ON 3 (75.0 %), OFF 1" in out
    assert "label          1" in out


# --------------------------------------------------------------------------- transforms

def _sample(rows, sensor, audio=False):
    dtype = E.AUDIO_DTYPE if audio else E.VISION_DTYPE
    ev = np.array([tuple(r) for r in rows], dtype)
    return E.EventSample(ev, sensor)


def test_downsample_pools_pixels_into_hand_computed_channels():
    s = _sample([(0, 3, 1, 1), (5, 0, 2, 0), (9, 2, 3, 1)], (4, 4, 2))
    for tr in (E.Downsample(factor=2), E.Downsample(target=(2, 2))):
        d = tr(s)
        assert d.sensor_size == (2, 2, 2)
        assert d.events[["x", "y", "p"]].tolist() == [(1, 0, 1), (0, 1, 0), (1, 1, 1)]
        t, c, n = E.to_channels(d)
        # c = p*H*W + y*W + x with W = H = 2: 4+0+1, 0+2+0, 4+2+1
        assert c.tolist() == [5, 2, 7] and n == 8 and t.tolist() == [0, 5, 9]
    odd = E.Downsample(target=(2, 2))(_sample([(0, 4, 2, 0)], (5, 3, 2)))
    assert odd.sensor_size == (2, 2, 2) and odd.events[["x", "y"]].tolist() == [(1, 1)]
    with pytest.raises(InputError):
        E.Downsample(target=(8, 8))(s)
    with pytest.raises(InputError):
        E.Downsample(factor=2, target=(2, 2))


def test_channels_polarity_and_audio():
    s = _sample([(0, 2, 1, 1), (1, 1, 0, 0)], (3, 2, 2))
    assert E.to_channels(s)[1].tolist() == [1 * 6 + 1 * 3 + 2, 0 + 0 + 1]
    merged = E.MergePolarity()(s)
    t, c, n = E.to_channels(merged)
    assert merged.sensor_size == (3, 2, 1) and c.tolist() == [5, 1] and n == 6
    assert E.to_channels(s, split_polarity=False)[1:] == (pytest.approx([5, 1]), 6)
    a = _sample([(0, 4, 1), (2, 7, 0)], (8, 1, 2), audio=True)
    assert E.to_channels(a)[1].tolist() == [8 + 4, 7] and E.to_channels(a)[2] == 16
    shd = _sample([(0, 4, 1), (2, 7, 1)], (8, 1, 1), audio=True)
    assert E.to_channels(shd)[1].tolist() == [4, 7] and E.to_channels(shd)[2] == 8
    pooled = E.Downsample(factor=4)(shd)
    assert pooled.sensor_size == (2, 1, 1) and pooled.events["x"].tolist() == [1, 1]


def _refractory_reference(ev, dt):
    last, keep = {}, []
    for e in ev:
        key = tuple(e[f] for f in ev.dtype.names if f != "t")
        if key not in last or e["t"] - last[key] >= dt:
            last[key] = e["t"]
            keep.append(True)
        else:
            keep.append(False)
    return ev[np.array(keep, bool)]


def test_refractory_per_channel():
    rows = [(0, 0, 0, 1), (1, 1, 0, 1), (2, 1, 0, 1), (3, 0, 0, 1), (4, 0, 0, 0),
            (6, 0, 0, 1), (9, 0, 0, 1), (12, 0, 0, 1)]
    out = E.Refractory(5)(_sample(rows, (2, 1, 2)))
    # pixel (0,0,ON): 0 kept, 3 dropped, 6 kept (6-0>=5), 9 dropped, 12 kept (12-6>=5);
    # pixel (1,0,ON): 1 kept, 2 dropped; pixel (0,0,OFF): 4 kept
    assert out.events["t"].tolist() == [0, 1, 4, 6, 12]
    rng = np.random.default_rng(5)
    s = vision_sample(3000, seed=5)
    ev = s.events.copy()
    ev["x"] = rng.integers(0, 3, ev.size)   # few channels: many refractory conflicts
    ev["y"] = rng.integers(0, 2, ev.size)
    s = E.EventSample(ev, (16, 12, 2))
    for dt in (1, 40, 300):
        got = E.Refractory(dt)(s).events
        assert np.array_equal(got, _refractory_reference(ev, dt))


def test_time_scale_crop_compose():
    s = _sample([(0, 0, 1), (14, 1, 1), (16, 2, 1), (100, 3, 1)], (4, 1, 1), audio=True)
    assert E.TimeScale(0.1)(s).events["t"].tolist() == [0, 1, 2, 10]
    assert E.TimeScale(3.0)(s).events["t"].dtype == np.int64
    with pytest.raises(InputError, match="factor"):
        E.TimeScale(0)
    c = E.CropTime(14, 100)(s)
    assert c.events["t"].tolist() == [14, 16]
    assert E.CropTime(14, 100, rebase=True)(s).events["t"].tolist() == [0, 2]
    assert s.events["t"].tolist() == [0, 14, 16, 100]     # inputs are not modified
    both = E.Compose([E.CropTime(10), E.TimeScale(2.0)])(s)
    assert both.events["t"].tolist() == [28, 32, 200]


# --------------------------------------------------------------------------- schedule

US = 1e-6


def test_schedule_merge_modes_hand_derived():
    # t_p = 100 us, t_rise = 1 us, gap = 10 us; occupied = [t_on - 0.5us, t_on + w + 0.5us]
    # with t_on = t + 1 us. Events 0, 50, 150, 400 us on row 0.
    t = np.array([0, 50, 150, 400])
    c = np.zeros(4, int)
    kw = dict(t_p=100 * US, t_rise=1 * US, min_gap=10 * US)
    ext = SC.make_schedule(t, c, 1, merge="extend", **kw)
    # 50 starts at 50.5 < 101.5 + 10 -> merged, end 201.5; 150.5 < 211.5 -> merged, end 301.5;
    # 400.5 - 301.5 = 99 >= 10 -> new pulse
    assert ext.t_on == pytest.approx([1 * US, 401 * US], rel=1e-12)
    assert ext.width == pytest.approx([300 * US, 100 * US], rel=1e-12)
    assert ext.amplitude.tolist() == [1, 1] and (ext.n_merged, ext.n_dropped) == (2, 0)
    cnt = SC.make_schedule(t, c, 1, merge="count", **kw)
    # width stays 100 us: 150.5 - 101.5 = 49 >= 10 -> a new pulse
    assert cnt.t_on == pytest.approx([1 * US, 151 * US, 401 * US], rel=1e-12)
    assert cnt.amplitude.tolist() == [2, 1, 1] and cnt.n_merged == 1
    drp = SC.make_schedule(t, c, 1, merge="drop", **kw)
    assert drp.t_on == pytest.approx([1 * US, 151 * US, 401 * US], rel=1e-12)
    assert drp.amplitude.tolist() == [1, 1, 1] and (drp.n_merged, drp.n_dropped) == (0, 1)
    for s in (ext, cnt, drp):
        check_schedule(s)
        assert s.duration == pytest.approx(401 * US + 100 * US + 0.5 * US + 100 * US)


def test_schedule_simultaneous_rows_time_scale_and_t_end():
    s = SC.make_schedule([100, 100, 100], [2, 0, 1], 3, time_scale=2.0, t_end=10_000)
    assert s.row.tolist() == [0, 1, 2]              # ties sorted by row
    assert s.t_on == pytest.approx([200 * US + 1 * US] * 3, rel=1e-12)
    assert s.amplitude.tolist() == [1, 1, 1] and s.n_merged == 0
    assert s.duration == pytest.approx(20_000 * US)  # t_end scaled dominates
    r0 = s.for_row(1)
    assert r0[0].tolist() == [s.t_on[1]]
    empty = SC.make_schedule([], [], 4)
    assert empty.n_pulses == 0 and empty.duration > 0


@pytest.mark.parametrize("kwargs,field", [
    (dict(t_p=0.0), "t_p"), (dict(t_rise=200e-6), "t_rise"), (dict(min_gap=0.0), "min_gap"),
    (dict(merge="sum"), "merge"), (dict(time_scale=-1.0), "time_scale"),
])
def test_schedule_rejects_bad_arguments(kwargs, field):
    with pytest.raises(InputError) as info:
        SC.make_schedule([0, 1], [0, 1], 2, **kwargs)
    assert f"field '{field}'" in str(info.value) and "\n" not in str(info.value)


def test_schedule_rejects_channel_outside_rows():
    with pytest.raises(InputError, match="field 'c': channel 5 at index 1"):
        SC.make_schedule([0, 1], [0, 5], 4)


def _schedule_reference(t_us, c, t_p, t_rise, gap, merge, scale):
    """Plain reading of the rules: walk events in global time order, one open pulse per row."""
    half = t_rise / 2
    open_, done, dropped = {}, [], 0
    for i in np.lexsort((c, t_us)):
        r, on = int(c[i]), t_us[i] * 1e-6 * scale + t_rise
        if r in open_:
            head, m = open_[r]
            width = m * t_p if merge == "extend" else t_p
            if (on - half) - (head + width + half) < gap:
                if merge == "drop":
                    dropped += 1
                else:
                    open_[r] = (head, m + 1)
                continue
            done.append((r, head, m))
        open_[r] = (on, 1)
    done += [(r, head, m) for r, (head, m) in open_.items()]
    done.sort(key=lambda p: (p[1], p[0]))
    return done, dropped


@st.composite
def streams(draw):
    n = draw(st.integers(0, 60))
    t = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    c = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return dict(t_us=np.array(t, np.int64), c=np.array(c, np.int64),
                t_p=draw(st.sampled_from([20e-6, 100e-6, 150e-6])),
                t_rise=draw(st.sampled_from([0.5e-6, 1e-6, 5e-6])),
                min_gap=draw(st.sampled_from([1e-6, 10e-6, 33e-6])),
                merge=draw(st.sampled_from(SC.MERGE_MODES)),
                time_scale=draw(st.sampled_from([1.0, 0.25, 3.0])))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(streams())
def test_schedule_properties_on_generated_streams(k):
    s = SC.make_schedule(k["t_us"], k["c"], 4, t_p=k["t_p"], t_rise=k["t_rise"],
                        min_gap=k["min_gap"], merge=k["merge"], time_scale=k["time_scale"])
    check_schedule(s)
    ref, dropped = _schedule_reference(k["t_us"], k["c"], k["t_p"], k["t_rise"], k["min_gap"],
                                       k["merge"], k["time_scale"])
    assert s.n_dropped == dropped
    assert s.row.tolist() == [r for r, _, _ in ref]
    assert s.t_on.tolist() == [h for _, h, _ in ref]
    m = np.array([m for _, _, m in ref], float)
    if k["merge"] == "extend":
        assert np.array_equal(s.width, m * k["t_p"]) and np.all(s.amplitude == 1)
    else:
        assert np.all(s.width == k["t_p"]) and np.array_equal(s.amplitude, m)
    # every pulse starts at one of its row's events
    on_events = set(zip(k["c"].tolist(),
                        (k["t_us"] * 1e-6 * k["time_scale"] + k["t_rise"]).tolist()))
    assert set(zip(s.row.tolist(), s.t_on.tolist())) <= on_events


@pytest.mark.parametrize("merge", SC.MERGE_MODES)
def test_schedule_100k_events(merge):
    rng = np.random.default_rng(11)
    t = np.sort(rng.integers(0, 5_000_000, 100_000))
    c = rng.integers(0, 128, t.size)
    s = SC.make_schedule(t, c, 128, merge=merge)
    check_schedule(s)
    assert s.n_events == 100_000 and s.n_pulses > 90_000
