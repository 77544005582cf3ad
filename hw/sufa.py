"""SU-FA engine: T query lanes, each walking its own selected keys; K/V tile stores between them.

Model: :mod:`golden.sufa` (bit-exact). Lanes: ``hw/sufa_lane.py``; stores: ``hw/tilebuf.py``.

The engine takes, per tile, the lists of all lanes at once (``lists``: SADS's per-lane lists in
its order, or with ``exact_max`` each lane's count of visible keys, walked in index order) and
gives each lane its own list through a one-entry queue. Each lane has P = ``sufa_macs``
multipliers for q·k (score stage) and P for p·v (accumulate stage) and retires one key per
G = head_dim / P cycles in steady state, the score stage of tile j+1 overlapping the accumulate
stage of tile j. The K rows of a tile are written to the K store before its lists arrive; the
V rows of the union of the lanes' selections are written to the V store, then ``v_filled``
pulses (tiles in order). Both stores hold two tiles; ``k_release`` / ``v_release`` pulse when
every lane is done with the oldest tile of a store (its slot may be refilled).

Ports
    q       In stream {lane, row[d]}: the next block's query rows (``q_free``: every lane has
            started its current block, so each lane may take its next row). Always ready.
    lists   In stream ``list_layout``: a tile's lists, ``first`` / ``final`` mark the block's
            first / last tile. Ready when every lane's queue is empty.
    k_en, k_addr, k_row / v_en, v_addr, v_row   In: store writes (address slot·tile + key).
    v_filled    In: the V rows of the next tile are all written.
    k_release, v_release, q_free    Out (see above).
    o       Out stream ``out_layout(cfg, final)``: a block's lane results, lanes 0..T-1, once
            every lane is done. The lanes' final pass ``final``: :class:`hw.sufa_state.Normalise`
            (a core): {lane, row[d]}; :class:`hw.sufa_state.Unload` (a Spatial-STAR node):
            {lane, part}, ``part`` = {has, m, l, o[d]} (``hw.layouts.partial_layout``) not
            divided by l (the lanes have no reciprocal).
    mant, shift     In: runtime score scale; exact_max In: dense mode (exact tile max).
    rescales, merges    Out: max-assurance rescales and tile merges, summed over lanes, since
            ``clear``.
    mac_busy, stalled, v_wait   Out: number of lanes whose p·v multipliers take a chunk / that
            a rescale holds / that wait for their tile's V rows, this cycle.
Throughput one key per lane per G cycles; a rescale stalls its lane ``rescale_cycles(cfg)``
cycles (plus its pipeline drain); the block's O / L takes ``norm_cycles(cfg)`` per lane, then T
output cycles. Backpressure: ``lists`` waits for the lanes; o holds until taken.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from star.spec.formats import unsigned_bits

from .layouts import lane_row_layout
from .exp2 import Exp2Unit
from .sufa_lane import SufaLane, exp_group
from .sufa_state import Normalise
from .shared import add_lane
from .tilebuf import SLOTS, TileStore
from .turns import Turns

__all__ = ["SufaEngine"]


class SufaEngine(wiring.Component):
    def __init__(self, cfg, final=Normalise):
        self.cfg = cfg
        self.final = final
        self.fmt = fmt = cfg.formats
        T, d, b = cfg.lanes, cfg.head_dim, cfg.data_bits
        addr = unsigned_bits(SLOTS * cfg.tile - 1)
        row = data.ArrayLayout(unsigned(b), d)
        super().__init__({
            "q": In(stream.Signature(lane_row_layout(cfg), always_ready=True)),
            "lists": In(stream.Signature(self.list_layout(cfg))),
            "k_en": In(1), "k_addr": In(addr), "k_row": In(row),
            "v_en": In(1), "v_addr": In(addr), "v_row": In(row),
            "v_filled": In(1),
            "k_release": Out(1), "v_release": Out(1), "q_free": Out(1),
            "o": Out(stream.Signature(self.out_layout(cfg, final))),
            "mant": In(unsigned(fmt.scale_bits)),
            "shift": In(unsigned(fmt.scale_shift_bits)),
            "exact_max": In(1),
            "clear": In(1),
            "rescales": Out(32),
            "merges": Out(32),
            "mac_busy": Out(range(T + 1)), "stalled": Out(range(T + 1)),
            "v_wait": Out(range(T + 1)),
        })

    @staticmethod
    def list_layout(cfg) -> data.StructLayout:
        """The lists payload: per lane ``index[k_tile]`` (keys within the tile, in visit order)
        and ``count`` (entries used; with exact_max the number of visible keys, walked as
        0..count-1), and the block flags ``first`` and ``final``."""
        return data.StructLayout({
            "index": data.ArrayLayout(data.ArrayLayout(unsigned_bits(cfg.tile - 1), cfg.k_tile),
                                      cfg.lanes),
            "count": data.ArrayLayout(unsigned_bits(cfg.tile), cfg.lanes),
            "first": 1, "final": 1})

    @staticmethod
    def out_layout(cfg, final=Normalise) -> data.StructLayout:
        """The o stream payload: {lane, ``final.FIELD``: the lane's result}."""
        return data.StructLayout({"lane": lane_row_layout(cfg)["lane"].shape,
                                  final.FIELD: final.result_layout(cfg)})

    def elaborate(self, platform):
        m = Module()
        T = self.cfg.lanes
        m.submodules.kstore = ks = TileStore(self.cfg)
        m.submodules.vstore = vs = TileStore(self.cfg)
        # the query rows: the current and the next block's row of each lane, read like K
        tb = unsigned_bits(T - 1)
        m.submodules.qstore = qs = TileStore(self.cfg, depth=2 << tb)
        m.d.comb += [ks.w_en.eq(self.k_en), ks.w_addr.eq(self.k_addr), ks.w_row.eq(self.k_row),
                     vs.w_en.eq(self.v_en), vs.w_addr.eq(self.v_addr), vs.w_row.eq(self.v_row)]
        lanes = [SufaLane(self.cfg, self.final) for _ in range(T)]
        lst = self.lists.payload
        q_slots = Cat(l.q.slot for l in lanes)
        m.d.comb += [qs.w_en.eq(self.q.valid), qs.w_row.eq(self.q.payload.row),
                     qs.w_addr.eq(Cat(self.q.payload.lane[:tb],
                                      ~q_slots.bit_select(self.q.payload.lane, 1)))]
        m.d.comb += [self.lists.ready.eq(~Cat(l.list.full for l in lanes).any()),
                     self.q_free.eq(~Cat(l.q.full for l in lanes).any()),
                     self.k_release.eq(Cat(l.k_slots.pend for l in lanes).all()),
                     self.v_release.eq(Cat(l.v_slots.pend for l in lanes).all())]
        self._exp_units(m, lanes)
        for t, lane in enumerate(lanes):
            add_lane(m, f"lane{t}", lane, "sufa", (self.cfg, self.final))
            connect(m, lane.k, ks.rd[t])
            connect(m, lane.v, vs.rd[t])
            entry = lane.list.entry
            m.d.comb += [
                lane.exact_max.eq(self.exact_max), lane.clear.eq(self.clear),
                lane.q.we.eq(self.q.valid & (self.q.payload.lane == t)),
                qs.rd[t].addr.eq(Cat(Const(t, tb), lane.q.slot)), lane.q.chunk.eq(qs.rd[t].chunk),
                lane.list.we.eq(self.lists.valid & self.lists.ready),
                entry.index.eq(lst.index[t]), entry.count.eq(lst.count[t]),
                entry.first.eq(lst.first), entry.final.eq(lst.final),
                lane.v_filled.eq(self.v_filled),
                lane.k_slots.release.eq(self.k_release), lane.v_slots.release.eq(self.v_release),
            ]
        m.d.comb += [self.mac_busy.eq(sum(l.mac_busy for l in lanes)),
                     self.stalled.eq(sum(l.stalled for l in lanes)),
                     self.v_wait.eq(sum(l.v_wait for l in lanes))]
        # the lanes' event pulses registered before they are counted (a cycle late)
        over, grow = Signal(len(lanes)), Signal(len(lanes))
        m.d.sync += [over.eq(Cat(l.over for l in lanes)), grow.eq(Cat(l.grow for l in lanes))]
        with m.If(self.clear):
            m.d.sync += [self.rescales.eq(0), self.merges.eq(0)]
        with m.Else():
            m.d.sync += [self.rescales.eq(self.rescales + sum(over)),
                         self.merges.eq(self.merges + sum(grow))]
        self._output(m, lanes)
        return m

    def _exp_units(self, m, lanes):
        """An exp2 unit per ``exp_group`` lanes, which take fixed turns at it
        (:class:`hw.turns.Turns`: the OR of their ``exp_t``, zero outside their turns,
        registered)."""
        g = exp_group(self.cfg)
        for k in range(0, len(lanes), g):
            group = lanes[k:k + g]
            exp = m.submodules[f"exp{k // g}"] = Exp2Unit(self.cfg)
            turns = m.submodules[f"exp_turns{k // g}"] = Turns(exp.t.shape(), g)
            m.d.comb += [exp.en.eq(1), exp.mant.eq(self.mant), exp.shift.eq(self.shift),
                         exp.t.eq(turns.o)]
            for j, lane in enumerate(group):
                m.d.comb += [turns.i[j].eq(lane.exp.t), lane.exp.turn.eq(turns.turn[j]),
                             lane.exp.p.eq(exp.p)]

    def _output(self, m, lanes):
        """Once every lane is done with the block: its rows (or states) in lane order."""
        T = self.cfg.lanes
        out_lane = Signal(range(T + 1))
        all_done = Cat(l.done for l in lanes).all()
        m.d.comb += [self.o.valid.eq(all_done), self.o.payload.lane.eq(out_lane)]
        with m.Switch(out_lane):
            for t, lane in enumerate(lanes):
                with m.Case(t):
                    m.d.comb += self.o.payload[self.final.FIELD].eq(lane.result)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_lane.eq(out_lane + 1)
            with m.If(out_lane == T - 1):
                m.d.sync += out_lane.eq(0)
                m.d.comb += [lane.clear_block.eq(1) for lane in lanes]
