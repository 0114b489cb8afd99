"""Validation tiers 3 and 5 (docs/design.md, "Validation"): golden transients and the second simulator.

Each validation *case* is a small circuit on a fixed, seeded input, written as an ngspice deck
(``netlists/validation/<case>.cir``, runs by hand with ``ngspice -b``) and as a VACASK netlist
(``<case>.sim``; none for the read-pulse cases, which the VACASK writer cannot express:
``Case.no_vacask`` says why). Its *golden* ``<case>.npz`` holds the ngspice traces that the
deck produced (time, signals, ngspice version, options, command).

``cimspice validate`` regenerates every deck from the code, runs it in ngspice and in VACASK and
checks, per signal:

1. ngspice against the golden with the Xyce regression criterion (:func:`xyce_norm`):
   interpolate the golden onto the test's time points (a signal sensed at the read instants:
   both onto those), ``norm = sqrt(mean(((ref - test) / (reltol*|ref| + abstol))**2))``, pass
   if ``norm <= 1``;
2. VACASK against ngspice: normalised RMS difference on a uniform time grid
   (:func:`nrms`), pass if ``<= 1 %`` (a prototype device pair agreed within 0.6 %).

Modules: ``cases`` (the circuits and their tolerances), ``goldens`` (norms, golden files),
``run`` (running both simulators, comparing, the table). Python API::

    report = run_validation()                 # all cases, both simulators
    print(format_table(report)); report.passed
    run_validation(update=True)               # rewrite the goldens (atomic, all-or-nothing)
    res = cimspice.simulate(prep, engine="vacask")       # any sample in VACASK

The golden directory is ``netlists/validation/`` of the source tree, or ``$CIMSPICE_VALIDATION_DIR``
or the ``golden_dir`` argument.
"""

from .cases import CASES, RELTOL, TOL_I, TOL_S, TOL_W, Case, Signal, Tolerance, build_case
from .goldens import (DEFAULT_GOLDEN_DIR, GOLDEN_ENV, Golden, Traces, golden_dir, golden_paths, load_golden,
                      nrms, write_golden, xyce_norm)
from .run import VACASK_LIMIT, Report, Row, format_table, run_ngspice_case, run_vacask_case, run_validation

__all__ = ["CASES", "RELTOL", "TOL_I", "TOL_S", "TOL_W", "Case", "Signal", "Tolerance", "build_case",
           "DEFAULT_GOLDEN_DIR", "GOLDEN_ENV", "Golden", "golden_dir", "golden_paths", "load_golden",
           "nrms", "write_golden", "xyce_norm", "VACASK_LIMIT", "Report", "Row", "Traces",
           "format_table", "run_ngspice_case", "run_vacask_case", "run_validation"]
