"""An R×C mesh of routers, each with its network interface: one word stream pair per node.

Ports
    inject[y][x]  In stream :func:`~hw.noc.flit.inject_layout` {dst, data, last}: words node (x, y)
                  sends (Verilog ``inject__<y>__<x>__{valid,ready,payload}``).
    eject[y][x]   Out stream :func:`~hw.noc.flit.eject_layout` {src, data, last}: words node (x, y)
                  receives.

Router (x, y) links its E port to router (x+1, y)'s W port and its S port to router (x, y+1)'s N
port, both ways; ports facing off the mesh stay unconnected.

Delivery: every packet reaches ``dst`` (clamped to the mesh) along its XY path; the words of a
packet arrive contiguously and in order, and packets from one source to one destination arrive in
the order they were sent. Packets from different sources interleave packet by packet.
Latency: H + 1 cycles from a head word's inject transfer to its eject transfer at zero load,
H = |dx| + |dy| hops (one cycle per router on the path, including the source's); a packet of n
words ends n - 1 cycles later.
Throughput: one word per cycle per node each way, and per link each way; the mesh saturates below
that under contention (see docs/noc.md for measured figures).
Backpressure: a stalled ``eject`` fills the FIFOs back along the paths leading to it; ``inject``
is ready while the source router's L input FIFO has room. XY routing on a mesh is deadlock-free,
so every packet is delivered as long as every node keeps taking its eject words.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .flit import eject_layout, inject_layout
from .ni import NetworkInterface
from .router import Port, Router

__all__ = ["Mesh"]


class Mesh(wiring.Component):
    """The mesh of ``cfg`` (a :class:`star.spec.noc_config.NocConfig`)."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "inject": In(stream.Signature(inject_layout(cfg))).array(cfg.rows, cfg.cols),
            "eject": Out(stream.Signature(eject_layout(cfg))).array(cfg.rows, cfg.cols),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        routers = {}
        for y in range(cfg.rows):
            for x in range(cfg.cols):
                r = routers[x, y] = m.submodules[f"router_{y}_{x}"] = Router(cfg, x, y)
                ni = m.submodules[f"ni_{y}_{x}"] = NetworkInterface(cfg, x, y)
                wiring.connect(m, wiring.flipped(self.inject[y][x]), ni.inject)
                wiring.connect(m, ni.eject, wiring.flipped(self.eject[y][x]))
                wiring.connect(m, ni.to_router, r.i[Port.L])
                wiring.connect(m, r.o[Port.L], ni.from_router)
        for (x, y), r in routers.items():
            if x + 1 < cfg.cols:
                wiring.connect(m, r.o[Port.E], routers[x + 1, y].i[Port.W])
                wiring.connect(m, routers[x + 1, y].o[Port.W], r.i[Port.E])
            if y + 1 < cfg.rows:
                wiring.connect(m, r.o[Port.S], routers[x, y + 1].i[Port.N])
                wiring.connect(m, routers[x, y + 1].o[Port.N], r.i[Port.S])
        return m
