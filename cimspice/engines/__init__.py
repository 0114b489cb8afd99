"""Engines: the simulators that turn a prepared circuit into sampled device states.

``text`` holds the rules every deck writer follows (safe comment text, SPICE numbers).
"""
