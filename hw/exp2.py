"""exp2 unit: the softmax weight p = 2**(-(m - s)·c) of a score difference, pipelined.

Model: :mod:`golden.exp2` (bit-exact; error bound there and in docs/formats.md). Both rounded
shifts are :func:`hw.rules.table_shift`, the product's split in its two halves (the shift,
then the one-bit rounding add) with a register between them; the saturation at ``u_max`` is
:func:`hw.rules.clamp_max`. Every stage is one multiply, one shift or one narrow add (see
docs/decisions.md, "Pipeline registers").
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import MulPipe, mul_latency
from .rules import clamp_max, table_shift, table_shift_finish, table_shift_start

__all__ = ["Exp2Unit", "exp2_latency"]


def exp2_latency(cfg) -> int:
    """Enabled cycles from ``t`` to ``p`` of :class:`Exp2Unit`: the multiplier's, then three
    (shift | round and saturate, table | the table value's rounded shift)."""
    fmt = cfg.formats
    return mul_latency(fmt.score_bits + 1, fmt.scale_bits) + 3


class Exp2Unit(wiring.Component):
    """p = round_half_up(table[u mod 2**E] / 2**(u >> E)), u = sat(round_half_up(t·mant >> (shift-E))).

    Ports
        en      In: advance the pipeline (all registers load only while en is high).
        t       In: score difference m - s >= 0, ``score_bits + 1`` bits.
        mant    In: score-scale mantissa; shift In: score-scale shift (in [E, SCALE_SHIFT_MAX]; static per job:
                ``shift`` is registered once more, so it must settle a cycle before the first t).
        p       Out: the weight, ``p_bits`` (1.0 = 2**P), ``exp2_latency(cfg)`` enabled cycles
                after t.
    Stages: t and mant registered | t·mant (:class:`hw.arith.MulPipe`) | shift of the product
    by shift - E - 1 | the rounding add of u, saturation, table lookup | the table value's
    rounded shift by u >> E (a short shift and a one-bit add).
    Throughput one t per enabled cycle; no backpressure of its own (the owner's en stalls it).
    """

    def __init__(self, cfg):
        self.fmt = fmt = cfg.formats
        super().__init__({
            "en": In(1),
            "t": In(unsigned(fmt.score_bits + 1)),
            "mant": In(unsigned(fmt.scale_bits)),
            "shift": In(unsigned(fmt.scale_shift_bits)),
            "p": Out(unsigned(fmt.p_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, en = self.fmt, self.en
        E, ub = fmt.exp_frac_bits, fmt.u_bits
        assert fmt.u_max < 1 << ub

        m.submodules.mul = mul = MulPipe(len(self.t), fmt.scale_bits)
        m.d.comb += [mul.en.eq(en), mul.a.eq(self.t), mul.b.eq(self.mant)]
        prod = mul.p

        # u = clamp(round_half_up(prod / 2**r), u_max), r = shift - E in [0, SCALE_SHIFT_MAX - E]: the shift
        # (w = prod / 2**(r - 1)), then the add; a w beyond ub + 1 bits saturates u anyway
        r = Signal(6)
        m.d.sync += r.eq(self.shift - E)                # static per job
        w = Signal(len(prod) + 1)
        m.d.comb += w.eq(table_shift_start(prod, r))
        w_lo, w_hi, w_rounds = Signal(ub + 1), Signal(), Signal()
        with m.If(en):
            m.d.sync += [w_lo.eq(w[:ub + 1]), w_hi.eq(w[ub + 1:].any()), w_rounds.eq(r != 0)]
        u = Signal(ub)
        m.d.comb += u.eq(Mux(w_hi, fmt.u_max,
                             clamp_max(table_shift_finish(w_lo, w_rounds), fmt.u_max)))

        # table lookup (a ROM of 2**E entries), then the rounded shift by n = u >> E
        tab = Signal(fmt.p_bits)
        with m.Switch(u[:E]):
            for f, value in enumerate(fmt.exp2_table):
                with m.Case(f):
                    m.d.comb += tab.eq(value)
        tab_r, n_r = Signal(fmt.p_bits), Signal(ub - E)
        with m.If(en):
            m.d.sync += [tab_r.eq(tab), n_r.eq(u[E:])]
        with m.If(en):
            m.d.sync += self.p.eq(table_shift(m, tab_r, n_r, name="tab_w"))
        return m
