"""cocotb testbench: the SADS selector against golden.sads, bit-exact, with stalls and extremes.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "score_bits": input width, "shift_bits":
per-lane shift width (optional, default 0), "phases": list of [k, radius] pairs (radius -1 =
off), "tiles": tiles per phase, "p_idle", "p_stall"}. Each phase streams tiles of random length
(ragged tiles included) with many ties, extreme values, random valid masks and a causal-style
mask, then compares every tile's lists with the model. With shift bits, each lane's scores of a
tile carry a random shift (the model selects on score << shift).
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from star.golden import sads
from star.hw.sads import SadsSelector
from star.sim.runner import env_config, env_seed
from star.sim.streams import StreamSink, StreamSource, run_streams, start_clock_and_reset
from star.spec.config import StarConfig


def make_tile(rng, kind, T, n, lo, hi):
    """Scores [T, n] and mask [T, n] of one tile of the given kind."""
    if kind == "equal":
        scores = np.full((T, n), rng.integers(lo, hi + 1))
    elif kind == "extreme":
        scores = rng.choice([lo, lo + 1, 0, hi - 1, hi], (T, n))
    elif kind == "narrow":                                   # many ties
        scores = rng.integers(-4, 5, (T, n))
    else:
        scores = rng.integers(lo, hi + 1, (T, n))
    if kind == "causal":                                     # lane t sees a prefix of the tile
        mask = np.arange(n)[None, :] < rng.integers(0, n + 1, (T, 1))
    elif kind == "sparse":
        mask = rng.random((T, n)) < 0.3
    else:
        mask = np.ones((T, n), bool)
    return scores, mask


@cocotb.test()
async def sads_matches_golden(dut):
    opts = env_config()
    cfg = StarConfig(**opts["cfg"])
    fmt = cfg.formats
    seed = env_seed()
    rng = np.random.default_rng(seed)
    T, tile = cfg.lanes, cfg.tile
    sb, shb = opts["score_bits"], opts.get("shift_bits", 0)
    lo, hi = -(1 << (sb - 1)), (1 << (sb - 1)) - 1
    in_layout = SadsSelector.input_layout(cfg, sb, shb)
    radius_bits = len(dut.radius.value)
    out_layout = SadsSelector.output_layout(cfg)
    await start_clock_and_reset(dut)
    sink = StreamSink(dut, "o", out_layout, p_stall=opts["p_stall"], rng=random.Random(seed + 1))
    kinds = ["random", "narrow", "equal", "extreme", "causal", "sparse"]
    for phase, (k, radius) in enumerate(opts["phases"]):
        dut.k.value = k
        r_all_ones = (1 << radius_bits) - 1 if radius < 0 else radius   # all ones: off
        dut.radius.value = r_all_ones
        await RisingEdge(dut.clk)           # the lanes register k and radius: a cycle ahead
        tiles, items, valid = [], [], []
        for n_tile in range(opts["tiles"]):
            n = tile if n_tile % 3 else int(rng.integers(1, tile + 1))   # ragged tiles
            scores, mask = make_tile(rng, kinds[n_tile % len(kinds)], T, n, lo, hi)
            shift = rng.integers(0, 1 << shb, T) if shb else np.zeros(T, int)
            tiles.append((scores << shift[:, None], mask))
            for g in range(n):
                items.append({"score": scores[:, g].tolist(), "last": int(g + 1 == n),
                              **({"shift": shift.tolist()} if shb else {})})
                valid.append(sum(int(mask[t, g]) << t for t in range(T)))
        src = StreamSource(dut, "i", in_layout, items, p_idle=opts["p_idle"],
                           rng=random.Random(seed + 2 + phase), side=(dut.lane_valid, valid))
        sink.received.clear()
        cycles = await run_streams(dut, [src], [sink], lambda: len(sink.received) == len(tiles),
                                   4 * len(items) + 100)
        errors = 0
        for n_tile, ((scores, mask), got) in enumerate(zip(tiles, sink.received)):
            want = sads.select(scores, fmt, k_tile=k, radius=r_all_ones, valid=mask)[:, 0, :]
            for t in range(T):
                w = [int(x) for x in want[t] if x >= 0]
                g = got["index"][t][:got["count"][t]]
                if g != w:
                    errors += 1
                    if errors <= 5:
                        dut._log.error(f"phase {phase} (k={k}, r={radius}) tile {n_tile} lane {t}: "
                                       f"expected {w}, got {g}")
        assert errors == 0, f"{errors} mismatching lists (config {cfg.name}, seed {seed})"
        dut._log.info(f"phase {phase} k={k} r={radius}: {len(tiles)} tiles, {len(items)} "
                      f"transfers in {cycles} cycles, bit-exact")
        await RisingEdge(dut.clk)
