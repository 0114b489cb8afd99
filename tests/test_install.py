"""`pip install .` (not editable) gives a working package: subpackages, device models and data
are shipped, `cimspice doctor` and one `simulate` run from the installed copy.

The venv sees the machine's site-packages for the heavy dependencies (numpy, scipy, h5py, ...)
and gets cimspice itself with ``--no-deps`` from a copy of the source tree, so the test checks
packaging, not PyPI. The installed copy must shadow the source tree: the test asserts where
``cimspice`` is imported from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "bad_inputs" / "good" / "audio8.npz"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    d = tmp_path_factory.mktemp("install")
    src = d / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # the package directory as committed (device_models/ is a real directory inside it)
    shutil.copytree(ROOT / "cimspice", src / "cimspice",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = d / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)],
                   check=True, timeout=300)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q",
                          "--no-deps", str(src)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return env_dir


def _run(venv: Path, cwd: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CIMSPICE_DEVICE_DIR")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_installed_package_runs_doctor_and_simulate(venv, tmp_path):
    py = str(venv / "bin" / "python")
    where = _run(venv, tmp_path, py, "-c", "import cimspice; print(cimspice.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv)), where.stdout   # not the source tree
    models = _run(venv, tmp_path, py, "-c",
                  "from cimspice.hardware.devices import device_lib_text, va_path; "
                  "print(len(device_lib_text()), va_path())")
    assert models.returncode == 0, models.stderr
    assert str(venv) in models.stdout
    doctor = _run(venv, tmp_path, str(venv / "bin" / "cimspice"), "doctor")
    assert doctor.returncode == 0 and "ngspice_version" in doctor.stdout, doctor.stderr
    sim = _run(venv, tmp_path, str(venv / "bin" / "cimspice"), "simulate", str(GOOD), "-o", "r.h5")
    assert sim.returncode == 0, sim.stderr
    assert "state NRMSE" in sim.stdout and (tmp_path / "r.h5").is_file()
    digits = _run(venv, tmp_path, str(venv / "bin" / "cimspice"), "datasets", "make", "dvs-digits",
                  "-o", "d.npz", "--n", "4")
    assert digits.returncode == 0, digits.stderr          # the bundled digits data is shipped
