"""SU-FA engine RTL: cocotb + Verilator, bit-exact against golden.sufa (sim/sufa_tb.py)."""

import pytest

from star.hw.sufa import SufaEngine
from star.hw.verilog import convert
from star.sim.runner import run
from star.spec.config import StarConfig, preset

CASES = ["star", "radius", "dense", "dense_causal", "adversarial", "extreme"]
TINY = preset("tiny").to_dict()
# P = sufa_macs of 1, between 1 and head_dim, and head_dim. In the first two, lanes is not a
# multiple of G = head_dim / P: the tile stores' last read port serves fewer than G lanes.
CONFIGS = {
    # d 16, 8-bit, P 1: G 16, 1 read port for 3 lanes
    "p1_l3": ({**TINY, "lanes": 3, "sufa_macs": 1}, 40),
    # d 16, 16-bit, P 8: G 2, 2 read ports (the second serves lane 2 only), 8-key tiles
    "p8_l3_b16": ({**preset("default").to_dict(), "head_dim": 16, "lanes": 3, "tile": 8,
                   "k_tile": 3, "sufa_macs": 8, "max_seq": 256, "axi_data_bits": 256}, 28),
    # d 32, 8-bit, P 32: G 1, one read port per lane
    "pd_l2_d32": ({**preset("int8").to_dict(), "head_dim": 32, "lanes": 2, "tile": 16,
                   "k_tile": 5, "sufa_macs": 32, "max_seq": 256}, 40),
}

# Throughput bound overheads (sim/sufa_tb.py, test_sufa_lane_throughput): cycles per tile and
# per block beyond score_latency + accumulate_latency + norm_cycles + lanes.
C_TILE = 4
C_BLOCK = 0


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sufa_rtl_bit_exact(name, seed):
    """Every case of sim/sufa_tb.py, 3 overlapping blocks each, random input idles (20 %) and
    output stalls (30 %): O rows, rescale/merge counters and slot returns against the model."""
    fields, sk = CONFIGS[name]
    cfg = StarConfig(**fields)
    text = convert(SufaEngine(cfg), name="star_sufa")
    run(text, "star_sufa", "star.sim.sufa_tb", seed=seed, timeout_s=600,
        config={"cfg": cfg.to_dict(), "cases": CASES, "sk": sk, "blocks": 3, "p_idle": 0.2,
                "p_stall": 0.3})


def test_sufa_lane_throughput(seed):
    """lanes = 2, d 16, P 2 (G = head_dim / sufa_macs = 8), dense (exact max), 64 keys (4 tiles),
    no input idles, no output stalls: each lane retires one key per G cycles. Per block, from
    its first lists transfer (or the previous block's last row out, if later) to its last row
    out, the cycles must be at most (sim/sufa_tb.py)

        max over lanes t of  G·(keys_t + first_t)
                             + events_t·(rescale_cycles + accumulate_latency + exp_wait + 1)
        + tiles·(C_TILE + exp_wait) + score_latency + accumulate_latency + norm_cycles + lanes
        + C_BLOCK

    first_t: the lane's keys of the block's first tile (the score stage finishes a tile before
    the accumulate stage starts it); events_t: its rescales + merges.

    Measured (this config, seeds 1-30, 4 and 8 tiles; lanes = 1 and 2 alike): without events a
    block takes exactly G·(keys + first) + score_latency + accumulate_latency + norm_cycles
    + lanes + 4·tiles
    - 5 cycles for two or more full tiles (+1 with one tile): 2 cycles per tile for the
    accumulate stage's tile start and end, plus 2 per tile from the third on (the score stage
    of tile j + 2 waits for tile j's score slot, and its latency then shows). A merge costs
    21-24 cycles (charged 26 = rescale_cycles + accumulate_latency). Hence C_TILE = 4, C_BLOCK = 0;
    smallest slack 5 cycles (blocks without events), blocks after the first have ~130 more (the
    first tile's scores overlap the previous block). A lane taking 2G cycles per key would
    exceed the bound by G·keys = 512 cycles. exp_wait (issue 32): a key's longest wait for its
    lane's turn at the shared exp2 unit, once per tile and per event (hw.sufa_lane.exp_wait)."""
    cfg = StarConfig(**{**TINY, "lanes": 2})
    assert cfg.formats.sufa_chunks == 8
    text = convert(SufaEngine(cfg), name="star_sufa")
    run(text, "star_sufa", "star.sim.sufa_tb", seed=seed, timeout_s=600,
        config={"cfg": cfg.to_dict(), "cases": ["dense"], "sk": 64, "blocks": 2, "p_idle": 0.0,
                "p_stall": 0.0, "throughput": {"tile": C_TILE, "block": C_BLOCK}})
