"""Config validation, presets, TOML loading and -P overrides."""

import re

import pytest

from star.spec.config import (PRESETS, ConfigError, StarConfig, from_overrides, load_toml,
                              parse_override, preset)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_named(name):
    cfg = preset(name)
    assert cfg.name == name
    assert cfg.formats.widest_product <= 63


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_sufa_macs_boundaries(name):
    """Every sufa_macs validation accepts splits a row into G = head_dim / P whole chunks and
    the tile stores' read ports cover every lane (ceil(lanes / G) lanes share a bank per cycle);
    just past either end of its range, and between powers of two, validation refuses."""
    base = preset(name)
    d = base.head_dim
    for p in (1 << i for i in range(d.bit_length())):
        fmt = from_overrides(base, {"sufa_macs": p}).formats
        assert fmt.sufa_chunks * p == d
        assert (fmt.sufa_ports - 1) * fmt.sufa_chunks < base.lanes \
            <= fmt.sufa_ports * fmt.sufa_chunks
    for bad in (0, 3, d - 1 if d > 4 else 3, 2 * d):
        with pytest.raises(ConfigError, match="sufa_macs"):
            from_overrides(base, {"sufa_macs": bad})


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"tiny"}))
def test_presets_are_compute_bound(name):
    """docs/decisions.md "SU-FA PEs per lane and bus width per preset": at top-k = k_tile a lane
    computes k_tile * G cycles per tile; the bus reads the K tile plus the union of V rows,
    (1 + u) * tile rows of row_beats beats. Every preset but the test shape keeps the bus
    ahead of SU-FA even at u = 1 (every key selected by some lane)."""
    cfg, fmt = preset(name), preset(name).formats
    assert 2 * cfg.tile * fmt.row_beats <= cfg.k_tile * fmt.sufa_chunks


@pytest.mark.parametrize("field, value, message", [
    ("head_dim", 48, "head_dim must be a power of two in [4, 256], not 48"),
    ("head_dim", 512, "head_dim must be a power of two in [4, 256], not 512"),
    ("data_bits", 12, "data_bits must be 8 or 16, not 12"),
    ("lanes", 0, "lanes must be in [1, 256], not 0"),
    ("tile", 24, "tile must be a power of two in [4, 1024], not 24"),
    ("k_tile", 65, "k_tile must be in [1, tile=64], not 65"),
    ("k_tile", 0, "k_tile must be in [1, tile=64], not 0"),
    ("max_seq", 100, "max_seq must be a multiple of tile=64 in [64, 65536], not 100"),
    ("dlzs_rounding", "up", "dlzs_rounding must be 'floor' or 'nearest', not 'up'"),
    ("dlzs_terms", 3, "dlzs_terms must be 1 or 2, not 3"),
    ("dlzs_k_bits", 17, "dlzs_k_bits must be in [2, data_bits=16], not 17"),
    ("pred_cycles", 3, "pred_cycles must be a power of two in [1, head_dim=64], not 3"),
    ("pred_cycles", 128, "pred_cycles must be a power of two in [1, head_dim=64], not 128"),
    ("sufa_macs", 3, "sufa_macs must be a power of two in [1, head_dim=64], not 3"),
    ("sufa_macs", 0, "sufa_macs must be a power of two in [1, head_dim=64], not 0"),
    ("sufa_macs", 128, "sufa_macs must be a power of two in [1, head_dim=64], not 128"),
    ("exp_frac_bits", 11, "exp_frac_bits must be in [2, 10], not 11"),
    ("exp_out_bits", 7, "exp_out_bits must be in [8, 20], not 7"),
    ("recip_bits", 21, "recip_bits must be in [8, 20], not 21"),
    ("scale_bits", 4, "scale_bits must be in [8, 20], not 4"),
    ("axi_data_bits", 48, "axi_data_bits must be one of 32, 64, 128, 256, 512 and at most one row"
                          " (head_dim*data_bits=1024), not 48"),
    ("radius", -2, "radius must be -1 (off) or in [0, 4294967294], not -2"),
    ("dlzs_shift_bits", 5, "dlzs_shift_bits must be in [1, 4] for data_bits=16, not 5"),
    ("name", "Big Name", "name must be 1-32 characters"),
    ("lanes", True, "lanes must be of type int, not True"),
    ("dlzs_rounding", 1, "dlzs_rounding must be of type str, not 1"),
])
def test_validation_names_field_and_range(field, value, message):
    with pytest.raises(ConfigError) as e:
        from_overrides(StarConfig(), {field: value})
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_too_wide_accumulator_is_rejected():
    with pytest.raises(ConfigError, match="fits in 63 bits"):
        StarConfig(max_seq=65536, exp_out_bits=20)


def test_frozen():
    with pytest.raises(AttributeError):
        preset("tiny").lanes = 3  # type: ignore[misc]


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset must be one of bench, default, int8, paper, tiny, not 'big'"):
        preset("big")


def test_toml_roundtrip_and_errors(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('preset = "tiny"\nk_tile = 8\ndlzs_rounding = "nearest"\n')
    cfg = load_toml(good)
    assert (cfg.name, cfg.k_tile, cfg.dlzs_rounding, cfg.head_dim) == ("mine", 8, "nearest", 16)

    bad = tmp_path / "bad.toml"
    bad.write_text("k_tiles = 8\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key 'k_tiles'"):
        load_toml(bad)
    bad.write_text("k_tile = 99\n")
    with pytest.raises(ConfigError, match=r"bad.toml: k_tile must be in \[1, tile=64\], not 99"):
        load_toml(bad)
    bad.write_text("k_tile = \n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_toml(tmp_path / "missing.toml")


def test_parse_override():
    assert parse_override("k_tile=8") == ("k_tile", 8)
    assert parse_override("dlzs_rounding=nearest") == ("dlzs_rounding", "nearest")
    with pytest.raises(ConfigError, match="-P expects key=value"):
        parse_override("ktile=8")
    with pytest.raises(ConfigError, match="k_tile must be an integer, not 'x'"):
        parse_override("k_tile=x")


def test_spatial_config_snake_order_and_errors():
    from star.spec.spatial_config import SpatialConfig
    s = SpatialConfig(preset("tiny"), rows=3, cols=2)
    assert s.cores == 6 and s.name == "tiny_3x2"
    assert s.order == ((0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2))
    # chain neighbours are mesh neighbours
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(s.order, s.order[1:]))
    for kwargs, message in [({"rows": 0}, "rows must be in [1, 8], not 0"),
                            ({"rows": 1, "cols": 1}, "cols must be in [2, 8] when rows=1"),
                            ({"flit_bits": 4}, "flit_bits must be in [8, 512], not 4"),
                            ({"rows": True}, "rows must be of type int")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            SpatialConfig(preset("tiny"), **kwargs)
    with pytest.raises(ConfigError, match="core must be a StarConfig"):
        SpatialConfig({"lanes": 4})


def test_radius_fits_the_32_bit_register():
    """36-bit predicted scores (16-bit data, 16 DLZS key bits): RADIUS and its reset value stay
    below 0xFFFFFFFF (off), no register reset value is truncated (make regress found
    HW_RADIUS_MAX = 2**36 - 1 in a 32-bit register)."""
    from dataclasses import replace

    from star.spec.regmap import RADIUS_OFF_VALUE, by_name
    wide = replace(PRESETS["tiny"], data_bits=16, dlzs_k_bits=16, dlzs_shift_bits=4, max_seq=64)
    fmt = wide.formats
    assert fmt.pred_bits > 32 and fmt.radius_off == (1 << fmt.pred_bits) - 1
    assert fmt.radius_max == RADIUS_OFF_VALUE - 1
    assert replace(wide, radius=fmt.radius_max).radius == fmt.radius_max
    with pytest.raises(ConfigError, match=r"radius must be -1 \(off\) or in \[0, 4294967294\]"):
        replace(wide, radius=RADIUS_OFF_VALUE)
    for cfg in (wide, *PRESETS.values()):
        too_wide = [r.name for r in by_name(cfg).values() if not 0 <= r.reset < 1 << 32]
        assert not too_wide, f"{cfg.name}: reset values wider than 32 bits: {too_wide}"
