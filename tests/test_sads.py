"""SADS selector RTL: cocotb + Verilator, bit-exact against golden.sads."""

import pytest

from star.hw.sads import SadsSelector
from star.hw.verilog import convert
from star.sim.runner import run
from star.spec.config import StarConfig, preset

CONFIGS = {
    # (config fields, score width, [(k, radius), ...])
    "t16_k4": ({**preset("tiny").to_dict(), "lanes": 3}, 16,
                  [(4, -1), (4, 5), (1, 0), (3, 40)]),
    "t16_k6": ({**preset("tiny").to_dict(), "lanes": 2, "k_tile": 6}, 12,
                  [(6, -1), (5, 3), (2, 0)]),
    "t64_k16": ({**preset("default").to_dict(), "lanes": 2}, 30,
                [(16, -1), (16, 1 << 20), (7, 0)]),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sads_rtl_bit_exact(name, seed):
    fields, score_bits, phases = CONFIGS[name]
    cfg = StarConfig(**fields)
    text = convert(SadsSelector(cfg, score_bits), name="star_sads")
    run(text, "star_sads", "star.sim.sads_tb", seed=seed,
        config={"cfg": cfg.to_dict(), "score_bits": score_bits, "phases": phases, "tiles": 12,
                "p_idle": 0.3, "p_stall": 0.5})
