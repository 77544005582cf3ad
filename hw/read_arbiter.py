"""Read arbiter of the STAR core: three requesters share the AXI read channel, one row each.

Requesters, by priority: V (the union fetch, ``hw/vfetch.py``), K (the tile front,
``hw/front.py``), Q (the controller). Each gives {addr, idx, last}; the arbiter adds its
``dest`` to the tag (:func:`tag_layout`) so the read response can be routed back. A request
presented and not taken keeps the channel (AXI: AR stays stable), so a lower-priority requester
is never cut off mid-handshake. Combinational, no latency; a requester is granted in the cycle
its ``valid`` and the channel's ``ready`` meet. Backpressure: ``out.ready``.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

from star.spec.regmap import ADDR_BITS

from .layouts import read_request_layout

__all__ = ["ReadArbiter", "DEST_Q", "DEST_K", "DEST_V", "request_layout", "tag_layout"]

DEST_Q, DEST_K, DEST_V = 0, 1, 2


def _idx_bits(cfg) -> int:
    lb = cfg.formats.log2_tile
    return max(unsigned_bits(max(cfg.lanes - 1, 1)), lb + 1)


def request_layout(cfg) -> data.StructLayout:
    """A requester's row read: byte address, ``idx`` (Q: lane; K, V: slot·tile + key), and
    ``last`` (the tile's last row)."""
    return data.StructLayout({"addr": ADDR_BITS, "idx": _idx_bits(cfg), "last": 1})


def tag_layout(cfg) -> data.StructLayout:
    """The tag a read carries through ``hw/axi.py``: the requester and its idx, last."""
    return data.StructLayout({"dest": 2, "idx": _idx_bits(cfg), "last": 1})


class ReadArbiter(wiring.Component):
    """Ports: ``q``, ``k``, ``v`` In stream :func:`request_layout`; ``out`` Out stream {addr, tag}
    (the ``rd_req`` of :class:`hw.axi.AxiRowMaster`)."""

    def __init__(self, cfg):
        self.cfg = cfg
        req = stream.Signature(request_layout(cfg))
        self.tag = tag_layout(cfg)
        super().__init__({"q": In(req), "k": In(req), "v": In(req),
                          "out": Out(stream.Signature(read_request_layout(self.tag.size)))})

    def elaborate(self, platform):
        m = Module()
        ports = {DEST_Q: self.q, DEST_K: self.k, DEST_V: self.v}
        sel, held, held_dest = Signal(2), Signal(), Signal(2)
        for dest, port in ports.items():             # the last assignment wins: V first
            with m.If(port.valid):
                m.d.comb += sel.eq(dest)
        with m.If(held):
            m.d.comb += sel.eq(held_dest)
        tag = Signal(self.tag)
        m.d.comb += self.out.payload.tag.eq(tag)
        for dest, port in ports.items():
            with m.If(sel == dest):
                m.d.comb += [self.out.valid.eq(port.valid),
                             self.out.payload.addr.eq(port.payload.addr),
                             tag.dest.eq(dest), tag.idx.eq(port.payload.idx),
                             tag.last.eq(port.payload.last),
                             port.ready.eq(self.out.ready)]
        m.d.sync += [held.eq(self.out.valid & ~self.out.ready), held_dest.eq(sel)]
        return m
