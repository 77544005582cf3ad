"""A 5-port wormhole mesh router with XY dimension-order routing.

Ports
    i[p]    In stream of flits (:func:`hw.noc.flit.flit_layout`) from neighbour p.
    o[p]    Out stream of flits to neighbour p.
    p = :class:`Port`: N, E, S, W (neighbours) and L (the local NI). A port facing off the mesh
    has no logic: its ``i.ready`` and ``o.valid`` are 0.

Pipeline (one stage per hop)
    input FIFO (``amaranth.lib.fifo.SyncFIFO``, ``fifo_depth`` flits, read combinationally) ->
    route computation on the head flit at the FIFO output -> per-output round-robin arbiter ->
    crossbar -> output port, which feeds the next router's input FIFO directly.

Routing
    XY: a head flit goes east/west until its column equals ``dst.x``, then north/south until its
    row equals ``dst.y``, then out of L. A destination beyond the mesh edge is clamped to it (the
    flit leaves at the edge node). XY never turns from y back to x, so the crossbar only has the
    legal turns: E and W outputs take flits from the opposite side and L; N and S outputs from the
    opposite side, E, W and L; L from all five inputs (a node may send to itself).

Arbitration
    Per output, a round-robin arbiter over the inputs whose head flit wants it; the winner holds
    the output until its tail flit has passed (wormhole), and the pointer then moves past it. A
    grant made while the output is not ready is kept, so an offered flit stays on ``o`` until it
    is taken (stream rule).

Latency: 1 cycle per hop for every flit: a flit written into an input FIFO at a clock edge can
leave through the crossbar in the next cycle and be written into the next router's FIFO at the
edge after (arbitration is combinational, so head flits are not delayed).
Throughput: one flit per cycle on every output at once (with ``fifo_depth`` ≥ 2).
Backpressure: ``i.ready`` is "input FIFO not full", a registered condition; a blocked packet stays
in the FIFOs along its path. No ready or valid path is combinational through a router, so the
longest path is one router: FIFO read, route, arbiter, crossbar, next FIFO write.
"""

from __future__ import annotations

import enum

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .flit import flit_layout, is_head, is_tail

__all__ = ["Port", "Router", "output_sources"]


class Port(enum.IntEnum):
    """Router port index: the four mesh directions and the local NI."""

    N = 0
    E = 1
    S = 2
    W = 3
    L = 4


# Inputs that may reach each output under XY routing (input p = flits arriving from neighbour p).
_XY_SOURCES = {
    Port.N: (Port.S, Port.E, Port.W, Port.L),
    Port.E: (Port.W, Port.L),
    Port.S: (Port.N, Port.E, Port.W, Port.L),
    Port.W: (Port.E, Port.L),
    Port.L: (Port.N, Port.E, Port.S, Port.W, Port.L),
}


def output_sources(cfg, x: int, y: int) -> dict[Port, tuple[Port, ...]]:
    """Return, per output port of router (x, y) that faces a node, the inputs it can take flits
    from (inputs facing off the mesh are left out)."""
    present = {Port.N: y > 0, Port.S: y < cfg.rows - 1, Port.W: x > 0,
               Port.E: x < cfg.cols - 1, Port.L: True}
    return {o: tuple(i for i in srcs if present[i])
            for o, srcs in _XY_SOURCES.items() if present[o]}


class Router(wiring.Component):
    """The router at column ``x``, row ``y`` of the mesh ``cfg`` (a
    :class:`star.spec.noc_config.NocConfig`).

    Raises
        ValueError  when (x, y) is not a node of the mesh.
    """

    def __init__(self, cfg, x: int, y: int):
        if not (0 <= x < cfg.cols and 0 <= y < cfg.rows):
            raise ValueError(f"router position (x, y) must be in the {cfg.rows}×{cfg.cols} mesh "
                             f"(rows × cols), not ({x}, {y})")
        self.cfg, self.x, self.y = cfg, x, y
        sig = stream.Signature(flit_layout(cfg))
        super().__init__({"i": In(sig).array(len(Port)), "o": Out(sig).array(len(Port))})

    def _route(self, m: Module, p: Port, flit, outputs) -> dict[Port, Signal]:
        """Return whether the flit at input p wants each of ``outputs`` (XY), one signal each."""
        cfg, x, y = self.cfg, self.x, self.y
        east = flit.dst.x > x if x < cfg.cols - 1 else 0   # an edge compare is constant: clamp
        west = flit.dst.x < x if x > 0 else 0
        south = flit.dst.y > y if y < cfg.rows - 1 else 0
        north = flit.dst.y < y if y > 0 else 0
        x_done = ~(east | west)
        want = {Port.E: east, Port.W: west, Port.S: x_done & south, Port.N: x_done & north,
                Port.L: x_done & ~(south | north)}
        out = {}
        for o in outputs:
            out[o] = Signal(name=f"want_{p.name}_{o.name}")
            m.d.comb += out[o].eq(want[o])
        return out

    def elaborate(self, platform):
        m = Module()
        layout = flit_layout(self.cfg)
        sources = output_sources(self.cfg, self.x, self.y)
        heads, want, read = {}, {}, {}
        for p in sorted({i for srcs in sources.values() for i in srcs}):
            q = fifo.SyncFIFO(width=layout.size, depth=self.cfg.fifo_depth)
            m.submodules[f"fifo_{p.name}"] = q
            m.d.comb += [q.w_data.eq(self.i[p].payload), q.w_en.eq(self.i[p].valid),
                         self.i[p].ready.eq(q.w_rdy)]
            heads[p] = (q.r_rdy, layout(q.r_data))
            want[p] = self._route(m, p, heads[p][1], [o for o in sources if p in sources[o]])
            read[p] = q.r_en
        taken = {p: [] for p in heads}   # per input: "output o takes its flit now", for each o
        for o, srcs in sources.items():
            req = [heads[p][0] & is_head(heads[p][1]) & want[p][o] for p in srcs]
            held, sel = self._arbiter(m, o, req, [is_tail(heads[p][1]) for p in srcs])
            with m.Switch(sel):
                for k, p in enumerate(srcs):
                    with m.Case(k):
                        valid, flit = heads[p]
                        m.d.comb += [self.o[o].valid.eq(Mux(held, valid, req[k])),
                                     self.o[o].payload.eq(flit)]
            for k, p in enumerate(srcs):
                taken[p].append((sel == k) & self.o[o].valid & self.o[o].ready)
        for p, terms in taken.items():
            m.d.comb += read[p].eq(Cat(*terms).any())
        return m

    def _arbiter(self, m: Module, o: Port, req: list, tail: list) -> tuple[Signal, Signal]:
        """Build the round-robin, packet-holding arbiter of output o; return (held, sel).

        ``req[k]``: source k offers a head flit that wants o; ``tail[k]``: source k's current flit
        is a tail. ``held``: a packet owns o and ``sel`` is its source; otherwise ``sel`` is the
        round-robin winner of ``req`` (any source when none requests).
        """
        n = len(req)
        index = range(max(n, 2))      # no zero-width signals (Verilog cannot declare them)
        held = Signal(name=f"held_{o.name}")
        owner = Signal(index, name=f"owner_{o.name}")
        last = Signal(index, init=n - 1, name=f"last_{o.name}")   # source of the last packet
        grant = Signal(index, name=f"grant_{o.name}")
        sel = Signal(index, name=f"sel_{o.name}")
        with m.Switch(last):
            for lp in range(n):
                with m.Case(lp):
                    # priority lp+1, lp+2, ...: the last assignment made wins, so go backwards
                    for j in reversed(range(n)):
                        k = (lp + 1 + j) % n
                        with m.If(req[k]):
                            m.d.comb += grant.eq(k)
        m.d.comb += sel.eq(Mux(held, owner, grant))
        with m.If(~held & Cat(*req).any()):
            m.d.sync += [held.eq(1), owner.eq(grant)]
        with m.If(self.o[o].valid & self.o[o].ready):
            with m.Switch(sel):
                for k in range(n):
                    with m.Case(k):
                        with m.If(tail[k]):
                            m.d.sync += [held.eq(0), last.eq(k)]
        return held, sel
