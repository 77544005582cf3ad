"""SU-FA engine RTL: cocotb + Verilator, bit-exact against golden.sufa."""

import pytest

from gen.config import StarConfig, preset
from gen.verilog import convert
from hw.sufa import SufaEngine
from sim.runner import run

CASES = ["star", "radius", "dense", "adversarial", "extreme"]
CONFIGS = {
    "d16_b8": (dict(preset("tiny").to_dict()), 40),
    "d32_b16": ({**preset("default").to_dict(), "head_dim": 32, "lanes": 2, "tile": 16,
                 "k_tile": 4, "max_seq": 1024}, 44),
    "d64_b8": ({**preset("int8").to_dict(), "lanes": 1, "tile": 16, "k_tile": 6,
                "max_seq": 1024}, 36),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sufa_rtl_bit_exact(name, seed):
    fields, sk = CONFIGS[name]
    cfg = StarConfig(**fields)
    text = convert(SufaEngine(cfg), name="star_sufa")
    run(text, "star_sufa", "sim.sufa_tb", seed=seed, timeout_s=600,
        config={"cfg": cfg.to_dict(), "cases": CASES, "sk": sk, "blocks": 2, "p_idle": 0.2,
                "p_stall": 0.3})


def test_sufa_single_lane_one_key_per_cycle(seed):
    """lanes = 1 (each lane fed its own keys), a dense row of 512 keys, no stalls: one key per
    cycle, plus d + 9 cycles per rescale event (a grown max at a tile start, or max assurance)."""
    cfg = StarConfig(**{**preset("tiny").to_dict(), "lanes": 1, "max_seq": 512})
    text = convert(SufaEngine(cfg), name="star_sufa")
    run(text, "star_sufa", "sim.sufa_tb", seed=seed, timeout_s=600,
        config={"cfg": cfg.to_dict(), "cases": ["dense"], "sk": 512, "blocks": 1, "p_idle": 0.0,
                "p_stall": 0.0, "event_cost": cfg.head_dim + 9})
