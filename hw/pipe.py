"""Pipeline registers.

:class:`StreamRegister`: a skid buffer between a producer and a consumer, so that no logic
of the one shares a clock cycle with logic of the other, not even the ready signal: ``i`` -> ``o``. Latency one cycle; throughput one transfer per cycle
while ``o`` is ready. Backpressure is registered: ``i.ready`` is a flip-flop (the second, skid
entry is empty), so ``o.ready`` reaches no logic of the producer in the same cycle; a transfer
that arrives while ``o`` stalls waits in the skid entry and leaves right after the first.

:class:`CopyRegister`: one copy of a register that many lanes read, for a group of them (a
register per group instead of one driving every lane). Each copy is its own module, so synthesis
does not merge the copies back into one (Yosys merges equal registers within a module).

:class:`StreamFIFO`: Amaranth's buffered FIFO between two streams of any payload shape.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["StreamRegister", "STREAM_REGISTER_LATENCY", "CopyRegister", "StreamFIFO"]

#: cycles a transfer spends in a :class:`StreamRegister` while its output is ready
STREAM_REGISTER_LATENCY = 1


class StreamRegister(wiring.Component):
    def __init__(self, payload_shape):
        super().__init__({"i": In(stream.Signature(payload_shape)),
                          "o": Out(stream.Signature(payload_shape))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self.i.payload.shape(), name="skid")
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            # the output register loads: the skid entry first, else the input
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid),
                         self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         skid_valid.eq(0)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class CopyRegister(wiring.Component):
    """``o`` = ``i`` a cycle later, loading while ``en``. Latency one cycle; no backpressure."""

    def __init__(self, shape):
        super().__init__({"en": In(1), "i": In(shape), "o": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.o.eq(self.i)
        return m


class StreamFIFO(wiring.Component):
    """``i`` -> ``depth`` entries, first in first out -> ``o``: Amaranth's ``SyncFIFOBuffered``
    through its ``w_stream`` / ``r_stream``, whose payloads are plain bits; the payload shape
    (a layout) is cast here, so users join it with ``wiring.connect``. Latency one cycle (the
    buffered FIFO's output register); ``i.ready`` while an entry is free.
    """

    def __init__(self, payload_shape, depth: int):
        self.depth = depth
        super().__init__({"i": In(stream.Signature(payload_shape)),
                          "o": Out(stream.Signature(payload_shape))})

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=self.depth)
        w, r = fifo.w_stream, fifo.r_stream
        m.d.comb += [w.valid.eq(self.i.valid), w.payload.eq(Value.cast(self.i.payload)),
                     self.i.ready.eq(w.ready),
                     self.o.valid.eq(r.valid), Value.cast(self.o.payload).eq(r.payload),
                     r.ready.eq(self.o.ready)]
        return m
