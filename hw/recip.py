"""Reciprocal unit: the normalised reciprocal of a row sum l, by a restoring divider.

Model: :mod:`golden.recip` (bit-exact): n = bit_length(l), r = floor(2**(n - 1 + R) / l).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

__all__ = ["Reciprocal", "recip_latency"]


def recip_latency(cfg) -> int:
    """Cycles from ``start`` to ``done`` of :class:`Reciprocal`: R + 2."""
    return cfg.recip_bits + 2


class Reciprocal(wiring.Component):
    """Sequential reciprocal: r = floor(2**(n-1+R) / l) and the shift n - 1 + R.

    Ports
        start   In: load ``l`` (>= 1; l = 0 gives r = all ones, flagged by ``zero``) and begin.
        l       In: the row sum, ``l_bits``.
        busy    Out: high while dividing; done Out: one-cycle pulse when r and shift are valid.
        r       Out: ``recip_bits + 1`` bits, in [2**(R-1), 2**R]; held until the next start.
        shift   Out: n - 1 + R; zero Out: l was 0.
    Latency: R + 2 cycles from start to done (normalise, then R + 1 quotient bits, one per cycle).
    Throughput: one reciprocal per R + 2 cycles; a start while busy restarts the unit.
    """

    def __init__(self, cfg):
        self.fmt = fmt = cfg.formats
        super().__init__({
            "start": In(1),
            "l": In(unsigned(fmt.l_bits)),
            "busy": Out(1),
            "done": Out(1),
            "r": Out(unsigned(fmt.recip_bits + 1)),
            "shift": Out(unsigned_bits(fmt.l_bits - 1 + fmt.recip_bits)),
            "zero": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        L, R = fmt.l_bits, fmt.recip_bits

        # leading one of l: n - 1 = position of the highest set bit
        top = Signal(range(L))
        for i in range(L):
            with m.If(self.l[i]):
                m.d.comb += top.eq(i)

        ln = Signal(L)                       # l normalised: leading one at bit L - 1
        rem = Signal(L + 1)
        step = Signal(range(R + 2))
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [
                ln.eq(self.l << (L - 1 - top)[:len(top)]),
                rem.eq(1 << (L - 1)),
                self.r.eq(0),
                self.shift.eq(top + R),
                self.zero.eq(self.l == 0),
                step.eq(R + 1),
                self.busy.eq(1),
            ]
        with m.Elif(self.busy):
            # quotient bit step - 1: compare, subtract, shift the remainder for the next bit
            ge = Signal()
            diff = Signal(L + 1)
            m.d.comb += [ge.eq(rem >= ln), diff.eq(Mux(ge, rem - ln, rem))]
            m.d.sync += [
                self.r.eq((self.r << 1) | ge),
                rem.eq(diff << 1),
                step.eq(step - 1),
            ]
            with m.If(step == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
