"""Issue 15 part 1: SHD/SSC-layout HDF5 files as datasets of `evaluate` (one file split by the
split rule, or a training and a test file), and the audio `[events] channel_pool` key.

The SHD-layout files are written here (ragged `spikes/times` in s, `spikes/units`, `labels`,
`extra/keys`): 24 samples, 16 channels, labels 0..3, short streams with few spikes.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from cimspice.config import config_from_toml
from cimspice.datasets import split_rule
from cimspice.errors import CimspiceError, EventFileError
from cimspice.io.event_files import load_dataset, load_events, load_train_test
from cimspice.pipeline import build, calibration_for_file
from cimspice.schedule import input_events, n_input_rows
from cli_helpers import SMALL_LAYER_TOML, cli, one_line_error

TOML = SMALL_LAYER_TOML


def write_shd(path, n=24, channels=16, seed=0, *, n_spikes=40, duration=0.05, labels=None,
              keys=True, pool=1):
    """An SHD-layout file; with ``pool`` > 1 the same spikes with units // pool (by hand)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4 if labels is None else labels
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), h5py.vlen_dtype(np.uint16))
        for i in range(n):
            lab = i % 4
            # class-dependent channel band, so that a readout has something to learn
            u = (rng.integers(0, channels // 2, n_spikes) + lab * channels // 8) % channels
            t = np.sort(rng.uniform(0, duration, n_spikes)).astype(np.float32)
            times[i] = t
            units[i] = (u // pool).astype(np.uint16)
        f["labels"] = np.asarray(labels, np.uint8)
        if keys:
            f["extra/keys"] = np.array([b"zero", b"one", b"two", b"three"])
        f.attrs["sensor_size"] = np.array([-(-channels // pool), 1, 1], np.int64)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("shd")
    (d / "c.toml").write_text(TOML)
    return {"dir": d, "one": write_shd(d / "shd.h5"), "train": write_shd(d / "train.h5", 16, seed=1),
            "test": write_shd(d / "test.h5", 8, seed=2), "config": d / "c.toml"}


def test_h5_dataset_matches_single_sample_reader(files, tmp_path):
    ds = load_dataset(files["one"])
    assert len(ds) == 24 and ds.sensor_size == (16, 1, 1) and ds.split is None
    assert ds.classes == ("zero", "one", "two", "three")
    assert list(ds.labels) == [i % 4 for i in range(24)]
    for i in (0, 7, 23):
        a, b = ds.sample(i), load_events(files["one"], index=i)
        assert np.array_equal(a.events, b.events) and a.sensor_size == b.sensor_size
        assert a.label == b.label and a.class_name == b.class_name
    # no sensor_size attribute: a file with `extra` is a real SHD/SSC file (700 channels)
    with h5py.File(tmp_path / "real.h5", "w") as f, h5py.File(files["one"], "r") as g:
        for key in ("spikes", "labels", "extra"):
            g.copy(key, f)
    assert load_dataset(tmp_path / "real.h5").sensor_size == (700, 1, 1)
    assert load_events(tmp_path / "real.h5", index=3).sensor_size == (700, 1, 1)


def test_evaluate_one_h5_file_twin(files, dask_scheduler):
    out = files["dir"] / "run1"
    res = cli("evaluate", "--dataset", files["one"], "--config", files["config"], "--engine", "twin",
              "--circuit-train", "--scheduler", dask_scheduler["address"], "--no-plots", "-o", out)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    split = split_rule(np.arange(24) % 4)
    assert manifest["selected"]["train"] == list(np.flatnonzero(split == 0))
    assert manifest["selected"]["test"] == list(np.flatnonzero(split == 1))
    want = {"train": int((split == 0).sum()), "test": int((split == 1).sum())}
    assert report["selected"] == want == {"train": 16, "test": 8}
    assert report["failures"] == []
    assert report["accuracy"]["retrained"]["n_test"] == 8


def test_evaluate_train_and_test_files(files, dask_scheduler):
    out = files["dir"] / "run2"
    res = cli("evaluate", "--dataset", files["train"], "--test-dataset", files["test"],
              "--config", files["config"], "--engine", "twin", "--scheduler", dask_scheduler["address"],
              "--no-plots", "-o", out)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert report["selected"] == {"train": 16, "test": 8}
    assert manifest["selected"]["test"] == list(range(16, 24))
    assert manifest["dataset"]["test_path"].endswith("test.h5")
    # the digest covers both files: another test file is another dataset
    other = write_shd(files["dir"] / "test_b.h5", 8, seed=3)
    res = cli("evaluate", "--dataset", files["train"], "--test-dataset", other,
              "--config", files["config"], "--engine", "twin", "--jobs", 1, "--no-plots", "-o", out)
    assert "made with another dataset" in one_line_error(res)


def test_h5_calibrates_on_its_training_split(files):
    cfg = config_from_toml(TOML)
    schedules, record = calibration_for_file(files["one"], cfg)
    train = np.flatnonzero(split_rule(np.arange(24) % 4) == 0)
    assert record["used"] == list(train[:4])
    res = cli("simulate", files["one"], "--index", 1, "--config", files["config"], "--engine", "twin",
              "-o", files["dir"] / "s.h5")
    assert res.exit_code == 0, res.output


def test_evaluate_h5_ngspice(tmp_path, dask_scheduler):
    data = write_shd(tmp_path / "few.h5", 8, channels=8, n_spikes=12, duration=0.03)
    (tmp_path / "c.toml").write_text(TOML)
    res = cli("evaluate", "--dataset", data, "--config", tmp_path / "c.toml", "--engine", "ngspice",
              "--n-train", 4, "--n-test", 2, "--scheduler", dask_scheduler["address"], "--no-plots",
              "-o", tmp_path / "run")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["failures"] == [] and report["selected"] == {"train": 4, "test": 2}
    assert report["engine"] == "ngspice" and report["versions"]["ngspice"]
    assert report["n_samples"]["simulated"] == 2 and report["nrmse"]["max"] < 0.005


def test_channel_pool_equals_pooling_by_hand(tmp_path):
    pooled = write_shd(tmp_path / "p16.h5", 4, seed=5)
    by_hand = write_shd(tmp_path / "p4.h5", 4, seed=5, pool=4)
    cfg_pool = config_from_toml(TOML + "[events]\nchannel_pool = 4\n")
    cfg_hand = config_from_toml(TOML)
    assert n_input_rows((16, 1, 1), cfg_pool) == 4 == n_input_rows((4, 1, 1), cfg_hand)
    assert n_input_rows((700, 1, 1), config_from_toml("[events]\nchannel_pool = 10\n")) == 70
    for i in range(4):
        a, b = load_events(pooled, index=i), load_events(by_hand, index=i)
        ta, ca, na = input_events(a, cfg_pool)
        tb, cb, nb = input_events(b, cfg_hand)
        assert na == nb == 4 and np.array_equal(ta, tb) and np.array_equal(ca, cb)
        pa, pb = build(a, cfg_pool), build(b, cfg_hand)
        np.testing.assert_array_equal(pa.ideal, pb.ideal)
        np.testing.assert_array_equal(pa.software, pb.software)
        # the circuit is the same: the decks differ only in their comment lines
        deck = [[ln for ln in p.deck.splitlines() if not ln.startswith("*")] for p in (pa, pb)]
        assert deck[0] == deck[1]


def test_channel_pool_zero_is_refused():
    with pytest.raises(CimspiceError) as info:
        config_from_toml("[events]\nchannel_pool = 0\n")
    assert "[events] channel_pool" in str(info.value) and "\n" not in str(info.value)


def test_h5_dataset_errors_are_one_line(tmp_path, files):
    bad = write_shd(tmp_path / "labels.h5", 6, labels=np.arange(5) % 4)
    with pytest.raises(EventFileError, match=r"labels\.h5: field 'labels': 5 values"):
        load_dataset(bad)
    res = cli("evaluate", "--dataset", bad, "--engine", "twin", "-o", tmp_path / "r1")
    assert "field 'labels'" in one_line_error(res)
    assert not (tmp_path / "r1").exists()

    wide = write_shd(tmp_path / "wide.h5", 8, channels=32, seed=4)
    res = cli("evaluate", "--dataset", files["train"], "--test-dataset", wide, "--engine", "twin",
              "-o", tmp_path / "r2")
    err = one_line_error(res)
    assert "wide.h5" in err and "train.h5" in err and "sensor size" in err
    assert not (tmp_path / "r2").exists()
    with pytest.raises(EventFileError):
        load_train_test(files["train"], wide)

    nan = tmp_path / "nan.h5"
    write_shd(nan, 4)
    with h5py.File(nan, "r+") as f:
        t = f["spikes/times"][2].copy()
        t[3] = np.nan
        f["spikes/times"][2] = t
    with pytest.raises(EventFileError, match=r"field 'spikes/times': sample 2"):
        load_dataset(nan)

    nolabels = tmp_path / "nolabels.h5"
    write_shd(nolabels, 4)
    with h5py.File(nolabels, "r+") as f:
        del f["labels"]
    with pytest.raises(EventFileError, match="field 'labels': missing"):
        load_dataset(nolabels)
    assert load_events(nolabels, index=1).label is None     # one sample still reads
