"""SADS: per query lane, streaming per-tile top-k selection within a radius of the tile maximum.

Model: :mod:`golden.sads` (bit-exact). Each lane holds a top-k store sorted by descending
predicted score (ties: the earlier key first, i.e. the lower index). A transfer brings one key:

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
    i       In stream {score[T], shift[T], last} (:func:`hw.layouts.score_layout`): a key's
            predicted scores (e.g. from DLZS), lane t's being score[t] << shift[t]; key index =
            position within the tile. A lane's shift must not change within a tile: the store
            compares the unshifted scores, and the radius is applied as radius >> shift (exact:
            for x >= 0, x << s <= r exactly when x <= r >> s).
    lane_valid  In[T]: per lane, the key of this cycle's transfer counts (causal / ragged
            tiles, idle lanes).
    o       Out stream {index[T][K], count[T]}: per lane, the selected key indices (within the
            tile) in descending predicted order; entries at or beyond count are not selected.
    k       In: keys kept per tile, 1..k_tile (runtime; 0 behaves as 1, above k_tile as k_tile).
    radius  In: radius in predicted-score LSBs, ``radius_bits`` wide (all ones: off; so is any
            radius whose shifted value reaches 2**score_bits - 1, the widest difference).
            k and radius are registered in every lane (a copy per lane: they fan out to all of
            them): hold them from the cycle before a job's first transfer to its last.
Throughput: one key per cycle per lane (one i transfer per cycle); the DLZS array gives one
per ``pred_cycles`` cycles.
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

from .layouts import score_layout
from .rules import clamp_max
from .shared import add_lane

__all__ = ["SadsSelector", "SadsLane", "sads_latency"]


def sads_latency(cfg) -> int:
    """Cycles from a tile's last ``i`` transfer to its lists on ``o``: 2 (the store takes the
    last key, then the lists are cut from the registered store)."""
    return 2


class SadsSelector(wiring.Component):
    """The selector (module docstring). Without ``score_bits`` it takes DLZS's scores
    (``pred_sum_bits`` wide, ``pred_shift_bits`` of shift, a ``pred_bits`` radius); given
    ``score_bits``, scores of that width with ``shift_bits`` of shift (default none) and a radius
    of ``radius_bits`` (default as wide as the widest shifted score)."""

    def __init__(self, cfg, score_bits: int | None = None, shift_bits: int = 0,
                 radius_bits: int | None = None):
        self.cfg = cfg
        self.fmt = fmt = cfg.formats
        if score_bits is None:
            score_bits, shift_bits = fmt.pred_sum_bits, fmt.pred_shift_bits
            radius_bits = fmt.pred_bits
        self.score_bits, self.shift_bits = score_bits, shift_bits
        self.radius_bits = radius_bits or score_bits + ((1 << shift_bits) - 1 if shift_bits else 0)
        super().__init__({
            "i": In(stream.Signature(self.input_layout(cfg, score_bits, shift_bits))),
            "o": Out(stream.Signature(self.output_layout(cfg))),
            "lane_valid": In(cfg.lanes),
            "k": In(unsigned_bits(cfg.k_tile)),
            "radius": In(unsigned(self.radius_bits)),
        })

    @staticmethod
    def input_layout(cfg, score_bits: int, shift_bits: int = 0) -> data.StructLayout:
        """The i stream payload: the predictor's ``a`` (:func:`hw.layouts.score_layout`)."""
        return score_layout(cfg, score_bits, shift_bits)

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
        T, K = cfg.lanes, cfg.k_tile
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
            # only the last transfer of a tile waits for a free output register (and, when the
            # lanes cut with their insertion compares, no transfer while they cut)
            self.i.ready.eq((~cutting if cfg.pred_cycles > 1 else 1)
                            & (~self.i.payload.last | (~cutting & (~self.o.valid | self.o.ready)))),
        ]
        m.d.sync += cutting.eq(take_last)
        with m.If(fire):
            m.d.sync += base.eq(Mux(self.i.payload.last, 0, base + 1))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(cutting):
            m.d.sync += self.o.valid.eq(1)

        for t in range(T):
            lane = SadsLane(cfg, sb, self.shift_bits, self.radius_bits)
            add_lane(m, f"lane{t}", lane, "sads", (cfg, sb, self.shift_bits, self.radius_bits))
            m.d.comb += [lane.score.eq(self.i.payload.score[t]),
                         lane.valid.eq(self.lane_valid[t]), lane.fire.eq(fire),
                         lane.last.eq(self.i.payload.last), lane.base.eq(base),
                         lane.k_eff.eq(k_eff), lane.radius.eq(self.radius),
                         self.o.payload.index[t].eq(lane.index),
                         self.o.payload.count[t].eq(lane.count)]
            if self.shift_bits:
                m.d.comb += lane.shift.eq(self.i.payload.shift[t])
        return m


class SadsLane(wiring.Component):
    """One query lane of :class:`SadsSelector`: its sorted top-k store, its clipping and
    insertion unit, and its output list register (loaded on a tile's last transfer). Every lane
    is the same module (no lane index inside), so synthesis can map one and instance it.
    """

    def __init__(self, cfg, score_bits: int, shift_bits: int, radius_bits: int):
        self.cfg, self.score_bits = cfg, score_bits
        self.shift_bits, self.radius_bits = shift_bits, radius_bits
        K = cfg.k_tile
        ib = unsigned_bits(cfg.tile - 1)
        members = {
            "score": In(signed(score_bits)), "valid": In(1),
            "fire": In(1), "last": In(1), "base": In(ib + 1),
            "k_eff": In(unsigned_bits(K)), "radius": In(unsigned(radius_bits)),
            "index": Out(data.ArrayLayout(unsigned(ib), K)), "count": Out(unsigned_bits(K))}
        if shift_bits:
            members["shift"] = In(shift_bits)
        super().__init__(members)

    def _lane_radius(self, m, radius):
        """The radius in this lane's unshifted score LSBs: radius >> shift, clamped to
        2**score_bits - 1 (at and above it nothing is clipped, as with the radius off)."""
        sb = self.score_bits
        shifted = radius >> self.shift if self.shift_bits else radius
        if self.radius_bits <= sb:
            return shifted
        top = (1 << sb) - 1
        r = Signal(unsigned(sb), name="radius_lane")
        m.d.comb += r.eq(Mux(shifted >= top, top, shifted))
        return r

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        K, sb = cfg.k_tile, self.score_bits
        ib = unsigned_bits(cfg.tile - 1)
        nb = unsigned_bits(K)
        st_s = [Signal(signed(sb), name=f"s_{j}") for j in range(K)]
        st_i = [Signal(ib, name=f"i_{j}") for j in range(K)]
        st_n = Signal(nb, name="n")
        # the job's k (and k - 1, the compare bit of the k-th best) and radius, this lane's copy
        k_eff, kth, radius = Signal(nb), Signal(nb), Signal(unsigned(self.radius_bits))
        m.d.sync += [k_eff.eq(self.k_eff), kth.eq(self.k_eff - 1), radius.eq(self.radius)]
        radius = self._lane_radius(m, radius)
        # the clipping threshold: entry 0 (the running max) - radius, loaded with it
        thr = Signal(signed(sb + 2), name="thr")
        new_s, new_i = self.score, self.base[:ib]
        # a cycle after the tile's last key: the held entries still within the radius of the
        # tile max (the store still holds the tile's list). With a key per pred_cycles >= 2
        # cycles that cycle has no key, so the insertion compares cut the list (against the
        # threshold, clamped to the scores' range); else compares of their own
        cut = Signal()
        m.d.sync += cut.eq(self.fire & self.last)
        shared_cut = cfg.pred_cycles > 1
        lo = -(1 << (sb - 1))
        cmp = Signal(signed(sb), name="cmp")          # the value the entries are compared with
        m.d.comb += cmp.eq(Mux(cut, Mux(thr < lo, lo, thr), new_s) if shared_cut else new_s)
        ge = Signal(K, name="ge")                     # a prefix: entries >= cmp
        for j in range(K):
            m.d.comb += ge[j].eq((j < st_n) & (st_s[j] >= cmp))
        # clipping unit: below the running max - r (the threshold), or not above the k-th best
        # (its position, #ge, not below k: bit k - 1 of the prefix is set)
        new_t = Signal(signed(sb + 2), name="thr_new")
        m.d.comb += new_t.eq(new_s - radius)
        in_radius = Signal(name="in_radius")
        m.d.comb += in_radius.eq((st_n == 0) | (new_s >= thr))
        ins = Signal(name="ins")                      # (the store loads only on fire)
        m.d.comb += ins.eq(self.valid & in_radius & ~ge.bit_select(kth, 1))
        cur_s = [Signal(signed(sb), name=f"s_next_{j}") for j in range(K)]
        cur_i = [Signal(ib, name=f"i_next_{j}") for j in range(K)]
        cur_n = Signal(nb, name="n_next")
        for j in range(K):
            here = ~ge[j] & (ge[j - 1] if j else 1)      # j == pos
            prev_s, prev_i = (st_s[j - 1], st_i[j - 1]) if j else (new_s, new_i)
            m.d.comb += [
                cur_s[j].eq(Mux(~ins | ge[j], st_s[j], Mux(here, new_s, prev_s))),
                cur_i[j].eq(Mux(~ins | ge[j], st_i[j], Mux(here, new_i, prev_i))),
            ]
        m.d.comb += cur_n.eq(Mux(ins & (st_n < k_eff), st_n + 1, st_n))
        cur_t = Mux(ins & ~ge[0], new_t, thr)             # the new entry is the max

        with m.If(self.fire):
            m.d.sync += [a.eq(b) for a, b in zip(st_s + st_i, cur_s + cur_i)]
            m.d.sync += [st_n.eq(Mux(self.last & ~shared_cut, 0, cur_n)), thr.eq(cur_t)]
        keep = [Signal(name=f"keep_{j}") for j in range(K)] + [Const(0, 1)]
        if shared_cut:
            with m.If(cut):
                m.d.sync += st_n.eq(0)
            m.d.comb += [keep[j].eq(ge[j]) for j in range(K)]
        else:
            # (the next tile's first key is written at the end of the cut's cycle)
            cut_n = Signal(nb)
            with m.If(self.fire & self.last):
                m.d.sync += cut_n.eq(cur_n)
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
