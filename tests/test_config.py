"""Configuration: TOML round trip, defaults valid, one-line errors naming file and key."""

import pytest

from cimspice.config import Config, config_from_dict, load_config
from cimspice.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = load_config(None)
    p = tmp_path / "c.toml"
    p.write_text(cfg.to_toml())
    assert load_config(p) == cfg
    assert load_config(p).digest() == cfg.digest()


def test_partial_file_overrides_only_named_keys(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[circuit]\nr_wire = 2.5\n[ssm]\ntaus = [0.005, 0.02, 0.08]\nn_states = 6\n")
    cfg = load_config(p)
    assert cfg.circuit.r_wire == 2.5
    assert cfg.ssm.taus == (0.005, 0.02, 0.08)
    assert cfg.circuit.g_max == Config().circuit.g_max
    assert cfg.digest() != Config().digest()


@pytest.mark.parametrize("text, needle", [
    ("[circuit]\nr_wier = 1\n", "unknown key 'r_wier'"),
    ("[circut]\n", "unknown section [circut]"),
    ("[circuit]\ng_min = 'a'\n", "key 'g_min' must be a number"),
    ("[circuit]\ng_min = 2e-4\n", "g_min"),
    ("[ssm]\ntaus = [0.01, -0.02]\n", "taus"),
    ("[device]\nmode = 'cubic'\n", "mode"),
    ("[events]\nmin_gap = 0\n", "min_gap"),
    ("[sim]\nreltol = 0.5\n", "reltol"),
    ("[ssm]\nn_states = true\n", "n_states"),
    ("[circuit\n", "not valid TOML"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_replace_checks_keys():
    cfg = Config().replace(circuit={"r_wire": 1.0})
    assert cfg.circuit.r_wire == 1.0
    with pytest.raises(ConfigError):
        Config().replace(circuit={"nope": 1})
    with pytest.raises(ConfigError):
        config_from_dict({"events": {"t_rise": 1.0}})


def test_replace_validates_ranges_like_a_file():
    """Config.replace is a validation boundary too: a value a file would be refused for is
    refused here, with the same one-line message."""
    with pytest.raises(ConfigError, match=r"\[circuit\] r_wire"):
        Config().replace(circuit={"r_wire": -5})
    with pytest.raises(ConfigError, match=r"\[events\] t_rise"):
        Config().replace(events={"t_rise": 1.0})
    assert Config().replace(circuit={"r_wire": 5}).circuit.r_wire == 5.0
