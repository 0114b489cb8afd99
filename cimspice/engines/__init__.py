"""Engines: the simulators that turn a prepared circuit into sampled device states
(``base``: the interface; ``registry``: by name; ngspice and VACASK with their deck writers)."""
