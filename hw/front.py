"""Tile front of the STAR core (cross-stage tiling): K rows of each tile, and which lanes see them.

Per query block, the front requests the K rows of tiles 0 .. n_t - 1 in key order, one request
per row, each into a slot of SU-FA's two-tile K store (``hw/tilebuf.py``): the rows go to the K
store and the DLZS predictor at once, so predicted scores never leave the chip. A tile takes a
slot credit before its first row (``SLOTS`` credits; the engine returns one with ``k_release``
when every lane is done with the oldest K tile), so the front runs ahead of the lanes by up to
two tiles. Beside the predictor's output the front counts keys and gives SADS the per-lane
validity of each key (``p_valid``: the lane is active and the key is within its causal limit
and the sequence).

Ports
    block       In :func:`block_layout`: the block's tiles, per-lane last visible key, active
                lanes, ``empty`` (node core: the block sees no key of its shard); held for the
                block.
    kseq, k_base, k_stride  In: keys of this core, the address of key 0 and the row stride.
    begin       In: a block starts (key counters to 0, address to ``k_base``).
    run         In: the block's Q rows are in; requests may go out.
    req         Out stream ``request_layout`` (to the read arbiter): idx = slot·tile + key.
    k_release   In: a K slot is free again. ``empty_take`` In: the lists stage used a slot for
                an empty tile. ``k_free`` Out: a slot credit is available.
    p_fire, p_last  In: the predictor hands SADS a key (the tile's last). ``p_valid`` Out[T]:
                per lane, that key is visible.
    clear       In: a job starts (credits to ``SLOTS``, slot 0).
Latency: none (requests are combinational from the key counter). Throughput one request per
cycle while slots are free. Backpressure: ``req.ready``; no request without a slot.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits
from star.spec.regmap import ADDR_BITS

from .read_arbiter import request_layout
from .tilebuf import SLOTS

__all__ = ["TileFront", "block_layout", "key_bits"]


def key_bits(cfg) -> int:
    """Bits of a key index that may run one tile past ``max_seq``."""
    return unsigned_bits(cfg.max_seq + cfg.tile)


def block_layout(cfg) -> data.StructLayout:
    """A query block's plan: tiles, per-lane last visible key (``lim``), active lanes, empty."""
    lb = cfg.formats.log2_tile
    kb = key_bits(cfg)
    return data.StructLayout({"n_t": kb - lb + 1, "lim": data.ArrayLayout(kb + 1, cfg.lanes),
                              "active": cfg.lanes, "empty": 1})


class TileFront(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        seq_bits = unsigned_bits(cfg.max_seq)
        super().__init__({
            "block": In(block_layout(cfg)),
            "kseq": In(seq_bits), "k_base": In(ADDR_BITS), "k_stride": In(32),
            "begin": In(1), "run": In(1), "clear": In(1),
            "req": Out(stream.Signature(request_layout(cfg))),
            "k_release": In(1), "empty_take": In(1), "k_free": Out(1),
            "p_fire": In(1), "p_last": In(1), "p_valid": Out(cfg.lanes),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, blk = self.cfg, self.block
        T, Bc = cfg.lanes, cfg.tile
        lb = cfg.formats.log2_tile

        # tile slots of the K store: a credit per free slot
        cred, slot, take = Signal(range(SLOTS + 1)), Signal(), Signal()
        with m.If(self.clear):
            m.d.sync += [cred.eq(SLOTS), slot.eq(0)]
        with m.Else():
            m.d.sync += cred.eq(cred - take + self.k_release)
        m.d.comb += self.k_free.eq(cred != 0)
        with m.If(self.empty_take):
            m.d.comb += take.eq(1)
            m.d.sync += slot.eq(~slot)

        # K row requests, tile by tile
        f_key, f_addr = Signal(key_bits(cfg)), Signal(ADDR_BITS)
        f_tile = f_key[lb:]
        f_last, first_row = Signal(), Signal()
        m.d.comb += [f_last.eq((f_key == self.kseq - 1) | (f_key[:lb] == Bc - 1)),
                     first_row.eq(f_key[:lb] == 0)]
        m.d.comb += [self.req.valid.eq(self.run & ~blk.empty & (f_tile < blk.n_t)
                                       & (~first_row | self.k_free)),
                     self.req.payload.addr.eq(f_addr),
                     self.req.payload.idx.eq(Cat(f_key[:lb], slot)),
                     self.req.payload.last.eq(f_last)]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [f_addr.eq(f_addr + self.k_stride),
                         f_key.eq(Mux(f_last, (f_tile + 1) << lb, f_key + 1))]
            m.d.comb += take.eq(first_row)
            with m.If(f_last):
                m.d.sync += slot.eq(~slot)

        # the predictor's keys, in the same order: per-lane validity for SADS
        p_key = Signal(key_bits(cfg))
        m.d.comb += [self.p_valid[t].eq(blk.active[t] & (p_key <= blk.lim[t])) for t in range(T)]
        with m.If(self.p_fire):
            m.d.sync += p_key.eq(Mux(self.p_last, (p_key[lb:] + 1) << lb, p_key + 1))
        with m.If(self.begin):
            m.d.sync += [f_key.eq(0), f_addr.eq(self.k_base), p_key.eq(0)]
        return m
