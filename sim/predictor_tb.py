"""cocotb testbench: a score predictor (DLZS or 4-bit MAC) against golden, bit-exact, with stalls.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "predictor": "dlzs" | "mac4", "n_keys":
keys per phase, "p_idle": input idle probability, "p_stall": output stall probability}. Two phases: each loads a query row into
every lane (extreme rows first), then streams the keys.
"""

import random

import cocotb
import numpy as np

from star.golden import dlzs, mac4
from star.hw.dlzs import DlzsArith
from star.hw.mac4 import Mac4Arith
from star.hw.layouts import score_layout
from star.hw.predictor import ScorePredictor
from star.sim.runner import env_config, env_seed
from star.sim.streams import StreamSink, StreamSource, run_streams, start_clock_and_reset
from star.spec.config import StarConfig


def extreme_rows(fmt, d, rng, n):
    """Rows mixing the most negative value, zeros, the maximum and random values."""
    lo, hi = fmt.qmin, fmt.qmax
    fixed = [np.full(d, lo), np.zeros(d, int), np.full(d, hi),
             np.resize([lo, 0, hi, 1, -1, 2, -2, 3], d)]
    rand = [rng.integers(lo, hi + 1, d) for _ in range(n)]
    return np.array((fixed + rand)[:max(n, 1)])


@cocotb.test()
async def predictor_matches_golden(dut):
    opts = env_config()
    cfg = StarConfig(**opts["cfg"])
    fmt = cfg.formats
    seed = env_seed()
    rng = np.random.default_rng(seed)
    T, d = cfg.lanes, cfg.head_dim
    await start_clock_and_reset(dut)
    arith, model = {"dlzs": (DlzsArith, dlzs), "mac4": (Mac4Arith, mac4)}[opts["predictor"]]
    q_layout, k_layout = ScorePredictor.query_layout(cfg), ScorePredictor.key_layout(cfg)
    shift_bits = arith(cfg).shift_bits
    a_layout = score_layout(cfg, arith(cfg).score_bits, shift_bits)
    sink = StreamSink(dut, "a", a_layout, p_stall=opts["p_stall"], rng=random.Random(seed + 1))
    for phase in range(2):
        q = extreme_rows(fmt, d, rng, T) if phase == 0 else rng.integers(fmt.qmin, fmt.qmax + 1,
                                                                           (T, d))
        q_src = StreamSource(dut, "q", q_layout,
                             [{"lane": t, "row": q[t].tolist()} for t in range(T)])
        await run_streams(dut, [q_src], [], lambda: q_src.done, 10 * T)
        n = opts["n_keys"]
        k = np.concatenate([extreme_rows(fmt, d, rng, 4),
                            rng.integers(fmt.qmin, fmt.qmax + 1, (n, d))])[:n]
        groups = [{"key": k[i].tolist(), "last": int(i % 3 == 2)} for i in range(n)]
        k_src = StreamSource(dut, "k", k_layout, groups, p_idle=opts["p_idle"],
                             rng=random.Random(seed + 2 + phase))
        sink.received.clear()
        cycles = await run_streams(dut, [k_src], [sink],
                                   lambda: len(sink.received) == len(groups), 50 * len(groups) + 50)
        want = model.predict(q, k, fmt)                     # [T, n]
        # the predicted score is the sum shifted by the lane's row base (DLZS, when nonzero)
        shift = np.array([[g["shift"][t] if shift_bits else 0 for g in sink.received]
                          for t in range(T)])
        got = np.array([[g["score"][t] for g in sink.received] for t in range(T)]) << shift
        if shift_bits:
            base = dlzs.query_weight(q, fmt)[1]
            assert (shift == base[:, None]).all(), f"shifts {shift[:, 0]}, row bases {base}"
        bad = np.argwhere(got != want)
        for t, j in bad[:5]:
            dut._log.error(f"phase {phase} lane {t} key {j}: expected {want[t, j]}, got {got[t, j]}")
        assert len(bad) == 0, (f"{len(bad)} mismatches (config {cfg.name}, seed {seed})")
        assert [g["last"] for g in sink.received] == [g["last"] for g in groups]
        dut._log.info(f"phase {phase}: {n} keys x {T} lanes bit-exact in {cycles} cycles")
