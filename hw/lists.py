"""Lists stage of the STAR core: SADS's per-lane selections -> SU-FA lanes, their union -> V fetch.

Per tile, SADS gives every lane its list (keys in visit order and a count); in dense mode each
lane instead walks its visible keys in index order (:class:`LaneList`: the count of visible
keys). The stage hands the lists of all lanes to SU-FA at once (``lists``, with the block's
``first`` / ``final`` tile flags) and, in the same handshake, the union of the lanes' keys with
the tile's first key to the V fetch (``union``), which reads each of those V rows once. The
sparse union is a bit-set built at the selector's rate, list entry j of every lane in cycle j
(a decoder per lane, not one per list entry); the dense union is keys 0 .. the most any lane
sees - 1. A node core's empty block (no key of its shard is
visible) gives the lanes one empty tile instead, taking a K slot of its own (``empty_take``) so
the K and V slot credits stay in step.

Ports
    sel         In stream: SADS's output (``hw.sads.SadsSelector.output_layout``).
    lists       Out stream: SU-FA's ``lists`` (``hw.sufa.SufaEngine.list_layout``).
    union       Out stream {mask[tile], base}: the tile's union (to the V fetch's queue).
    block       In ``hw.front.block_layout``; ``dense``, ``run``, ``begin`` In (as the front's).
    k_free      In: a K slot credit is available (empty tiles only). ``empty_take`` Out.
    tiles_done  Out: every tile of the block has been given.
Latency: a sparse tile's lists are offered the longest list's length + 1 cycles after SADS's
lists arrive (the union is built meanwhile, while the lanes may still work on the previous
tile); a dense tile's ``dense_union_cycles(cfg)`` cycles after (its max tree is registered);
an empty tile's at once. One tile per handshake. Backpressure: a tile
waits for SU-FA's lanes and for room in the V fetch's queue.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

from .arith import reduce_tree
from .front import block_layout, key_bits
from .sads import SadsSelector
from .shared import add_lane
from .sufa import SufaEngine

__all__ = ["ListStage", "LaneList", "union_layout", "onehot", "dense_union_cycles"]


def onehot(value, n: int):
    """An n-bit vector with bit ``value`` set."""
    return Cat(*(value == i for i in range(n)))


def _max_tree_registers(cfg) -> range:
    """The registered levels of the lanes' max tree: the first (above the lanes' visible-key
    counts, which take most of a cycle), then every second, so that one or two levels are
    left before the mask."""
    depth = (cfg.lanes - 1).bit_length()
    return range(1, 2 * (depth // 2), 2)


def dense_union_cycles(cfg) -> int:
    """Cycles from a dense tile's selection to its lists and union: the lanes' max tree
    (:func:`_max_tree_registers`), then the mask's register."""
    return len(_max_tree_registers(cfg)) + 1


def union_layout(cfg) -> data.StructLayout:
    """A tile's union of selections: ``mask`` of keys within the tile, ``base`` = its key 0."""
    return data.StructLayout({"mask": cfg.tile, "base": key_bits(cfg)})


class ListStage(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "sel": In(stream.Signature(SadsSelector.output_layout(cfg))),
            "lists": Out(stream.Signature(SufaEngine.list_layout(cfg))),
            "union": Out(stream.Signature(union_layout(cfg))),
            "block": In(block_layout(cfg)), "dense": In(1), "run": In(1), "begin": In(1),
            "k_free": In(1), "empty_take": Out(1), "tiles_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, blk = self.cfg, self.block
        T, K, Bc = cfg.lanes, cfg.k_tile, cfg.tile
        lb = cfg.formats.log2_tile
        kb = key_bits(cfg)
        tile = Signal(len(blk.n_t))                       # lists given in this block
        base = Signal(kb)
        m.d.comb += [base.eq(tile << lb), self.tiles_done.eq(tile == blk.n_t)]
        lst, out = self.sel.payload, self.lists.payload
        # the sparse union, built at the selector's rate: list entry j of every lane per cycle
        # (j up to the longest list), set into a bit-set
        wait = dense_union_cycles(cfg) - 1
        j, built, union = Signal(range(max(K, wait) + 1)), Signal(), Signal(Bc)
        entries, mores, visible = [], [], []
        for t in range(T):
            ll = LaneList(cfg, kb, kb + 1)
            add_lane(m, f"mask{t}", ll, "mask", (cfg, kb, kb + 1))
            m.d.comb += [ll.index.eq(lst.index[t]), ll.count.eq(lst.count[t]), ll.j.eq(j),
                         ll.active.eq(blk.active[t]), ll.lim.eq(blk.lim[t]), ll.base.eq(base),
                         ll.dense.eq(self.dense), out.index[t].eq(lst.index[t]),
                         out.count[t].eq(Mux(blk.empty, 0, ll.count_out))]
            entries.append(ll.entry)
            mores.append(ll.more)
            visible.append(ll.visible)
        entry = reduce_tree(m, entries, lambda a, b: a | b, "entry")
        more = reduce_tree(m, mores, lambda a, b: a | b, "more")
        # the dense union: keys 0 .. the most any lane sees - 1 (each lane's keys are a prefix),
        # from the block and the tile number, which stay through the tile: a max tree with
        # registered levels, ``wait`` cycles, then the mask
        most = reduce_tree(m, visible, lambda a, b: Mux(a > b, a, b), "visible",
                           sync_levels=_max_tree_registers(cfg))
        with m.If(self.sel.valid & ~built):
            with m.If(self.dense):
                with m.If(j == wait):
                    m.d.sync += [union.eq(Cat(*(i < most for i in range(Bc)))), built.eq(1)]
                with m.Else():
                    m.d.sync += j.eq(j + 1)
            with m.Elif(more):
                m.d.sync += [union.eq(union | entry), j.eq(j + 1)]
            with m.Else():
                m.d.sync += built.eq(1)
        # an empty block (node core) gives the lanes one empty tile, with a K slot of its own
        valid = Mux(blk.empty, (tile == 0) & self.k_free, self.sel.valid & built)
        fire = Signal()
        m.d.comb += [
            self.lists.valid.eq(self.run & valid & self.union.ready),
            out.first.eq(tile == 0), out.final.eq(tile == blk.n_t - 1),
            fire.eq(self.lists.valid & self.lists.ready),
            self.union.valid.eq(fire),
            self.union.payload.mask.eq(Mux(blk.empty, 0, union)),
            self.union.payload.base.eq(base),
        ]
        with m.If(fire):
            m.d.comb += [self.sel.ready.eq(~blk.empty), self.empty_take.eq(blk.empty)]
            m.d.sync += [tile.eq(tile + 1), union.eq(0), j.eq(0), built.eq(0)]
        with m.If(self.begin):
            m.d.sync += tile.eq(0)
        return m


class LaneList(wiring.Component):
    """One query lane's list of a tile for SU-FA: ``count_out`` (SADS's count, or in dense mode
    ``visible``, the number of visible keys: keys base .. lim of the tile, none in an idle lane)
    and, for the union the V fetch reads, ``entry``: list entry ``j`` as a one-hot key mask
    (zero past the count), ``more``: the list has an entry ``j``. Combinational. Every lane is
    the same module, so synthesis can map one and instance it.
    """

    def __init__(self, cfg, key_bits: int, lim_bits: int):
        self.cfg = cfg
        Bc, K = cfg.tile, cfg.k_tile
        super().__init__({
            "active": In(1), "dense": In(1),
            "index": In(data.ArrayLayout(unsigned_bits(Bc - 1), K)),
            "count": In(unsigned_bits(K)), "lim": In(lim_bits), "base": In(key_bits),
            "j": In(range(K + 1)),
            "count_out": Out(unsigned_bits(Bc)), "visible": Out(unsigned_bits(Bc)),
            "entry": Out(Bc), "more": Out(1)})

    def elaborate(self, platform):
        m = Module()
        Bc, K = self.cfg.tile, self.cfg.k_tile
        span = self.lim - self.base + 1
        m.d.comb += self.visible.eq(Mux(~self.active | (self.lim < self.base), 0,
                                        Mux(span >= Bc, Bc, span)))
        m.d.comb += [self.count_out.eq(Mux(self.dense, self.visible, self.count)),
                     self.more.eq(self.count > self.j)]
        idx = self.index[self.j[:unsigned_bits(K - 1)]] if K > 1 else self.index[0]
        m.d.comb += self.entry.eq(Mux(self.more, onehot(idx, Bc), 0))
        return m
