"""The one configuration of a STAR core: a frozen dataclass, its validation, presets and TOML loading.

Every other part of the project (RTL generators in ``hw/``, bit-exact models in ``golden/``, the
manifest, the tests) reads its parameters from a :class:`StarConfig`; derived widths live in
:mod:`star.spec.formats`. This module imports neither amaranth nor numpy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path

from .validate import ConfigError, Rule, check_rules, check_types, in_range, one_of, require

__all__ = ["ConfigError", "StarConfig", "PRESETS", "preset", "read_toml", "config_from_toml",
           "config_from_report",
           "load_toml", "from_overrides", "override_name"]

RADIUS_OFF = -1


def _for_data_bits(rule: Rule, data_bits: int) -> Rule:
    """``rule`` whose range depends on data_bits, saying so."""
    return Rule(rule.ok, f"{rule.text} for data_bits={data_bits}")


@dataclass(frozen=True)
class StarConfig:
    """Parameters of one STAR core (one attention head at a time, ``lanes`` queries in parallel).

    Attention shape
        head_dim      d, elements per query/key/value row.
        data_bits     width of the signed Q/K/V/O integers (8 or 16).
        lanes         T, query rows processed in parallel.
        tile          Bc, keys per tile: the SADS sub-segment and the SU-FA block.
        k_tile        keys kept per query row per tile by SADS.
        radius        SADS radius in predicted-score LSBs; ``-1`` disables radius clipping. This is
                      the reset value of the core's radius register.
        max_seq       longest key sequence the core accepts (a multiple of ``tile``).
    Prediction (DLZS)
        dlzs_terms    powers of two per query element: 1 (the paper: its leading one) or 2 (the
                      leading one plus that of the residual; one more shift and add per product).
        dlzs_rounding how the last term is taken: ``floor`` (truncate to its leading one) or
                      ``nearest`` (round on the bit below the leading one).
        dlzs_k_bits   magnitude bits of each key element used by the predictor (the rest are
                      truncated); ``data_bits`` keeps the full precision. Default 10 (8-bit
                      presets: 8, all of them), tuned on decoder attention (docs/decisions.md).
        dlzs_shift_bits  the query's log code keeps 2**dlzs_shift_bits leading-one positions
                      below the row's largest element (smaller elements count as zero); the
                      per-row offset is applied once per score. 3 (8 positions, the default)
                      is lossless at 8-bit data, 4 at 16-bit data.
        pred_cycles   cycles the DLZS array takes per key (a power of two dividing head_dim):
                      each lane has head_dim / pred_cycles shift-add terms (``pred_width``).
                      Sized to SU-FA's rate (docs/decisions.md, "Prediction sized to SU-FA"):
                      2 at d = 64 (SOFA's 32 shift PEs per query; a 16-bit row is two beats of
                      a 512-bit bus anyway), 1 for the d <= 32 presets.
    Formal compute (SU-FA)
        sufa_macs     P, multipliers per query lane for q·k and as many for p·v: a lane takes
                      head_dim / P cycles per selected key (a power of two dividing head_dim).
        exp_frac_bits E, fraction bits of the base-2 exponent; the exp2 table has 2**E entries.
        exp_out_bits  fraction bits of each softmax weight 2**(s-m) (its value is in (0, 1]).
        recip_bits    fraction bits of the normalised reciprocal of the row sum l.
        scale_bits    mantissa bits of the runtime score-scale constant.
    Bus
        axi_data_bits data width of the AXI4 memory master.

    (Dense FlashAttention is a runtime mode of every core: the MODE register's DENSE bit.)
    """

    name: str = "default"
    head_dim: int = 64
    data_bits: int = 16
    lanes: int = 16
    tile: int = 64
    k_tile: int = 16
    radius: int = RADIUS_OFF
    max_seq: int = 4096
    dlzs_terms: int = 1
    dlzs_rounding: str = "floor"
    dlzs_k_bits: int = 10
    dlzs_shift_bits: int = 3
    pred_cycles: int = 2
    sufa_macs: int = 2
    exp_frac_bits: int = 8
    exp_out_bits: int = 15
    recip_bits: int = 16
    scale_bits: int = 16
    axi_data_bits: int = 512

    def __post_init__(self):
        check_types(self)
        self._validate()

    def rules(self) -> dict:
        """The allowed values of the numeric fields, {field: :class:`~star.spec.validate.Rule`}
        (a bound that depends on another field reads it from this config)."""
        d, b = self.head_dim, self.data_bits
        return {
            "head_dim": in_range(4, 256, pow2=True),
            "data_bits": one_of((8, 16)),
            "lanes": in_range(1, 256),
            "tile": in_range(4, 1024, pow2=True),
            "k_tile": in_range(1, self.tile, hi_name="tile"),
            "max_seq": in_range(self.tile, 65536, multiple=self.tile, multiple_name="tile"),
            "dlzs_terms": one_of((1, 2)),
            "dlzs_rounding": one_of(("floor", "nearest")),
            "dlzs_k_bits": in_range(2, b, hi_name="data_bits"),
            "dlzs_shift_bits": _for_data_bits(in_range(1, 4 if b == 16 else 3), b),
            "pred_cycles": in_range(1, d, pow2=True, hi_name="head_dim"),
            "sufa_macs": in_range(1, d, pow2=True, hi_name="head_dim"),
            "exp_frac_bits": in_range(2, 10),
            "exp_out_bits": in_range(8, 20),
            "recip_bits": in_range(8, 20),
            "scale_bits": in_range(8, 20),
            "axi_data_bits": one_of((32, 64, 128, 256, 512))
            & Rule(lambda v: v <= d * b, f"at most one row (head_dim*data_bits={d * b})"),
        }

    def _validate(self):
        def c(ok, field, rule):
            require(self, ok, field, rule)
        c(re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", self.name) is not None, "name",
          "1-32 characters of [a-z0-9_-] starting with a letter or digit")
        check_rules(self, self.rules())
        fmt = self.formats
        c(self.radius == RADIUS_OFF or 0 <= self.radius <= fmt.radius_max, "radius",
          f"-1 (off) or in [0, {fmt.radius_max}]")
        if fmt.widest_product > 63:
            raise ConfigError(
                f"max_seq={self.max_seq} with data_bits={self.data_bits}, exp_out_bits="
                f"{self.exp_out_bits}, recip_bits={self.recip_bits} needs a "
                f"{fmt.widest_product}-bit product; reduce max_seq so it fits in 63 bits")

    @cached_property
    def formats(self):
        """The derived widths and constants (:class:`star.spec.formats.Formats`), computed once
        per config."""
        from .formats import Formats
        return Formats(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_BASE = StarConfig()

PRESETS: dict[str, StarConfig] = {
    # small and fast: what the block and end-to-end tests use
    "tiny": replace(_BASE, name="tiny", head_dim=16, pred_cycles=1, data_bits=8, dlzs_k_bits=8,
                    lanes=4, tile=16, k_tile=4, max_seq=256, sufa_macs=2, exp_frac_bits=6,
                    exp_out_bits=12, recip_bits=12, scale_bits=12, axi_data_bits=64),
    # paper-like numerics (16-bit formal datapath, d = 64) at a simulation-friendly lane count
    "default": _BASE,
    # what `make bench-core` measures: d = 32 (the captured MiniLM heads), 8 query lanes
    "bench": replace(_BASE, name="bench", head_dim=32, pred_cycles=1, data_bits=8,
                     dlzs_k_bits=8, lanes=8, tile=64, k_tile=16, exp_frac_bits=6, exp_out_bits=12, recip_bits=12,
                     axi_data_bits=256),
    # the papers' scale (SOFA/STAR: 128 query lanes, d = 64, 16-bit formal datapath); generate
    # and synthesize (`make bench-synth`), too large to simulate here
    "paper": replace(_BASE, name="paper", lanes=128, axi_data_bits=512),
    # 8-bit data at d = 64
    "int8": replace(_BASE, name="int8", data_bits=8, dlzs_k_bits=8, exp_frac_bits=6,
                    exp_out_bits=12, recip_bits=12, axi_data_bits=256),
}


def preset(name: str) -> StarConfig:
    """Return the named preset; raise :class:`ConfigError` for an unknown name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"preset must be one of {', '.join(sorted(PRESETS))}, not {name!r}") \
            from None


#: keys of earlier versions: the one-line error says what replaced them
RETIRED = {"pred_keys": "pred_keys was replaced by pred_cycles (cycles per key of the DLZS "
                        "array, each lane head_dim / pred_cycles shift-add terms wide)"}


def _unknown(key: str, where: str = "") -> ConfigError:
    if key in RETIRED:
        return ConfigError(f"{where}{RETIRED[key]}")
    return ConfigError(f"{where}unknown key {key!r}; known keys: {', '.join(_field_types())}")


def config_from_report(fields_: dict) -> StarConfig:
    """The config a report (docs/results/*/report.json) records, also from reports written
    before ``pred_keys`` was retired: star_core took only pred_keys = 1, one key per cycle, which
    is pred_cycles = 1."""
    fields_ = dict(fields_)
    if fields_.pop("pred_keys", 1) != 1:
        raise ConfigError("a report of a star_core config has pred_keys = 1")
    if "pred_cycles" not in fields_:
        fields_["pred_cycles"] = 1
    return StarConfig(**fields_)


def _field_types() -> dict[str, str]:
    return {f.name: f.type for f in fields(StarConfig)}


def from_overrides(base: StarConfig, overrides: dict, where: str = "") -> StarConfig:
    """Return ``base`` with ``overrides`` applied; unknown keys and bad values raise ConfigError."""
    types = _field_types()
    for key in overrides:
        if key not in types:
            raise _unknown(key, where)
    try:
        return replace(base, **overrides)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None


def parse_override(text: str) -> tuple[str, object]:
    """Parse one ``key=value`` command-line override into a typed pair."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    types = _field_types()
    if sep and key in RETIRED:
        raise _unknown(key)
    if not sep or key not in types:
        raise ConfigError(f"-P expects key=value with key one of {', '.join(types)}, not {text!r}")
    raw = raw.strip()
    kind = types[key]
    if kind == "str":
        return key, raw
    try:
        return key, int(raw, 0)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, not {raw!r}") from None


def read_toml(path: str | Path) -> dict:
    """The keys of a config file; ConfigError (one line naming the file) when it cannot be read
    or is not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:                                    # a folder, no permission, ...
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a config file is UTF-8 TOML)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def config_from_toml(path: str | Path, data: dict) -> StarConfig:
    """The config of a config file's keys (:func:`read_toml`): an optional ``preset = "name"``
    key, then any StarConfig fields; the name defaults to the file's stem."""
    path, data = Path(path), dict(data)
    base = preset(data.pop("preset", "default"))
    if "name" not in data:
        data["name"] = path.stem.lower()
    return from_overrides(base, data, where=f"{path}: ")


def load_toml(path: str | Path) -> StarConfig:
    """Load a config file: an optional ``preset = "name"`` key, then any StarConfig fields."""
    return config_from_toml(path, read_toml(path))


def override_name(cfg: StarConfig, base: StarConfig) -> StarConfig:
    """``cfg`` renamed ``<its name>-<6 hex digits>`` when it differs from ``base`` (its preset)
    in a field other than the name, else ``cfg`` itself. The digits start the SHA-256 of the
    canonical JSON (sorted keys) of ``cfg`` without its name, so two different configs made from
    one preset get two names; the name is cut to fit the 32 characters a name may have."""
    fields_ = {k: v for k, v in cfg.to_dict().items() if k != "name"}
    if fields_ == {k: v for k, v in base.to_dict().items() if k != "name"}:
        return cfg
    digest = hashlib.sha256(json.dumps(fields_, sort_keys=True).encode()).hexdigest()[:6]
    return replace(cfg, name=f"{cfg.name[:25]}-{digest}")
