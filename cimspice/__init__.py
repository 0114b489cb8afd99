"""cimspice: circuit-level SPICE co-simulation of compute-in-memory state-space models.

The data flow (docs/design.md): events -> schedule -> ssm (ideal) / hardware (mapping, circuit)
-> engines (ngspice, VACASK) -> readout. The public API is small::

    import cimspice
    sample = cimspice.load_events("bars.npz", index=0)   # events (tonic-style structured array)
    prep = cimspice.build(sample)                         # schedule, SSM, mapping, ideal states, deck
    res = cimspice.simulate(prep)                         # ngspice; res.circuit vs res.ideal, res.nrmse
    report = cimspice.evaluate("dvs-bars", "run/")        # a whole dataset: accuracy report
    summary = cimspice.sweep("audio-chirps", "sw/", sets=["circuit.levels=0,4"], seeds=2,
                             engine="twin")               # a grid x chip instances: sweep.csv
"""

__version__ = "0.1.0"

from .config import Config, load_config  # noqa: E402
from .experiments.evaluate import evaluate  # noqa: E402
from .experiments.sweep import sweep  # noqa: E402
from .io.event_files import load_events  # noqa: E402
from .pipeline import build, simulate  # noqa: E402

__all__ = ["Config", "load_config", "load_events", "build", "simulate", "evaluate", "sweep", "__version__"]
