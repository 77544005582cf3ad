"""Each rounding/saturation helper of hw/rules.py against its numpy twin in golden/rules.py.

Per helper: one Amaranth simulation of a small combinational module wrapping it, exhaustive over
every input of small operands (6-8 bits, every shift of a small range, several constant shifts
or widths side by side), and one over random wide operands (48-bit values, 58-bit products;
random magnitudes, seeded by the ``seed`` fixture). The golden helper computes the same cases in
numpy; the two must agree everywhere.
"""

import itertools

import numpy as np
from amaranth import Module, Signal, Value, signed, unsigned
from amaranth.sim import Simulator

from star.golden import rules as gold
from star.hw import rules as hw

N_RANDOM = 512


def _out(m, expr, name):
    """A Signal driven by *expr* (its shape), so the simulation can read it."""
    sig = Signal(Value.cast(expr).shape(), name=name)
    m.d.comb += sig.eq(expr)
    return sig


def _simulate(m, inputs, outputs, cases):
    """One simulation of the combinational module *m*: per case (one value per input) set the
    inputs and read every output. Returns an int64 array [case, output]."""
    results = []

    async def bench(ctx):
        for case in cases:
            for sig, value in zip(inputs, case):
                ctx.set(sig, int(value))
            results.append([ctx.get(o) for o in outputs])

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results, dtype=np.int64).reshape(len(cases), len(outputs))


def _random(rng, width, n=N_RANDOM, signed_=True):
    """n random values of *width* bits: half of full magnitude, half of a random bit length."""
    lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed_ else (0, 1 << width)
    drop = np.where(rng.random(n) < 0.5, 0, rng.integers(0, width, n))
    return rng.integers(lo, hi, n, dtype=np.int64) >> drop


def _check(got, want, cases, what):
    want = np.broadcast_to(np.asarray(want, np.int64), got.shape)
    bad = np.flatnonzero(got != want)
    assert not bad.size, f"{what}: {bad.size} mismatches, first input {cases[bad[0]]}: " \
                         f"hw {got[bad[0]]}, golden {want[bad[0]]}"


def _round_shift(x_shape, sh_bits, consts, cases):
    m = Module()
    x, sh = Signal(x_shape), Signal(sh_bits)
    outs = [_out(m, hw.round_shift(x, s), f"c{s}") for s in consts]
    outs.append(_out(m, hw.round_shift(x, sh), "var"))
    got = _simulate(m, [x, sh], outs, cases)
    xs, shs = cases[:, 0], cases[:, 1]
    for i, s in enumerate(consts):
        _check(got[:, i], gold.round_shift(xs, s), cases, f"round_shift(x, {s})")
    _check(got[:, -1], gold.round_shift(xs, shs), cases, "round_shift(x, shift signal)")


def test_round_shift_exhaustive():
    cases = np.array(list(itertools.product(range(-128, 128), range(1, 8))))
    _round_shift(signed(8), 3, range(1, 7), cases)


def test_round_shift_random_wide(seed):
    rng = np.random.default_rng(seed)
    cases = np.stack([_random(rng, 48), rng.integers(1, 64, N_RANDOM)], axis=1)
    _round_shift(signed(48), 6, (1, 17, 47), cases)


def _saturate(width, bits, his, cases):
    m = Module()
    xs, xu = Signal(signed(width)), Signal(unsigned(width))
    outs = [_out(m, hw.saturate(xs, b), f"sat{b}") for b in bits]
    outs += [_out(m, hw.clamp_max(xu, h), f"max{h}") for h in his]
    got = _simulate(m, [xs, xu], outs, cases)
    for i, b in enumerate(bits):
        _check(got[:, i], gold.saturate(cases[:, 0], b), cases, f"saturate(x, {b})")
    for i, h in enumerate(his, len(bits)):
        _check(got[:, i], gold.clamp_max(cases[:, 1], h), cases, f"clamp_max(x, {h})")


def test_saturate_clamp_max_exhaustive():
    x = np.arange(-128, 128)
    _saturate(8, range(1, 9), (0, 1, 77, 200, 255, 300), np.stack([x, x & 0xFF], axis=1))


def test_saturate_clamp_max_random_wide(seed):
    rng = np.random.default_rng(seed)
    cases = np.stack([_random(rng, 48), _random(rng, 48, signed_=False)], axis=1)
    _saturate(48, (8, 16, 33, 47), (1, (1 << 20) + 3, (1 << 40) - 1), cases)


def _table_shift(width, n_bits, cases):
    m = Module()
    x, n = Signal(unsigned(width)), Signal(n_bits)
    got = _simulate(m, [x, n], [_out(m, hw.table_shift(m, x, n, name="half"), "y")], cases)
    _check(got[:, 0], gold.table_shift(cases[:, 0], cases[:, 1]), cases, "table_shift")


def test_table_shift_exhaustive():
    # n up to 15 > len(x) + 1: the half term's high bits fall off (as in the exp2 unit)
    _table_shift(6, 4, np.array(list(itertools.product(range(64), range(16)))))


def test_table_shift_random_wide(seed):
    rng = np.random.default_rng(seed)
    cases = np.stack([_random(rng, 48, signed_=False), rng.integers(0, 64, N_RANDOM)], axis=1)
    _table_shift(48, 6, cases)


def _rescale(x_bits, f_bits, sh_bits, consts, bits, cases):
    """rescale (rule 5: round_shift in its two halves of a product) by each constant shift and
    by a shift signal; recip_normalize (rule 4: saturated) to *bits*."""
    m = Module()
    x, f, sh = Signal(signed(x_bits)), Signal(unsigned(f_bits)), Signal(sh_bits)
    prod = Signal(signed(x_bits + f_bits + 1))
    m.d.comb += prod.eq(x * f)

    def rounded(s):             # rule 5 as the RTL computes it: the shift, then the add
        return hw.round_shift_finish(hw.round_shift_start(prod, s))
    outs = [_out(m, rounded(s), f"c{s}") for s in consts]
    outs.append(_out(m, rounded(sh), "var"))
    outs.append(_out(m, hw.saturate(rounded(sh), bits), "sat"))
    # rule 4 as the SU-FA lane pipelines it: flags from the shifted product, a narrow add
    w = Signal(signed(len(prod) + 1))
    m.d.comb += w.eq(hw.round_shift_start(prod, sh))
    outs.append(_out(m, hw.saturate_flagged(hw.round_shift_finish(w, bits),
                                            *hw.round_finish_range(w, bits), bits), "sat_flags"))
    got = _simulate(m, [x, f, sh], outs, cases)
    xs, fs, shs = cases.T
    for i, s in enumerate(consts):
        _check(got[:, i], gold.rescale(xs, fs, s), cases, f"rescale(x, f, {s})")
    _check(got[:, -3], gold.rescale(xs, fs, shs), cases, "rescale(x, f, shift signal)")
    for col in (-2, -1):
        _check(got[:, col], gold.recip_normalize(xs, fs, shs, bits), cases,
               f"recip_normalize(o, r, shift, {bits}) ({'flags' if col == -1 else 'direct'})")


def _round_finish_narrow(w_bits, widths, bits, cases):
    """round_shift_finish(w, width): the low bits of (w + 1) >> 1; round_finish_range and
    saturate_flagged: saturate((w + 1) >> 1, bits) from a narrow copy."""
    m = Module()
    w = Signal(signed(w_bits))
    outs = [_out(m, hw.round_shift_finish(w, n), f"low{n}") for n in widths]
    outs += [_out(m, hw.saturate_flagged(hw.round_shift_finish(w, b), *hw.round_finish_range(w, b),
                                         b), f"sat{b}") for b in bits]
    got = _simulate(m, [w], outs, cases)
    rounded = gold.round_shift(cases[:, 0], 1)
    for i, n in enumerate(widths):
        wrapped = ((rounded + (1 << (n - 1))) & ((1 << n) - 1)) - (1 << (n - 1))
        _check(got[:, i], wrapped, cases, f"round_shift_finish(w, {n})")
    for i, b in enumerate(bits, len(widths)):
        _check(got[:, i], gold.saturate(rounded, b), cases, f"saturate_flagged, {b} bits")


def test_round_finish_narrow_exhaustive():
    _round_finish_narrow(11, range(1, 11), range(1, 10), np.arange(-1024, 1024)[:, None])


def test_round_finish_narrow_random_wide(seed):
    rng = np.random.default_rng(seed)
    _round_finish_narrow(48, (8, 17, 33, 47), (8, 16, 33), _random(rng, 48)[:, None])


def test_rescale_recip_normalize_exhaustive():
    cases = np.array(list(itertools.product(range(-32, 32), range(16), range(1, 8))))
    _rescale(6, 4, 3, (1, 3, 5), 4, cases)


def test_rescale_recip_normalize_random_wide(seed):
    rng = np.random.default_rng(seed)
    # 40-bit state × 17-bit factor: 58-bit products (o·r of the default preset is 54 bits)
    cases = np.stack([_random(rng, 40), _random(rng, 17, signed_=False),
                      rng.integers(1, 64, N_RANDOM)], axis=1)
    _rescale(40, 17, 6, (1, 16, 39), 16, cases)
