"""cimspice: circuit-level SPICE co-simulation of compute-in-memory state-space models.

The data flow, one module per stage: events -> ssm (ideal) / mapping -> netlist -> spice ->
results -> readout. See README.md.
"""

__version__ = "0.1.0"
