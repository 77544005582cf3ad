"""DLZS predictor RTL: cocotb + Verilator, bit-exact against golden.dlzs."""

import pytest

from gen.config import StarConfig, preset
from gen.verilog import convert
from hw.dlzs import DlzsPredictor
from sim.runner import run

CONFIGS = {
    "d16_b8_floor": dict(preset("tiny").to_dict()),
    "d16_b8_nearest_p2": {**preset("tiny").to_dict(), "dlzs_rounding": "nearest", "pred_keys": 2,
                          "dlzs_k_bits": 8},
    "d64_b16": {**preset("default").to_dict(), "lanes": 2},
    "d64_b8_p4": {**preset("int8").to_dict(), "lanes": 2, "pred_keys": 4},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dlzs_rtl_bit_exact(name, seed):
    cfg = StarConfig(**CONFIGS[name])
    text = convert(DlzsPredictor(cfg), name="star_dlzs")
    run(text, "star_dlzs", "sim.dlzs_tb", seed=seed,
        config={"cfg": cfg.to_dict(), "n_keys": 96, "p_idle": 0.3, "p_stall": 0.3})
