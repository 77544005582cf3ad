"""SADS: per query lane, streaming per-tile top-k selection within a radius of the tile maximum.

Model: :mod:`golden.sads` (bit-exact). Each lane holds a top-k store sorted by descending
predicted score (ties: the earlier key first, i.e. the lower index). Every cycle the store takes up
to ``pred_keys`` new entries, one after the other:

* clipping unit: an entry passes when it is valid and not below max(running max − r, current k-th
  best): running max = store entry 0, and "beats the k-th best" = its insertion position is < k;
* insertion: the entry goes to position pos = #(held entries ≥ it); the entries from pos down shift
  by one and the k-th falls out.

Entry 0 is the exact top-1 and entry 1 the exact top-2 at all times. When the tile's ``last``
transfer arrives, the final list moves to the output register with its count: the held entries
still ≥ (tile max − r) (the store is sorted, so they form a prefix). Entries clipped by the running
max could never pass the final radius, and entries pushed out of the store never rank above the
kept ones, so the result is the golden rule (top-k of the in-radius set) for any arrival order.

Ports
    i       In stream {score[T][P], valid[T][P], last}: predicted scores (e.g. from DLZS) and a
            per-lane mask (causal / ragged tiles); key index = position within the tile.
    o       Out stream {index[T][K], count[T]}: per lane, the selected key indices (within the
            tile) in descending predicted order; entries at or beyond count are not selected.
    k       In: keys kept per tile, 1..k_tile (runtime; 0 behaves as 1, above k_tile as k_tile).
    radius  In: radius in predicted-score LSBs (all ones: off).
            k and radius are registered in every lane (a copy per lane: they fan out to all of
            them): hold them from the cycle before a job's first transfer to its last.
Throughput: ``pred_keys`` keys per cycle per lane (one i transfer per cycle), the DLZS rate.
Latency: the list of a tile is on ``o`` two cycles after the tile's last transfer
(:func:`sads_latency`).
Backpressure: the output register holds one tile's lists; only the *last* transfer of the next tile
waits while that register is still full (or its lists are still being cut), so a consumer that
takes a list within a tile's duration never stalls the input.
Timing: the clipping compares the new score with a registered threshold, running max − r (loaded
with new − r whenever an entry becomes the max, new − r formed beside the store's compares),
"beats the k-th best" is bit k - 1 of the (thermometer) compare vector, and the final lists are
cut a cycle after the last key from the registered store against the same threshold.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

from .rules import clamp_max
from .shared import add_lane

__all__ = ["SadsSelector", "SadsLane", "sads_latency"]


def sads_latency(cfg) -> int:
    """Cycles from a tile's last ``i`` transfer to its lists on ``o``: 2 (the store takes the
    last key, then the lists are cut from the registered store)."""
    return 2


class SadsSelector(wiring.Component):
    def __init__(self, cfg, score_bits: int | None = None):
        self.cfg = cfg
        self.fmt = fmt = cfg.formats
        self.score_bits = fmt.pred_bits if score_bits is None else score_bits
        super().__init__({
            "i": In(stream.Signature(self.input_layout(cfg, self.score_bits))),
            "o": Out(stream.Signature(self.output_layout(cfg))),
            "k": In(unsigned_bits(cfg.k_tile)),
            "radius": In(unsigned(self.score_bits)),
        })

    @staticmethod
    def input_layout(cfg, score_bits: int) -> data.StructLayout:
        """The i stream payload."""
        T, P = cfg.lanes, cfg.pred_keys
        return data.StructLayout({
            "score": data.ArrayLayout(data.ArrayLayout(signed(score_bits), P), T),
            "valid": data.ArrayLayout(data.ArrayLayout(1, P), T),
            "last": 1})

    @staticmethod
    def output_layout(cfg) -> data.StructLayout:
        """The o stream payload."""
        T, K = cfg.lanes, cfg.k_tile
        idx = unsigned(unsigned_bits(cfg.tile - 1))
        return data.StructLayout({
            "index": data.ArrayLayout(data.ArrayLayout(idx, K), T),
            "count": data.ArrayLayout(unsigned(unsigned_bits(K)), T)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        T, P, K = cfg.lanes, cfg.pred_keys, cfg.k_tile
        sb = self.score_bits
        ib = unsigned_bits(cfg.tile - 1)
        nb = unsigned_bits(K)

        # runtime k, clamped to [1, K] (no upper clamp when k cannot exceed K: a constant
        # comparison Verilator's lint rejects, e.g. K = 1 and a 1-bit k)
        k_eff = Signal(nb)
        upper = clamp_max(self.k, K) if (1 << len(self.k)) - 1 > K else self.k
        m.d.comb += k_eff.eq(Mux(self.k == 0, 1, upper))

        # key index of element 0 of the current transfer, within the tile
        base = Signal(ib + 1)
        fire = Signal()
        take_last, cutting = Signal(), Signal()       # cutting: the lanes cut their lists now
        m.d.comb += [
            fire.eq(self.i.valid & self.i.ready),
            take_last.eq(fire & self.i.payload.last),
            # only the last transfer of a tile waits for a free output register
            self.i.ready.eq(~self.i.payload.last | (~cutting & (~self.o.valid | self.o.ready))),
        ]
        m.d.sync += cutting.eq(take_last)
        with m.If(fire):
            m.d.sync += base.eq(Mux(self.i.payload.last, 0, base + P))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(cutting):
            m.d.sync += self.o.valid.eq(1)

        for t in range(T):
            lane = SadsLane(cfg, sb)
            add_lane(m, f"lane{t}", lane, "sads", (cfg, sb))
            m.d.comb += [lane.score.eq(self.i.payload.score[t]),
                         lane.valid.eq(self.i.payload.valid[t]), lane.fire.eq(fire),
                         lane.last.eq(self.i.payload.last), lane.base.eq(base),
                         lane.k_eff.eq(k_eff), lane.radius.eq(self.radius),
                         self.o.payload.index[t].eq(lane.index),
                         self.o.payload.count[t].eq(lane.count)]
        return m


class SadsLane(wiring.Component):
    """One query lane of :class:`SadsSelector`: its sorted top-k store, ``pred_keys`` clipping
    and insertion units, and its output list register (loaded on a tile's last transfer). Every
    lane is the same module (no lane index inside), so synthesis can map one and instance it.
    """

    def __init__(self, cfg, score_bits: int):
        self.cfg, self.score_bits = cfg, score_bits
        P, K = cfg.pred_keys, cfg.k_tile
        ib = unsigned_bits(cfg.tile - 1)
        super().__init__({
            "score": In(data.ArrayLayout(signed(score_bits), P)), "valid": In(P),
            "fire": In(1), "last": In(1), "base": In(ib + 1),
            "k_eff": In(unsigned_bits(K)), "radius": In(unsigned(score_bits)),
            "index": Out(data.ArrayLayout(unsigned(ib), K)), "count": Out(unsigned_bits(K))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        P, K, sb = cfg.pred_keys, cfg.k_tile, self.score_bits
        ib = unsigned_bits(cfg.tile - 1)
        nb = unsigned_bits(K)
        st_s = [Signal(signed(sb), name=f"s_{j}") for j in range(K)]
        st_i = [Signal(ib, name=f"i_{j}") for j in range(K)]
        st_n = Signal(nb, name="n")
        # the job's k (and k - 1, the compare bit of the k-th best) and radius, this lane's copy
        k_eff, kth, radius = Signal(nb), Signal(nb), Signal(unsigned(sb))
        m.d.sync += [k_eff.eq(self.k_eff), kth.eq(self.k_eff - 1), radius.eq(self.radius)]
        # the clipping threshold: entry 0 (the running max) - radius, loaded with it
        thr = Signal(signed(sb + 2), name="thr")
        cur_s, cur_i, cur_n, cur_t = list(st_s), list(st_i), st_n, thr
        for p in range(P):
            new_s = self.score[p]
            new_i = (self.base + p)[:ib]
            ge = Signal(K, name=f"ge_p{p}")           # a prefix: entries >= new_s
            for j in range(K):
                m.d.comb += ge[j].eq((j < cur_n) & (cur_s[j] >= new_s))
            # clipping unit: below the running max - r (the threshold), or not above the
            # k-th best (its position, #ge, not below k: bit k - 1 of the prefix is set)
            new_t = Signal(signed(sb + 2), name=f"thr_p{p}")
            m.d.comb += new_t.eq(new_s - radius)
            in_radius = Signal(name=f"inr_p{p}")
            m.d.comb += in_radius.eq((cur_n == 0) | (new_s >= cur_t))
            ins = Signal(name=f"ins_p{p}")            # (the store loads only on fire)
            m.d.comb += ins.eq(self.valid[p] & in_radius
                               & ~ge.bit_select(kth, 1))
            nxt_s = [Signal(signed(sb), name=f"s_p{p}_{j}") for j in range(K)]
            nxt_i = [Signal(ib, name=f"i_p{p}_{j}") for j in range(K)]
            nxt_n = Signal(nb, name=f"n_p{p}")
            for j in range(K):
                here = ~ge[j] & (ge[j - 1] if j else 1)      # j == pos
                prev_s, prev_i = (cur_s[j - 1], cur_i[j - 1]) if j else (new_s, new_i)
                m.d.comb += [
                    nxt_s[j].eq(Mux(~ins | ge[j], cur_s[j], Mux(here, new_s, prev_s))),
                    nxt_i[j].eq(Mux(~ins | ge[j], cur_i[j], Mux(here, new_i, prev_i))),
                ]
            m.d.comb += nxt_n.eq(Mux(ins & (cur_n < k_eff), cur_n + 1, cur_n))
            nxt_t = Mux(ins & ~ge[0], new_t, cur_t)         # the new entry is the max
            cur_s, cur_i, cur_n, cur_t = nxt_s, nxt_i, nxt_n, nxt_t

        with m.If(self.fire):
            m.d.sync += [a.eq(b) for a, b in zip(st_s + st_i, cur_s + cur_i)]
            m.d.sync += [st_n.eq(Mux(self.last, 0, cur_n)), thr.eq(cur_t)]
        # a cycle after the tile's last key (the store still holds the tile's list: the next
        # tile's first key is written at the end of this cycle): the held entries still within
        # the radius of the tile max
        cut, cut_n = Signal(), Signal(nb)
        m.d.sync += cut.eq(self.fire & self.last)
        with m.If(self.fire & self.last):
            m.d.sync += cut_n.eq(cur_n)
        keep = [Signal(name=f"keep_{j}") for j in range(K)] + [Const(0, 1)]
        for j in range(K):
            m.d.comb += keep[j].eq((j < cut_n) & (st_s[j] >= thr))
        # the store is sorted, so keep is a prefix: its length is j + 1 at its last 1
        count = 0
        for j in range(K):
            count = count | Mux(keep[j] & ~keep[j + 1], j + 1, 0)
        with m.If(cut):
            m.d.sync += [self.index[j].eq(st_i[j]) for j in range(K)]
            m.d.sync += self.count.eq(count)
        return m
