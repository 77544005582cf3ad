"""cocotb testbench: the SU-FA engine against golden.sufa, bit-exact, with stalls and extremes.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "cases": case names, "sk": keys,
"blocks": query blocks of `lanes` rows, "p_idle": input idle probability, "p_stall": output stall
probability}. Cases:
    star        DLZS + SADS selection (k_tile, no radius), causal
    radius      DLZS + SADS with a small radius (few keys per tile), causal
    dense       every valid key, exact tile max (the FlashAttention-2 baseline)
    adversarial every key, the true max of each tile listed after the predicted top-2 slots
    extreme     most negative / zero / largest integers, a steep score scale (weights underflow)
For each case and block the engine's output rows and its rescale/merge counters must equal the
model's.
"""

import random

import cocotb
import numpy as np

from gen.config import StarConfig
from gen.formats import Formats
from golden import pipeline, sads, sufa
from golden.intops import int_matmul
from hw.sufa import SufaEngine
from sim.runner import env_config, env_seed
from sim.streams import StreamSink, StreamSource, run_streams, start_clock_and_reset


def make_case(name, fmt, rng, sq, sk):
    """Return (q, k, v int arrays, mant, shift, sel [sq, tiles, K] in SADS order, exact_max)."""
    d = fmt.cfg.head_dim
    if name == "extreme":
        lo, hi = fmt.qmin, fmt.qmax
        pick = np.array([lo, hi, 0, 1, -1])
        q = rng.choice(pick, (sq, d))
        q[0], q[1] = lo, 0
        k = rng.choice(pick, (sk, d))
        k[0], k[1] = lo, hi
        v = rng.choice(pick, (sk, d))
        mant, shift = 1 << (fmt.scale_bits - 1), fmt.scale_bits - 1 + 8
        valid = np.ones((sq, sk), bool)
        sel = sads.select(rng.integers(0, 100, (sq, sk)), fmt, k_tile=fmt.cfg.k_tile, radius=-1,
                          valid=valid)
        return q, k, v, mant, shift, sel, False
    causal = name in ("star", "radius")
    qf, kf, vf = (2.0 * rng.standard_normal((n, d)) for n in (sq, sk, sk))
    h = pipeline.prepare(fmt, qf, kf, vf, causal=causal, softmax_scale=d ** -0.5)
    if name in ("star", "radius"):
        radius = -1 if name == "star" else int(np.abs(pipeline.predicted_scores(
            h, fmt, "dlzs")).mean() // 4)
        _, sel = pipeline.run(h, fmt, radius=radius)
        return h.q, h.k, h.v, h.mant, h.shift, sel, False
    sel = sads.dense_order(h.valid, fmt)
    if name == "dense":
        return h.q, h.k, h.v, h.mant, h.shift, sel, True
    sel = sads.true_max_last(sel, int_matmul(h.q, h.k.T))      # adversarial
    return h.q, h.k, h.v, h.mant, h.shift, sel, False


def beats_of(sel, k, v, T):
    """K and V beats of one block: per tile, the union of the lanes' keys in ascending index."""
    kb, vb = [], []
    tiles = [j for j in range(sel.shape[1]) if (sel[:, j] >= 0).any()]
    for j in tiles:
        union = sorted({int(x) for x in sel[:, j].ravel() if x >= 0})
        for n, key in enumerate(union):
            kb.append({"row": k[key].tolist(),
                       "use": [int(key in sel[t, j]) for t in range(T)],
                       "top": [int(key in sel[t, j, :2]) for t in range(T)],
                       "last": int(n == len(union) - 1),
                       "final": int(j == tiles[-1] and n == len(union) - 1)})
            vb.append({"row": v[key].tolist()})
    return kb, vb


@cocotb.test()
async def sufa_matches_golden(dut):
    opts = env_config()
    cfg = StarConfig(**opts["cfg"])
    fmt = Formats(cfg)
    seed = env_seed()
    rng = np.random.default_rng(seed)
    T = cfg.lanes
    await start_clock_and_reset(dut)
    layout_q = SufaEngine.query_layout(cfg)
    sink = StreamSink(dut, "o", layout_q, p_stall=opts["p_stall"], rng=random.Random(seed + 1))
    for n_case, name in enumerate(opts["cases"]):
        sq = T * opts["blocks"]
        q, k, v, mant, shift, sel, exact = make_case(name, fmt, rng, sq, opts["sk"])
        dut.mant.value, dut.shift.value, dut.exact_max.value = mant, shift, int(exact)
        dut.clear.value = 1
        await run_streams(dut, [], [], lambda: True, 2)
        dut.clear.value = 0
        for blk in range(opts["blocks"]):
            rows = slice(blk * T, (blk + 1) * T)
            want = sufa.attend(q[rows], k, v, sel[rows], mant, shift, fmt, exact_max=exact)
            q_src = StreamSource(dut, "q", layout_q,
                                 [{"lane": t, "row": q[blk * T + t].tolist()} for t in range(T)])
            await run_streams(dut, [q_src], [], lambda: q_src.done, 10 * T)
            kb, vb = beats_of(sel[rows], k, v, T)
            k_src = StreamSource(dut, "k", SufaEngine.key_layout(cfg), kb, p_idle=opts["p_idle"],
                                 rng=random.Random(seed + 10 * n_case + blk))
            v_src = StreamSource(dut, "v", SufaEngine.value_layout(cfg), vb,
                                 p_idle=opts["p_idle"], rng=random.Random(seed + 7 + blk))
            sink.received.clear()
            cycles = await run_streams(dut, [k_src, v_src], [sink],
                                       lambda: len(sink.received) == T,
                                       60 * len(kb) + 40 * (cfg.head_dim + 20) * (1 + len(kb)))
            got = {g["lane"]: g["row"] for g in sink.received}
            assert sorted(got) == list(range(T)), f"lanes out: {sorted(got)}"
            errors = [(t, e) for t in range(T) for e in range(cfg.head_dim)
                      if got[t][e] != want.out[t, e]]
            for t, e in errors[:5]:
                dut._log.error(f"case {name} block {blk} lane {t} elem {e}: expected "
                               f"{want.out[t, e]}, got {got[t][e]}")
            assert not errors, f"{len(errors)} mismatches in case {name} (seed {seed})"
            span = v_src.times[-1] - v_src.times[0] + 1
            dut._log.info(f"case {name} block {blk}: {len(kb)} beats, {cycles} cycles, bit-exact"
                          f" (rescales {int(want.rescales.sum())}, merges {int(want.merges.sum())})"
                          f"; V beats accepted over {span} cycles")
            if opts.get("event_cost") is not None:   # throughput regression: the cost model
                events = int(want.rescales.sum() + want.merges.sum())
                limit = len(vb) + events * opts["event_cost"]
                assert span <= limit, f"{len(vb)} beats, {events} rescale events: {span} cycles" \
                    f" > {limit}"
            blk_resc = int(sum(sufa.attend(q[slice(b * T, (b + 1) * T)], k, v,
                                           sel[slice(b * T, (b + 1) * T)], mant, shift, fmt,
                                           exact_max=exact).rescales.sum()
                               for b in range(blk + 1)))
            assert int(dut.rescales.value) == blk_resc, \
                f"rescale counter {int(dut.rescales.value)} != {blk_resc}"
