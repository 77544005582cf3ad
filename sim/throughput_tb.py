"""cocotb testbench: streaming throughput of the DLZS predictor or the SADS selector, in keys/cycle.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "unit": "dlzs" | "sads", "n_keys": keys per
lane (for SADS a multiple of tile), "out": path of the JSON file to write}. The input
is always valid and the output always ready. Cycles are counted from the first input transfer to
the last output transfer, both included; keys_per_cycle (per lane) = n_keys / cycles. The JSON
holds {"unit", "keys", "cycles", "keys_per_cycle", "input_transfers", "output_transfers"}.
Payload values are random; their correctness is the bit-exact testbenches' job.
"""

import json
import random

import cocotb

from star.hw.dlzs import DlzsArith
from star.hw.layouts import score_layout
from star.hw.predictor import ScorePredictor
from star.hw.sads import SadsSelector
from star.sim.runner import env_config, env_seed
from star.sim.streams import StreamSink, StreamSource, run_streams, start_clock_and_reset
from star.spec.config import StarConfig


def _dlzs_streams(dut, cfg, rng, n_keys):
    """Return (input items, source prefix, input layout, sink prefix, output layout)."""
    lo, hi = -(1 << (cfg.data_bits - 1)), (1 << (cfg.data_bits - 1)) - 1
    items = [{"key": [rng.randint(lo, hi) for _ in range(cfg.head_dim)],
              "last": int(i == n_keys - 1)} for i in range(n_keys)]
    return (items, "k", ScorePredictor.key_layout(cfg),
            "a", score_layout(cfg, DlzsArith(cfg).score_bits, DlzsArith(cfg).shift_bits))


def _sads_streams(dut, cfg, rng, n_keys):
    """As :func:`_dlzs_streams`, for SADS: n_keys / tile full tiles, every key valid."""
    sel = SadsSelector(cfg)
    sb, shb = sel.score_bits, sel.shift_bits
    lo, hi = -(1 << (sb - 1)), (1 << (sb - 1)) - 1
    shift = {"shift": [0] * cfg.lanes} if shb else {}
    items = [{"score": [rng.randint(lo, hi) for _ in range(cfg.lanes)], **shift,
              "last": int(i % cfg.tile == cfg.tile - 1)} for i in range(n_keys)]
    dut.lane_valid.value = (1 << cfg.lanes) - 1
    dut.k.value = cfg.k_tile
    dut.radius.value = (1 << sel.radius_bits) - 1          # all ones: radius off
    return (items, "i", SadsSelector.input_layout(cfg, sb, shb),
            "o", SadsSelector.output_layout(cfg))


@cocotb.test()
async def throughput(dut):
    opts = env_config()
    cfg = StarConfig(**opts["cfg"])
    rng = random.Random(env_seed())
    n_keys = opts["n_keys"]
    await start_clock_and_reset(dut)
    if opts["unit"] == "dlzs":
        # one query row per lane; then the queue is idle
        q_layout = ScorePredictor.query_layout(cfg)
        q_items = [{"lane": t, "row": [rng.randint(-8, 7) for _ in range(cfg.head_dim)]}
                   for t in range(cfg.lanes)]
        q_src = StreamSource(dut, "q", q_layout, q_items)
        await run_streams(dut, [q_src], [], lambda: q_src.done, 10 * cfg.lanes)
        make = _dlzs_streams
    else:
        make = _sads_streams
    items, src_name, src_layout, sink_name, sink_layout = make(dut, cfg, rng, n_keys)
    n_out = len(items) if opts["unit"] == "dlzs" else n_keys // cfg.tile
    src = StreamSource(dut, src_name, src_layout, items)
    sink = StreamSink(dut, sink_name, sink_layout)
    await run_streams(dut, [src], [sink], lambda: len(sink.received) == n_out,
                      4 * len(items) + 100)
    assert src.done, f"{src.sent}/{len(items)} inputs taken for {n_out} outputs"
    cycles = sink.times[-1] - src.times[0] + 1
    result = {"unit": opts["unit"], "keys": n_keys, "cycles": cycles,
              "keys_per_cycle": n_keys / cycles, "input_transfers": len(items),
              "output_transfers": n_out}
    with open(opts["out"], "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    dut._log.info(f"{opts['unit']}: {n_keys} keys per lane in {cycles} cycles "
                  f"= {n_keys / cycles:.4f} keys/cycle per lane")
