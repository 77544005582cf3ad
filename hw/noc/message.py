"""Wide fixed-width messages over the NoC's NI word streams: a serializer and a deserializer.

A message of ``width`` bits travels as n = ceil(width / flit_bits) words, least-significant
flit_bits first; the last word is zero-padded and carries ``last`` = 1. The NI cuts a message
longer than ``max_packet_flits`` words into several packets; the Deserializer counts words, so it
reassembles them as long as only this one sender's messages reach its node (packets from one
source to one destination arrive in order, but packets from different sources interleave).
"""

from __future__ import annotations

from amaranth import Cat, Module, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..shared import refuse
from .flit import eject_layout, inject_layout

__all__ = ["Serializer", "Deserializer"]


def _width(component, payload) -> int:
    """The width of a message shape: an int (plain bits) or a layout (for *component*'s
    constructor, which refuses anything else and an empty message)."""
    ok = not isinstance(payload, (bool, float))
    try:
        width = Shape.cast(payload).width if ok else 0
    except TypeError:
        width = 0
    if width < 1:
        raise refuse(component, ValueError(
            f"width (the message shape) must be an int >= 1 or a layout, not {payload!r}"))
    return width


class Serializer(wiring.Component):
    """Send messages of shape ``payload`` (an int: plain bits, or a layout), ``width`` bits, as
    n inject words to the constant node ``dst`` = (x, y).

    Ports
        i   In stream of ``payload`` messages.
        o   Out stream :func:`~hw.noc.flit.inject_layout` {dst, data, last}: word j of a message
            has data = message bits [j·flit_bits, (j+1)·flit_bits) (zero above ``width``),
            last = (j == n - 1) and dst = ``dst`` on every word.
    Latency: 1 cycle from a message's transfer on i to its first word valid on o.
    Throughput: one word per cycle: n cycles per message, back-to-back with no bubble.
    Backpressure: a held message shifts out one word per o transfer; o.valid is a register
    (it does not depend on o.ready). i.ready = no message held, or the last word is being taken
    this cycle (so i.ready depends combinationally on o.ready, not on i.valid).
    """

    def __init__(self, noc_cfg, payload, dst: tuple[int, int]):
        width = _width(self, payload)
        self.words = -(-width // noc_cfg.flit_bits)
        x, y = dst
        if not (0 <= x < noc_cfg.cols and 0 <= y < noc_cfg.rows):
            raise refuse(self, ValueError(f"dst must be a node (x, y) of the "
                                          f"{noc_cfg.cols}x{noc_cfg.rows} mesh, not {dst!r}"))
        self.noc_cfg, self.width, self.dst = noc_cfg, width, (x, y)
        super().__init__({
            "i": In(stream.Signature(payload)),
            "o": Out(stream.Signature(inject_layout(noc_cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        fb, n = self.noc_cfg.flit_bits, self.words
        buf = Signal(n * fb, name="buf")                  # held message, next word lowest
        count = Signal(range(max(2, n)), name="count")    # words of it already sent
        full = Signal(name="full")
        last = count == n - 1
        take = self.o.valid & self.o.ready
        word = self.o.payload
        m.d.comb += [
            self.o.valid.eq(full),
            word.dst.x.eq(self.dst[0]),
            word.dst.y.eq(self.dst[1]),
            word.data.eq(buf[:fb]),
            word.last.eq(last),
            self.i.ready.eq(~full | (take & last)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(Value.cast(self.i.payload)), count.eq(0), full.eq(1)]
        with m.Elif(take):
            m.d.sync += buf.eq(buf >> fb)
            with m.If(last):
                m.d.sync += [count.eq(0), full.eq(0)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return m


class Deserializer(wiring.Component):
    """Collect every n eject words into one message of shape ``payload`` (an int: plain bits,
    or a layout), ``width`` bits.

    Ports
        i   In stream :func:`~hw.noc.flit.eject_layout` {src, data, last}: a message is the next
            n words (``src`` and ``last`` are ignored; word n - 1 of a Serializer's message
            carries last = 1). Data bits above ``width`` in the last word are dropped.
        o   Out stream of ``payload`` messages; valid held, payload stable, until taken.
    Latency: 1 cycle from the transfer of a message's n-th word to o.valid.
    Throughput: one word per cycle: n cycles per message, back-to-back with no bubble while o is
    taken in the cycle it becomes valid.
    Backpressure: words shift into one n·flit_bits register. i.ready = ~o.valid | o.ready: words
    are taken while no message waits, and the next message's first word in the cycle the waiting
    one is taken (i.ready depends combinationally on o.ready, not on i.valid); o.valid is a
    register.
    """

    def __init__(self, noc_cfg, payload):
        width = _width(self, payload)
        self.words = -(-width // noc_cfg.flit_bits)
        self.noc_cfg, self.width = noc_cfg, width
        super().__init__({
            "i": In(stream.Signature(eject_layout(noc_cfg))),
            "o": Out(stream.Signature(payload)),
        })

    def elaborate(self, platform):
        m = Module()
        fb, n = self.noc_cfg.flit_bits, self.words
        buf = Signal(n * fb, name="buf")                  # words enter at the top, word 0 ends lowest
        count = Signal(range(max(2, n)), name="count")    # words of the message received
        full = Signal(name="full")
        m.d.comb += [
            self.o.valid.eq(full),
            Value.cast(self.o.payload).eq(buf[:self.width]),
            self.i.ready.eq(~full | self.o.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += buf.eq(Cat(buf[fb:], self.i.payload.data))
            with m.If(count == n - 1):
                m.d.sync += [count.eq(0), full.eq(1)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return m
