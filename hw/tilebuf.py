"""Tile store: two tiles of K (or V) rows, or the lanes' query rows, read by the SU-FA lanes a
chunk at a time.

A lane with P = ``sufa_macs`` multipliers walks a row in G = head_dim / P chunks of P elements,
one chunk per cycle. The store keeps chunk c of every row in bank c (G banks of P elements,
``depth`` rows: by default ``SLOTS`` · tile, slot s, key i at address s·tile + i). Lane t reads bank
(ph - t) mod G in the cycle where the store's free-running phase counter is ph, so at any
cycle the lanes that share a bank are those with equal t mod G: each bank needs
R = ``sufa_ports`` = ceil(lanes / G) read ports, and the store as a whole R full-row ports'
worth of bandwidth (lanes · P / head_dim rows per cycle), never one port per lane. A lane that
keeps its row address for G consecutive cycles receives all G chunks of the row in rotated
order, whichever cycle it starts: the sums a lane forms over the chunks (q·k, and o[e] += p·v[e]
per element) do not depend on the order, so no lane ever waits for a slot and none can starve.

Ports
    w_en, w_addr, w_row     In: write a whole row (all banks) at ``w_addr``.
    rd[T]                   per lane a :class:`StoreRead`: ``addr`` In, the row address it
                            reads this cycle; ``chunk`` Out, the chunk read in the previous
                            cycle (its index c, elements c·P .. c·P + P - 1 of the row, was
                            that cycle's ``phase``); ``phase`` Out, the index of the chunk its
                            ``addr`` reads this cycle.
Latency one cycle (synchronous read ports); throughput one chunk per lane per cycle; no
backpressure. A write and a read of the same address in one cycle return the old row.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

__all__ = ["TileStore", "SLOTS", "rotate", "StoreRead", "SlotReturn", "count_returns"]

SLOTS = 2          # tiles a store holds (the K store: read ahead; the V store: fetched ahead)


class StoreRead(wiring.Signature):
    """One lane's read port of a :class:`TileStore`, seen from the lane: ``addr`` Out (the row
    it reads this cycle), ``chunk`` In (the chunk read in the previous cycle), ``phase`` In (the
    index of the chunk ``addr`` reads this cycle)."""

    def __init__(self, cfg, depth: int | None = None):
        fmt = cfg.formats
        depth = SLOTS * cfg.tile if depth is None else depth
        super().__init__({
            "addr": Out(unsigned_bits(depth - 1)),
            "chunk": In(data.ArrayLayout(signed(cfg.data_bits), fmt.sufa_macs)),
            "phase": In(unsigned_bits(max(fmt.sufa_chunks - 1, 1))),
        })


class SlotReturn(wiring.Signature):
    """A lane's return of a store's tile slots, seen from the lane: ``pend`` Out (the lane is
    done with a tile the store has not freed yet), ``release`` In (the store freed its oldest
    tile: every lane had ``pend``). The lane counts its done tiles, so ``pend`` never hides a
    second one."""

    def __init__(self):
        super().__init__({"pend": Out(1), "release": In(1)})


def count_returns(m: Module, port, done) -> None:
    """Drive a lane's :class:`SlotReturn` ``port``: count the tiles the lane is done with (a
    ``done`` pulse each) that the store has not released, ``pend`` while any is left."""
    left = Signal(range(SLOTS + 1), name="done")
    m.d.sync += left.eq(left + done - port.release)
    m.d.comb += port.pend.eq(left != 0)


def rotate(m: Module, items: list, amount, name: str) -> list:
    """``out[c] = items[(c - amount) mod n]`` for n = len(items) a power of two: a barrel
    rotator, log2(n) levels of 2:1 multiplexers (n·log2(n) instead of an n:1 multiplexer per
    output)."""
    n = len(items)
    for s in range(n.bit_length() - 1):
        step = 1 << s
        nxt = [Signal.like(items[c], name=f"{name}_r{s}_{c}") for c in range(n)]
        m.d.comb += [nxt[c].eq(Mux(amount[s], items[(c - step) % n], items[c]))
                     for c in range(n)]
        items = nxt
    return items


class TileStore(wiring.Component):
    """``depth`` rows (default ``SLOTS`` tiles); see the module docstring."""

    def __init__(self, cfg, depth: int | None = None):
        self.cfg = cfg
        self.fmt = cfg.formats
        T, d, b = cfg.lanes, cfg.head_dim, cfg.data_bits
        self.depth = SLOTS * cfg.tile if depth is None else depth
        self.addr_bits = unsigned_bits(self.depth - 1)
        super().__init__({
            "w_en": In(1), "w_addr": In(self.addr_bits),
            "w_row": In(data.ArrayLayout(signed(b), d)),
            "rd": In(StoreRead(cfg, self.depth)).array(T),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        T, P, G, R = cfg.lanes, fmt.sufa_macs, fmt.sufa_chunks, fmt.sufa_ports
        width = P * cfg.data_bits
        lg = G.bit_length() - 1                       # G is a power of two
        ph = Signal(max(lg, 1), name="ph")            # phase: lane t reads bank (ph - t) mod G
        ph_d = Signal(max(lg, 1), name="ph_d")        # the phase of the data read last cycle

        def mod_g(x):
            return x[:lg] if lg else 0

        if lg:
            m.d.sync += [ph.eq(ph + 1), ph_d.eq(ph)]  # wraps at G
        for t in range(T):
            m.d.comb += self.rd[t].phase.eq(mod_g(ph - t % G))

        banks = []
        for c in range(G):
            bank = m.submodules[f"bank{c}"] = Memory(shape=width, depth=self.depth, init=[])
            w = bank.write_port()
            m.d.comb += [w.en.eq(self.w_en), w.addr.eq(self.w_addr),
                         w.data.eq(self.w_row.as_value()[c * width:(c + 1) * width])]
            banks.append(bank)
        # port r of every bank serves lanes r·G .. r·G + G - 1: bank c the lane j = (ph - c)
        # mod G of the group, whose chunk comes back a cycle later. Both are rotations by the
        # phase of the group's items in reversed order (index -j mod G)
        for r in range(R):
            def lane(j):
                return r * G + j if r * G + j < T else None
            addrs = [self.rd[lane(-c % G)].addr if lane(-c % G) is not None
                     else Signal(self.addr_bits) for c in range(G)]
            ports = [bank.read_port() for bank in banks]
            for c, a in enumerate(rotate(m, addrs, ph, f"addr{r}")):
                m.d.comb += ports[c].addr.eq(a)
            datas = [ports[-j % G].data for j in range(G)]
            for j, dat in enumerate(rotate(m, datas, ph_d, f"data{r}")):
                if lane(j) is not None:
                    m.d.comb += self.rd[lane(j)].chunk.as_value().eq(dat)
        return m
