"""Final normalisation unit (hw/normalize.py): bit-exact against golden.recip.normalize in amaranth.sim.

Random partial states (l from 1 to 2**l_bits - 1, o over the whole o_bits range, saturating and
exactly-halfway cases, empty states) with random idle input / stalled output cycles, and the
latency and interval with no stalls.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from star.golden.recip import normalize
from star.hw.layouts import partial_layout
from star.hw.normalize import Normalize, normalize_interval, normalize_latency, row_layout
from star.sim.payload import pack, unpack
from star.spec.config import StarConfig, preset

CONFIGS = {
    "tiny": preset("tiny"),
    # the 16-bit formal datapath (l_bits 28, o_bits 44, R = 16) at d = 16 to keep the sim short
    "default_d16": StarConfig(**{**preset("default").to_dict(), "head_dim": 16, "lanes": 2,
                                 "axi_data_bits": 64}),
}


def random_l(rng, fmt):
    """l in [1, 2**l_bits - 1]: the ends, powers of two (and their neighbours), log-uniform."""
    top = (1 << fmt.l_bits) - 1
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice([1, 2, 3, top, top - 1, 1 << (fmt.l_bits - 1)])
    if kind == 1:
        return 1 << rng.randrange(fmt.l_bits)
    if kind == 2:
        return min(top, max(1, (1 << rng.randrange(1, fmt.l_bits)) + rng.choice([-1, 1])))
    return max(1, rng.randrange(1 << rng.randrange(1, fmt.l_bits + 1)) & top)


def random_o(rng, fmt, l):
    """One o element for the row sum l: in range, saturating, halfway, full range or zero."""
    lo, hi = -(1 << (fmt.o_bits - 1)), (1 << (fmt.o_bits - 1)) - 1
    kind = rng.randrange(6)
    if kind == 0:      # |o / l| up to 1.5·qmax: mostly in range, saturates sometimes
        o = round(rng.uniform(-1.5, 1.5) * fmt.qmax * l) + rng.randint(-2, 2)
    elif kind == 1:    # exactly halfway for a power-of-two l (near it otherwise)
        q = rng.randint(fmt.qmin - 2, fmt.qmax + 1)
        o = q * l + l // 2
    elif kind == 2:    # the whole o_bits range (saturates unless l is large)
        o = rng.randint(lo, hi)
    elif kind == 3:    # the ends of the range
        o = rng.choice([lo, hi, 0, -1, 1])
    else:              # small quotients around 0
        o = rng.randint(-4 * l, 4 * l)
    return min(hi, max(lo, o))


def make_cases(cfg, rng, n):
    """n partial states (dicts of partial_layout) and the expected rows."""
    fmt = cfg.formats
    d = cfg.head_dim
    cases = []
    for j in range(n):
        if j % 9 == 4:     # empty states: has = 0 (l = 0 and o = 0, or leftover values), has = 1, l = 0
            kind = rng.randrange(3)
            has = int(kind == 2)
            l = 0 if kind != 1 else random_l(rng, fmt)
            o = [0] * d if kind == 0 else [random_o(rng, fmt, max(l, 1)) for _ in range(d)]
            cases.append(({"has": has, "m": 0, "l": l, "o": o}, [0] * d))
            continue
        l = random_l(rng, fmt)
        o = [random_o(rng, fmt, l) for _ in range(d)]
        want = normalize(np.array([o], np.int64), np.array([l], np.int64), fmt)[0].tolist()
        m = rng.randint(-(1 << (fmt.score_bits - 1)), (1 << (fmt.score_bits - 1)) - 1)
        cases.append(({"has": 1, "m": m, "l": l, "o": o}, want))
    return cases


def run(cfg, cases, rng=None, p_idle=0.0, p_stall=0.0, hold=0):
    """Stream the cases through Normalize; return (rows, input transfer cycles, output cycles).

    o.ready is low for the first ``hold`` cycles, then random (``p_stall``) or always high.
    """
    dut = Normalize(cfg)
    lin, lout = partial_layout(cfg), row_layout(cfg)
    got, t_in, t_out = [], [], []
    limit = len(cases) * (normalize_interval(cfg) + 2) * 4 + 100

    async def bench(ctx):
        k = 0
        for cycle in range(limit):
            if len(got) == len(cases):
                return
            valid = k < len(cases) and not (rng and rng.random() < p_idle)
            ready = cycle >= hold and not (rng and rng.random() < p_stall)
            if k < len(cases):
                ctx.set(dut.i.payload.as_value(), pack(lin, cases[k][0]))
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.o.ready, ready)
            if valid and ctx.get(dut.i.ready):
                t_in.append(cycle)
                k += 1
            if ctx.get(dut.o.valid) and ready:
                got.append(unpack(lout, ctx.get(dut.o.payload.as_value()))["row"])
                t_out.append(cycle)
            await ctx.tick()
        raise AssertionError(f"timeout: {len(got)} of {len(cases)} rows after {limit} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, t_in, t_out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_normalize_bit_exact_with_stalls(name, seed):
    cfg = CONFIGS[name]
    rng = random.Random(f"{seed}-{name}")
    cases = make_cases(cfg, rng, 150)
    got, _, _ = run(cfg, cases, rng, p_idle=0.3, p_stall=0.5)
    for j, ((state, want), row) in enumerate(zip(cases, got)):
        assert row == want, f"case {j}: has={state['has']} l={state['l']} o={state['o']}"
    assert len(got) == len(cases)


def test_case_mix(seed):
    """The cases of test_normalize_bit_exact_with_stalls cover saturation at both ends, in-range
    values, exact halfway rounding, l = 1 and empty states."""
    for name, cfg in CONFIGS.items():
        fmt = cfg.formats
        cases = make_cases(cfg, random.Random(f"{seed}-{name}"), 150)
        rows = np.array([w for s, w in cases if s["has"] and s["l"]])
        assert (rows == fmt.qmax).any() and (rows == fmt.qmin).any()
        assert ((rows > fmt.qmin) & (rows < fmt.qmax) & (rows != 0)).mean() > 0.3
        # o·r / 2**shift = o / l exactly when l is a power of two: halfway when o mod l = l / 2
        assert any(o % s["l"] == s["l"] // 2 for s, _ in cases
                   if s["has"] and s["l"] > 1 and s["l"] & (s["l"] - 1) == 0 for o in s["o"])
        assert any(s["l"] == 1 for s, _ in cases)
        assert sum(not s["has"] or not s["l"] for s, _ in cases) >= 3


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_normalize_latency_interval(name, seed):
    """No stalls: bit-exact, o.valid normalize_latency cycles after each input transfer, one
    row per normalize_interval cycles (the full default preset, d = 64, here)."""
    cfg = preset(name)
    cases = make_cases(cfg, random.Random(f"{seed}-lat-{name}"), 6)
    got, t_in, t_out = run(cfg, cases)
    assert got == [w for _, w in cases]
    assert [b - a for a, b in zip(t_in, t_out)] == [normalize_latency(cfg)] * len(cases)
    assert np.diff(t_in).tolist() == [normalize_interval(cfg)] * (len(cases) - 1)
    assert t_in[0] == 0


def test_normalize_backpressure(seed):
    """o stalled: the unit takes two rows (one waiting in the output register, one finished in
    the shift registers) and then holds i.ready low; both rows and the rest come out in order."""
    cfg = preset("tiny")
    cases = make_cases(cfg, random.Random(f"{seed}-bp"), 4)
    hold = 3 * normalize_interval(cfg)
    got, t_in, t_out = run(cfg, cases, hold=hold)
    assert got == [w for _, w in cases]
    assert t_in[:2] == [0, normalize_interval(cfg)] and t_in[2] > hold
    assert t_out[0] == hold
