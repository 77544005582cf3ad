"""Fixed turns at a shared unit: n users, one turn each in every n cycles (time-division).

Used by :class:`hw.sufa.SufaEngine` for the exp2 unit that ``exp_group(cfg)`` lanes share
(``hw/sufa_lane.py``). No request and no grant: user j's turn is every cycle whose turn counter
is j, so a user that needs the unit at the same phase of a period that n divides always meets
its turn, and any other waits at most n - 1 cycles (the worst case, proved in
tests/test_formal.py). A user drives its ``i`` only in its turn (zero otherwise); the unit's
input ``o`` is the OR of them, registered: latency one cycle, no backpressure.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .arith import reduce_tree

__all__ = ["Turns", "TURNS_LATENCY"]

#: cycles from a user's ``i`` in its turn to ``o``
TURNS_LATENCY = 1


class Turns(wiring.Component):
    """Ports: ``turn`` Out(n), one-hot, user j's bit in its turn; ``i`` In, one value per user
    (zero outside its turn); ``o`` Out, the OR of ``i`` a cycle later (``TURNS_LATENCY``)."""

    def __init__(self, shape, n: int):
        if n < 1:
            raise ValueError(f"Turns: n must be at least 1, not {n}")
        self.n = n
        super().__init__({"turn": Out(n), "i": In(data.ArrayLayout(shape, n)),
                          "o": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        if n == 1:
            m.d.comb += self.turn.eq(1)
        else:
            count = Signal(range(n), name="turn_count")
            m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
            m.d.comb += [self.turn[j].eq(count == j) for j in range(n)]
        m.d.sync += self.o.eq(reduce_tree(m, [self.i[j] for j in range(n)],
                                          lambda a, b: a | b, "turn_or"))
        return m
