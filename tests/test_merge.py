"""Partial-state merge unit (hw/merge.py): bit-exact against golden.spatial.merge.

cocotb + Verilator with random idling/stalls on every stream, and an amaranth.sim smoke test.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from star.hw.layouts import partial_layout
from star.hw.merge import PartialMerge, merge_interval
from star.hw.verilog import convert
from star.sim.merge_cases import check_fits, golden_merge, job_batch, random_batch
from star.sim.payload import pack, unpack
from star.sim.runner import run
from star.spec.config import StarConfig, preset

CONFIGS = {
    "d16_b8": preset("tiny").to_dict(),
    "d16_b16": {**preset("default").to_dict(), "head_dim": 16, "lanes": 2, "axi_data_bits": 64},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_merge_rtl_bit_exact(name, seed):
    cfg = StarConfig(**CONFIGS[name])
    text = convert(PartialMerge(cfg), name="star_merge")
    run(text, "star_merge", "star.sim.merge_tb", seed=seed, timeout_s=300,
        config={"cfg": cfg.to_dict(), "jobs": 4, "random": 2, "pairs": 60, "p_idle": 0.3,
                "p_stall": 0.5})


def test_case_generator_fits_the_widths(seed):
    """The generator's pairs and their golden merges fit the port widths (the RTL never wraps)."""
    for fields in CONFIGS.values():
        cfg = StarConfig(**fields)
        fmt = cfg.formats
        rng = np.random.default_rng(seed)
        for mant, shift, pairs in [job_batch(cfg, rng), random_batch(cfg, rng, 40),
                                   random_batch(cfg, rng, 40, steep=True)]:
            check_fits([s for p in pairs for s in p] + golden_merge(pairs, mant, shift, fmt), fmt)


def test_merge_amaranth_sim_smoke(seed):
    """A few pairs through amaranth.sim, no stalls: bit-exact, one pair per merge_interval."""
    cfg = preset("tiny")
    fmt = cfg.formats
    mant, shift, pairs = random_batch(cfg, np.random.default_rng(seed), 6)
    want = golden_merge(pairs, mant, shift, fmt)
    layout = partial_layout(cfg)
    dut = PartialMerge(cfg)
    got, times = [], []

    async def bench(ctx):
        ctx.set(dut.mant, mant)
        ctx.set(dut.shift, shift)
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.a.valid, 1)
        ctx.set(dut.b.valid, 1)
        ia = ib = 0
        for cycle in range(len(pairs) * (merge_interval(cfg) + 2)):
            ctx.set(dut.a.payload.as_value(), pack(layout, pairs[min(ia, len(pairs) - 1)][0]))
            ctx.set(dut.b.payload.as_value(), pack(layout, pairs[min(ib, len(pairs) - 1)][1]))
            ctx.set(dut.a.valid, ia < len(pairs))
            ctx.set(dut.b.valid, ib < len(pairs))
            ia += ctx.get(dut.a.valid) and ctx.get(dut.a.ready)
            ib += ctx.get(dut.b.valid) and ctx.get(dut.b.ready)
            if ctx.get(dut.out.valid):
                got.append(unpack(layout, ctx.get(dut.out.payload.as_value())))
                times.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    assert set(np.diff(times).tolist()) == {merge_interval(cfg)}
