"""Network interface: words {dst, data, last} <-> flits, between a node and its router's L port.

Ports
    inject       In stream :func:`~hw.noc.flit.inject_layout` {dst, data, last} from the node.
    eject        Out stream :func:`~hw.noc.flit.eject_layout` {src, data, last} to the node.
    to_router    Out stream of flits to the router's ``i[L]``.
    from_router  In stream of flits from the router's ``o[L]``.

Packetizer: each inject word becomes one flit. A packet starts at the first word after a packet
end; it ends at a word with ``last`` or at its ``max_packet_flits``-th word, whichever comes first
(a longer message arrives as several packets, each ending with ``last`` = 1). Kind: HEAD / BODY /
TAIL, or SINGLE for a one-word packet. Header: ``dst`` of the word (routers read it from the head
flit only, so ``dst`` of later words does not matter), ``src`` = this node.

Depacketizer: each flit becomes one eject word; ``last`` = the flit is a tail (or single);
``src`` comes from the head flit and is held for the rest of the packet.

Latency: 0 cycles both ways (combinational). Throughput: one word per cycle each way.
Backpressure: passes straight through (``inject.ready`` is the router's input-FIFO-not-full,
``from_router.ready`` is ``eject.ready``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .flit import (coord_layout, eject_layout, flit_layout, inject_layout, is_head, is_tail,
                   kind_value)

__all__ = ["NetworkInterface"]


class NetworkInterface(wiring.Component):
    """The NI of node (x, y) of the mesh ``cfg`` (a :class:`star.spec.noc_config.NocConfig`)."""

    def __init__(self, cfg, x: int, y: int):
        self.cfg, self.x, self.y = cfg, x, y
        flits = stream.Signature(flit_layout(cfg))
        super().__init__({
            "inject": In(stream.Signature(inject_layout(cfg))),
            "eject": Out(stream.Signature(eject_layout(cfg))),
            "to_router": Out(flits),
            "from_router": In(flits),
        })

    def elaborate(self, platform):
        m = Module()
        word, flit = self.inject.payload, self.to_router.payload
        # words of this packet sent (at least 1 bit: Verilog cannot declare a zero-width signal)
        count = Signal(range(max(2, self.cfg.max_packet_flits)), name="count")
        first = count == 0
        last = word.last | (count == self.cfg.max_packet_flits - 1)
        m.d.comb += [
            self.to_router.valid.eq(self.inject.valid),
            self.inject.ready.eq(self.to_router.ready),
            flit.kind.as_value().eq(kind_value(first, last)),
            flit.dst.eq(word.dst),
            flit.src.x.eq(self.x),
            flit.src.y.eq(self.y),
            flit.data.eq(word.data),
        ]
        with m.If(self.inject.valid & self.inject.ready):
            m.d.sync += count.eq(Mux(last, 0, count + 1))

        got, out = self.from_router.payload, self.eject.payload
        src = Signal(coord_layout(self.cfg), name="src")   # the src of the packet's head flit
        m.d.comb += [
            self.eject.valid.eq(self.from_router.valid),
            self.from_router.ready.eq(self.eject.ready),
            out.src.eq(Mux(is_head(got), got.src, src)),
            out.data.eq(got.data),
            out.last.eq(is_tail(got)),
        ]
        with m.If(self.from_router.valid & self.from_router.ready & is_head(got)):
            m.d.sync += src.eq(got.src)
        return m
