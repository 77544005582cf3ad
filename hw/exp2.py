"""exp2 unit: the softmax weight p = 2**(-(m - s)·c) of a score difference, pipelined.

Model: :mod:`golden.exp2` (bit-exact; error bound there and in docs/formats.md). Both rounded
shifts are :func:`hw.rules.table_shift` (a shift of 0 adds no rounding term), the saturation
at ``u_max`` is :func:`hw.rules.clamp_max`.
"""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


from .rules import clamp_max, table_shift

__all__ = ["Exp2Unit", "exp2_latency"]


def exp2_latency(cfg) -> int:
    """Enabled cycles from ``t`` to ``p`` of :class:`Exp2Unit`: 3 (its three stages)."""
    return 3


class Exp2Unit(wiring.Component):
    """p = round_half_up(table[u mod 2**E] / 2**(u >> E)), u = sat(round_half_up(t·mant >> (shift-E))).

    Ports
        en      In: advance the pipeline (all registers load only while en is high).
        t       In: score difference m - s >= 0, ``score_bits + 1`` bits.
        mant    In: score-scale mantissa; shift In: score-scale shift (in [E, 63]; static per job).
        p       Out: the weight, ``p_bits`` (1.0 = 2**P), ``exp2_latency(cfg)`` = 3 enabled
                cycles after t.
    Stages: t·mant | rounded variable shift and saturation | table lookup and rounded shift.
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
        fmt = self.fmt
        E = fmt.exp_frac_bits

        prod = Signal(len(self.t) + fmt.scale_bits)
        with m.If(self.en):
            m.d.sync += prod.eq(self.t * self.mant)

        # u = round_half_up(prod / 2**r), r = shift - E in [0, 63 - E]; then saturate at u_max
        r = Signal(6)
        m.d.comb += r.eq(self.shift - E)
        rounded = Signal(len(prod) + 1)
        m.d.comb += rounded.eq(table_shift(m, prod, r, name="half"))
        u = Signal(fmt.u_bits)
        with m.If(self.en):
            m.d.sync += u.eq(clamp_max(rounded, fmt.u_max))

        # table lookup (a ROM of 2**E entries) and rounded shift by n = u >> E
        tab = Signal(fmt.p_bits)
        with m.Switch(u[:E]):
            for f, value in enumerate(fmt.exp2_table):
                with m.Case(f):
                    m.d.comb += tab.eq(value)
        n = Signal(fmt.u_bits - E)
        m.d.comb += n.eq(u[E:])
        p = table_shift(m, tab, n, name="tab_half")
        with m.If(self.en):
            m.d.sync += self.p.eq(p)
        return m
