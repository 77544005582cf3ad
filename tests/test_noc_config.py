"""NocConfig validation: one-line ConfigError messages naming the field, the rule and the value."""

import pytest

from star.spec.config import ConfigError
from star.spec.noc_config import NocConfig


def test_defaults_and_derived_widths():
    cfg = NocConfig()
    assert (cfg.rows, cfg.cols, cfg.nodes, cfg.x_bits, cfg.y_bits) == (4, 4, 16, 2, 2)
    assert (NocConfig(rows=1, cols=2).y_bits, NocConfig(rows=5, cols=8).y_bits) == (1, 3)
    assert NocConfig(rows=8, cols=8).to_dict()["rows"] == 8


@pytest.mark.parametrize("fields,message", [
    ({"rows": 0}, "rows must be in [1, 8], not 0"),
    ({"rows": 9}, "rows must be in [1, 8], not 9"),
    ({"cols": 0}, "cols must be in [1, 8], not 0"),
    ({"cols": 9}, "cols must be in [1, 8], not 9"),
    ({"rows": 1, "cols": 1}, "cols must be in [2, 8] when rows=1 (at least 2 nodes), not 1"),
    ({"flit_bits": 7}, "flit_bits must be in [8, 512], not 7"),
    ({"flit_bits": 513}, "flit_bits must be in [8, 512], not 513"),
    ({"fifo_depth": 1}, "fifo_depth must be in [2, 64], not 1"),
    ({"fifo_depth": 65}, "fifo_depth must be in [2, 64], not 65"),
    ({"max_packet_flits": 0}, "max_packet_flits must be in [1, 256], not 0"),
    ({"max_packet_flits": 257}, "max_packet_flits must be in [1, 256], not 257"),
    ({"rows": "4"}, "rows must be of type int, not '4'"),
    ({"fifo_depth": True}, "fifo_depth must be of type int, not True"),
    ({"flit_bits": 32.0}, "flit_bits must be of type int, not 32.0"),
])
def test_bad_values_raise_one_line_errors(fields, message):
    with pytest.raises(ConfigError) as e:
        NocConfig(**fields)
    assert str(e.value) == message and "\n" not in str(e.value)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        NocConfig().rows = 2
