"""Predictor RTL (DLZS and the 4-bit MAC baseline): cocotb + Verilator, bit-exact vs golden."""

import pytest

from star.hw.dlzs import DlzsPredictor
from star.hw.mac4 import Mac4Predictor
from star.hw.verilog import convert
from star.sim.runner import run
from star.spec.config import StarConfig, preset

CONFIGS = {
    "d16_b8_floor": dict(preset("tiny").to_dict()),
    "d16_b8_nearest_c2": {**preset("tiny").to_dict(), "dlzs_rounding": "nearest", "pred_cycles": 2,
                          "dlzs_k_bits": 8, "dlzs_shift_bits": 3},
    "d64_b16": {**preset("default").to_dict(), "lanes": 2},
    "d64_b16_nearest_c1": {**preset("default").to_dict(), "lanes": 1, "pred_cycles": 1,
                            "dlzs_rounding": "nearest", "dlzs_k_bits": 16, "dlzs_shift_bits": 4},
    "d64_b8_c4": {**preset("int8").to_dict(), "lanes": 1, "pred_cycles": 4},
    "d16_b8_terms2_nearest_c4": {**preset("tiny").to_dict(), "dlzs_terms": 2, "pred_cycles": 4,
                                 "dlzs_rounding": "nearest", "dlzs_k_bits": 8,
                                 "dlzs_shift_bits": 3},
    "d64_b16_terms2": {**preset("default").to_dict(), "lanes": 1, "dlzs_terms": 2},
}
LONG = {"d64_b16_nearest_c1"}      # the largest model: `make test-long`
PREDICTORS = {"dlzs": DlzsPredictor, "mac4": Mac4Predictor}


@pytest.mark.parametrize("predictor, name", [
    pytest.param("dlzs", n, marks=[pytest.mark.long] if n in LONG else []) for n in sorted(CONFIGS)
] + [("mac4", "d16_b8_floor"), ("mac4", "d64_b16")])
def test_predictor_rtl_bit_exact(predictor, name, seed):
    cfg = StarConfig(**CONFIGS[name])
    top = f"star_{predictor}"
    text = convert(PREDICTORS[predictor](cfg), name=top)
    run(text, top, "star.sim.predictor_tb", seed=seed,
        config={"cfg": cfg.to_dict(), "predictor": predictor, "n_keys": 96, "p_idle": 0.3,
                "p_stall": 0.3})
