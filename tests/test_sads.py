"""SADS selector RTL: cocotb + Verilator, bit-exact against golden.sads."""

import pytest

from star.hw.sads import SadsSelector
from star.hw.verilog import convert
from star.sim.runner import run
from star.spec.config import StarConfig, preset

CONFIGS = {
    # (config fields, score width, shift width, [(k, radius), ...])
    "t16_k4": ({**preset("tiny").to_dict(), "lanes": 3}, 16, 0,
                  [(4, -1), (4, 5), (1, 0), (3, 40)]),
    "t16_k6": ({**preset("tiny").to_dict(), "lanes": 2, "k_tile": 6}, 12, 0,
                  [(6, -1), (5, 3), (2, 0)]),
    "t64_k16": ({**preset("default").to_dict(), "lanes": 2}, 30, 0,
                [(16, -1), (16, 1 << 20), (7, 0)]),
    # shifted scores (DLZS's row base): the radius applied as radius >> shift, clamped to the
    # scores' width (1 << 20: clamped at shifts up to 6, not above)
    "t16_k4_shift": ({**preset("tiny").to_dict(), "lanes": 3}, 14, 4,
                     [(4, -1), (4, 5000), (3, 1 << 20), (4, (1 << 29) - 2), (2, 0)]),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sads_rtl_bit_exact(name, seed):
    fields, score_bits, shift_bits, phases = CONFIGS[name]
    cfg = StarConfig(**fields)
    text = convert(SadsSelector(cfg, score_bits, shift_bits), name="star_sads")
    run(text, "star_sads", "star.sim.sads_tb", seed=seed,
        config={"cfg": cfg.to_dict(), "score_bits": score_bits, "shift_bits": shift_bits,
                "phases": phases, "tiles": 12,
                "p_idle": 0.3, "p_stall": 0.5})
