"""The score stage S of a SU-FA lane: q·k over the lane's list of every tile, into tile records.

Model: :func:`golden.sufa.attend` (the scores of one row). Part of :class:`hw.sufa_lane.SufaLane`,
which joins it to the accumulate stage (``hw/sufa_accumulate.py``) through :class:`TileRecords`.

Per tile, S takes the lane's list from a one-entry queue (SADS's order: predicted top-1, top-2,
then the rest by descending prediction; dense: every visible key in index order) and computes
s = q·k of each key over G = head_dim / P cycles, one chunk of P elements per cycle, from the K
tile store. Scores go to the lane's score memory (``SLOTS`` tiles) in list order; the tile's
fixed max (over list entries 0 and 1, or every entry with ``exact_max``) to the slot's tile
record, which is then ready for A. One key per G cycles, no stalls; latency ``score_latency(cfg)``
cycles from a key's last chunk read to its score. S starts a tile only while a score slot is
free (``SLOTS`` tiles between S starting one and A freeing it).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from star.spec.formats import unsigned_bits

from .arith import MulPipe, adder_tree, mul_latency, tree_latency
from .sufa_records import RecordQueue, TileRecords
from .tilebuf import SlotReturn, StoreRead

__all__ = ["ScoreStage", "ListQueue", "QueryRow", "score_latency"]


def score_latency(cfg) -> int:
    """Cycles from a key's last chunk read to its score (K read, the pipelined products, the
    adder tree, the sum over the chunks)."""
    return 2 + mul_latency(cfg.data_bits, cfg.data_bits) + tree_latency(cfg.sufa_macs)


class QueryRow(wiring.Signature):
    """The lane's query rows in the engine's Q store, seen from the lane: ``we`` In, the next
    block's row is written (at the slot other than ``slot``); ``full`` Out, it waits (until the
    lane starts that block's first tile, which makes it ``slot``); ``slot`` Out; ``chunk`` In, the
    chunk of the row at ``slot`` that the K store returns in the same cycle (same phase)."""

    def __init__(self, cfg):
        super().__init__({
            "we": In(1), "full": Out(1), "slot": Out(1),
            "chunk": In(data.ArrayLayout(signed(cfg.data_bits), cfg.formats.sufa_macs)),
        })


class ListQueue(wiring.Signature):
    """The lane's one-entry list queue, seen from the lane: ``we`` In writes ``entry`` (only
    while not ``full``); ``full`` Out until S takes the list. ``entry``: ``index[k_tile]`` (keys
    in visit order), ``count``, block flags ``first`` and ``final``."""

    def __init__(self, cfg):
        super().__init__({
            "we": In(1), "full": Out(1),
            "entry": In(data.StructLayout({
                "index": data.ArrayLayout(unsigned_bits(cfg.tile - 1), cfg.k_tile),
                "count": unsigned_bits(cfg.tile), "first": 1, "final": 1})),
        })


class ScoreStage(wiring.Component):
    """The score stage (module docstring). Ports: ``q`` (:class:`QueryRow`), ``list``
    (:class:`ListQueue`), ``k`` (:class:`hw.tilebuf.StoreRead` of the K store), ``k_slots``
    (:class:`hw.tilebuf.SlotReturn`: S is done with a K tile), ``records``
    (:class:`TileRecords`), ``exact_max`` and ``clear`` In."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.cnt_bits = unsigned_bits(cfg.tile)
        super().__init__({
            "exact_max": In(1), "clear": In(1),
            "q": Out(QueryRow(cfg)), "list": Out(ListQueue(cfg)),
            "k": Out(StoreRead(cfg)), "k_slots": Out(SlotReturn()),
            "records": Out(TileRecords(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.records = rq = RecordQueue(self.cfg)
        connect(m, flipped(self.records), rq.records)
        connect(m, flipped(self.k_slots), rq.k_slots)
        start, nl, s_busy = self._queue(m, rq.can_start)
        fw, s, s_slot = self._walk(m, start, nl, s_busy)
        self._record(m, rq, start, s_slot, nl, fw, s)
        return m

    def _queue(self, m, can_start):
        """The next tile's list (a one-entry queue) and the query row slots; S starts a tile
        when it has a list, is not walking one and a score slot is free."""
        q, lq = self.q, self.list
        with m.If(q.we):
            m.d.sync += q.full.eq(1)
        nl = Signal.like(lq.entry)
        with m.If(lq.we):
            m.d.sync += [nl.eq(lq.entry), lq.full.eq(1)]
        s_busy, start = Signal(), Signal()
        m.d.comb += start.eq(lq.full & ~s_busy & can_start)
        with m.If(start):
            m.d.sync += lq.full.eq(0)
            with m.If(nl.first & q.full):
                m.d.sync += [q.slot.eq(~q.slot), q.full.eq(0)]
            with m.If(q.we):                 # a row arriving in the same cycle stays next
                m.d.sync += q.full.eq(1)
        return start, nl, s_busy

    def _walk(self, m, start, nl, s_busy):
        """Issue one chunk per cycle (an empty list issues one bubble that ends the tile), the
        products (pipelined), the adder tree, the sum over a key's G chunks: a key's score
        ``s`` is there a cycle after its last chunk, with the flags ``fw``."""
        cfg, fmt = self.cfg, self.cfg.formats
        b, K = cfg.data_bits, cfg.k_tile
        P, G, sb = fmt.sufa_macs, fmt.sufa_chunks, fmt.score_bits
        lb = fmt.log2_tile
        s_index = Signal.like(nl.index)
        s_count, s_final, s_slot = Signal(self.cnt_bits), Signal(), Signal()
        s_e = Signal(self.cnt_bits)
        s_n = Signal(range(max(G, 2)))
        with m.If(start):
            m.d.sync += [s_index.eq(nl.index), s_count.eq(nl.count), s_final.eq(nl.final),
                         s_busy.eq(1), s_e.eq(0), s_n.eq(0)]
        flag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "e": self.cnt_bits,
                                  "key": lb, "cand": 1, "end": 1, "slot": 1, "final": 1})
        f0 = Signal(flag)
        key = Signal(lb)
        m.d.comb += key.eq(Mux(self.exact_max, s_e[:lb], s_index[s_e[:unsigned_bits(K - 1)]]
                               if K > 1 else s_index[0]))
        end = Signal()
        m.d.comb += [end.eq((s_count == 0) | ((s_e == s_count - 1) & (s_n == G - 1))),
                     self.k.addr.eq(Cat(key, s_slot))]
        m.d.sync += f0.eq(0)
        with m.If(s_busy):
            m.d.sync += [f0.valid.eq(s_count != 0), f0.first.eq(s_n == 0),
                         f0.last.eq(s_n == G - 1), f0.e.eq(s_e), f0.key.eq(key),
                         f0.cand.eq(self.exact_max | (s_e < 2)), f0.end.eq(end),
                         f0.slot.eq(s_slot), f0.final.eq(s_final)]
            m.d.sync += s_n.eq(Mux(s_n == G - 1, 0, s_n + 1))
            with m.If(s_n == G - 1):
                m.d.sync += s_e.eq(s_e + 1)
            with m.If(end):
                m.d.sync += [s_busy.eq(0), s_slot.eq(~s_slot)]
        with m.If(self.clear):
            m.d.sync += s_slot.eq(0)

        prods = []
        for i in range(P):
            mul = m.submodules[f"qk_mul{i}"] = MulPipe(signed(b), signed(b))
            m.d.comb += [mul.en.eq(1), mul.a.eq(self.q.chunk[i]), mul.b.eq(self.k.chunk[i])]
            prods.append(mul.p)
        psum = adder_tree(m, prods, [], 1, "qk")
        fl = [f0]
        for i in range(score_latency(cfg) - 2):
            nxt = Signal(flag, name=f"sflag_{i + 1}")
            m.d.sync += nxt.eq(fl[-1])
            fl.append(nxt)
        fs = fl[-1]
        acc = Signal(signed(sb))
        with m.If(fs.valid):
            m.d.sync += acc.eq(Mux(fs.first, 0, acc) + psum)
        fw = Signal(flag, name="sflag_w")
        m.d.sync += fw.eq(fs)
        return fw, acc, s_slot

    def _record(self, m, rq, start, s_slot, nl, fw, s):
        """The tile-record queue (:class:`hw.sufa_records.RecordQueue`): the tile S starts, and
        a score event per key (and at the tile's end)."""
        ev = rq.event
        m.d.comb += [rq.start.eq(start), rq.slot.eq(s_slot), rq.count.eq(nl.count),
                     rq.final.eq(nl.final), rq.exact_max.eq(self.exact_max),
                     ev.valid.eq(fw.valid & fw.last), ev.end.eq(fw.end & (fw.last | ~fw.valid)),
                     ev.slot.eq(fw.slot), ev.cand.eq(fw.cand), ev.e.eq(fw.e), ev.key.eq(fw.key),
                     ev.s.eq(s)]
