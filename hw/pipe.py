"""A stream pipeline register: one entry between a producer and a consumer, so that no logic
of the one shares a clock cycle with logic of the other.

:class:`StreamRegister`: ``i`` -> ``o``. Latency one cycle; throughput one transfer per cycle
while ``o`` is ready (``i.ready`` = register empty or ``o.ready``); backpressure passes through
combinationally (``o.ready`` -> ``i.ready``, one gate).
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamRegister", "STREAM_REGISTER_LATENCY"]

#: cycles a transfer spends in a :class:`StreamRegister`
STREAM_REGISTER_LATENCY = 1


class StreamRegister(wiring.Component):
    def __init__(self, payload_shape):
        super().__init__({"i": In(stream.Signature(payload_shape)),
                          "o": Out(stream.Signature(payload_shape))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m
