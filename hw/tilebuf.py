"""Tile store: two tiles of K (or V) rows, read by the SU-FA lanes a chunk at a time.

A lane with P = ``sufa_macs`` multipliers walks a row in G = head_dim / P chunks of P elements,
one chunk per cycle. The store keeps chunk c of every row in bank c (G banks of P elements,
``2 · tile`` rows deep: slot s, key i at address s·tile + i). Lane t reads bank
(ph - t) mod G in the cycle where the store's free-running phase counter is ph, so at any
cycle the lanes that share a bank are those with equal t mod G: each bank needs
R = ``sufa_ports`` = ceil(lanes / G) read ports, and the store as a whole R full-row ports'
worth of bandwidth (lanes · P / head_dim rows per cycle), never one port per lane. A lane that
keeps its row address for G consecutive cycles receives all G chunks of the row in rotated
order, whichever cycle it starts: the sums a lane forms over the chunks (q·k, and o[e] += p·v[e]
per element) do not depend on the order, so no lane ever waits for a slot and none can starve.

Ports
    w_en, w_addr, w_row     In: write a whole row (all banks) at ``w_addr``.
    addr[T]                 In: per lane, the row address it reads this cycle.
    chunk[T], chunk_idx[T]  Out: per lane, the chunk read in the previous cycle and its index
                            c (elements c·P .. c·P + P - 1 of the row).
    phase[T]                Out: per lane, the index of the chunk its ``addr`` reads this cycle.
Latency one cycle (synchronous read ports); throughput one chunk per lane per cycle; no
backpressure. A write and a read of the same address in one cycle return the old row.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

__all__ = ["TileStore", "SLOTS"]

SLOTS = 2          # tiles a store holds (the K store: read ahead; the V store: fetched ahead)


class TileStore(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        self.fmt = fmt = cfg.formats
        T, d, b = cfg.lanes, cfg.head_dim, cfg.data_bits
        G = fmt.sufa_chunks
        self.addr_bits = unsigned_bits(2 * cfg.tile - 1)
        chunk = data.ArrayLayout(signed(b), fmt.sufa_macs)
        idx = unsigned(unsigned_bits(max(G - 1, 1)))
        super().__init__({
            "w_en": In(1), "w_addr": In(self.addr_bits),
            "w_row": In(data.ArrayLayout(signed(b), d)),
            "addr": In(data.ArrayLayout(self.addr_bits, T)),
            "chunk": Out(data.ArrayLayout(chunk, T)),
            "chunk_idx": Out(data.ArrayLayout(idx, T)),
            "phase": Out(data.ArrayLayout(idx, T)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        T, P, G, R = cfg.lanes, fmt.sufa_macs, fmt.sufa_chunks, fmt.sufa_ports
        width = P * cfg.data_bits
        lg = G.bit_length() - 1                       # G is a power of two
        ph = Signal(max(lg, 1), name="ph")            # phase: lane t reads bank (ph - t) mod G

        def mod_g(x):
            return x[:lg] if lg else 0

        if lg:
            m.d.sync += ph.eq(ph + 1)                 # wraps at G
        for t in range(T):
            m.d.comb += self.phase[t].eq(mod_g(ph - t % G))
            m.d.sync += self.chunk_idx[t].eq(self.phase[t])

        for c in range(G):
            bank = m.submodules[f"bank{c}"] = Memory(shape=width, depth=2 * cfg.tile, init=[])
            w = bank.write_port()
            m.d.comb += [w.en.eq(self.w_en), w.addr.eq(self.w_addr),
                         w.data.eq(self.w_row.as_value()[c * width:(c + 1) * width])]
            for r in range(R):
                port = bank.read_port()
                lanes = [t for t in range(r * G, min(T, (r + 1) * G))]
                # bank c, port r serves lane r·G + ((ph - c) mod G) this cycle
                with m.Switch(mod_g(ph - c)):
                    for t in lanes:
                        with m.Case(t % G):
                            m.d.comb += port.addr.eq(self.addr[t])
                # lane t receives bank (ph_prev - t) mod G = its chunk_idx
                for t in lanes:
                    with m.If(self.chunk_idx[t] == c):
                        m.d.comb += self.chunk[t].as_value().eq(port.data)
        return m
