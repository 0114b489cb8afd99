"""ngspice-tiled (row-tile crossbar decks + one state deck) vs the monolithic ngspice deck.

Needs ngspice (~15 s). Mid-size case: 64 rows x 8 states, 256 events, tile_rows = 16,
r_wire = 0 (virtual-ground columns: rows superpose, the decomposition is exact). Measured
state NRMSE tiled vs monolithic 1e-6 .. 1e-5 (1T1R; both are ngspice's own time-step error
away from the twin), tolerance 1e-3; vs the twin 5e-3. A window size small enough to cut the
state deck into several time windows is forced in one case.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cimspice import pipeline as P
from cimspice.config import Config, check_config
from cimspice.datasets import audio_stream
from cimspice.engines import tiled as tiled_engine
from cimspice.engines.registry import get_engine
from cimspice.engines.tiled import drop_flat, tile_ranges, windows
from cimspice.errors import ConfigError


def _prep(access: str, rows: int = 64, per_row: int = 4):
    cfg = check_config(Config().replace(ssm={"n_states": 8}, events={"t_end_us": 30000},
                                        circuit={"tile_rows": 16, "access": access}))
    return P.build(audio_stream(rows, rows * per_row, 30000, 1, source="tiled test"), cfg)


@pytest.mark.parametrize("access", ["nmos", "none"])
def test_tiled_matches_monolithic(access, tmp_path, monkeypatch):
    if access == "none":
        monkeypatch.setattr(tiled_engine, "WINDOW_POINTS", 100)
    prep = _prep(access)
    tiled = P.simulate(prep, engine="ngspice-tiled", workdir=tmp_path)
    mono = P.simulate(prep, engine="ngspice")
    twin = P.simulate(prep, engine="twin")
    print(access, "tiled vs mono", P.nrmse(tiled.circuit, mono.circuit),
          "vs twin", P.nrmse(tiled.circuit, twin.circuit))
    assert P.nrmse(tiled.circuit, mono.circuit) <= 1e-3
    assert P.nrmse(tiled.circuit, twin.circuit) <= 5e-3
    assert tiled.engine == "ngspice-tiled" and tiled.ngspice_version
    # the decks are kept and readable: 4 tiles and the state deck (one or more time windows)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if n.startswith("tile")] == ["tile0", "tile1", "tile2", "tile3"]
    assert any(n.startswith("state") for n in names)
    assert "Vrow15 row15 0 PWL(" in (tmp_path / "tile0" / "deck.cir").read_text()


def test_tiled_refuses_tiles_with_wires():
    """Tiles with their own column wires are another circuit: refused by the config for every
    engine, and by the engine for a config that bypassed the config's checks."""
    with pytest.raises(ConfigError, match=r"\[circuit\] tile_rows: tiles with their own column") as e:
        Config().replace(circuit={"tile_rows": 16, "r_wire": 2.0})
    assert "\n" not in str(e.value) and "r_wire = 0" in str(e.value)
    eng = get_engine("ngspice-tiled")
    raw = dataclasses.replace(Config(), circuit=dataclasses.replace(Config().circuit, tile_rows=16,
                                                                   r_wire=2.0))
    with pytest.raises(ConfigError, match=r"tile_rows = 16 with r_wire"):
        eng.check(raw)
    eng.check(Config().replace(circuit={"tile_rows": 0, "r_wire": 2.0}))   # one wired tile: exact
    with pytest.raises(ConfigError, match=r"\[circuit\] tile_rows"):
        check_config(Config().replace(circuit={"tile_rows": -1}))


def test_tile_ranges_windows_and_point_thinning():
    assert windows(11, 400) == [(0, 10)]
    assert windows(1001, 400) == [(0, 333), (333, 667), (667, 1000)]
    assert tile_ranges(10, 0) == [(0, 10)]
    assert tile_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tile_ranges(3, 16) == [(0, 3)]
    v = np.array([[0.0], [0.0], [0.0], [1.0], [1.0], [1.0], [0.5], [0.0], [-0.5], [0.3]])
    assert drop_flat(v).tolist() == [True, False, True, True, False, True, False, False, True, True]


def test_one_wired_tile_matches_monolithic():
    """tile_rows = 0 with r_wire > 0: the whole wired array in one crossbar deck (exact)."""
    cfg = check_config(Config().replace(ssm={"n_states": 4}, events={"t_end_us": 20000},
                                        circuit={"r_wire": 5.0}))
    prep = P.build(audio_stream(12, 36, 20000, 2, source="tiled wired"), cfg)
    tiled_run = P.simulate(prep, engine="ngspice-tiled")
    mono = P.simulate(prep, engine="ngspice")
    assert P.nrmse(tiled_run.circuit, mono.circuit) <= 1e-3
