"""SU-FA engine: exact attention over the selected keys, max fixed up front, max assurance.

Model: :mod:`golden.sufa` (bit-exact). Units: ``hw/dot.py``, ``hw/exp2.py``, ``hw/recip.py``. Two stages joined by FIFOs, so the score stage works on
tile j+1 while the accumulate stage finishes tile j:

* score stage S (dot-product lanes, ``hw/dot.py``): a K row is broadcast to every lane each cycle with per-lane
  flags ``use`` (the lane selected this key) and ``top`` (it is the lane's predicted top-1 or
  top-2); s = q·k (d multipliers and an adder tree per lane). The tile's fixed max per lane is
  max(s over top-flagged beats) (``exact_max``: over every used beat, the dense FA-2 baseline).
  Scores go to the beat FIFO, the tile max to the tile FIFO at the tile's ``last`` beat.
* accumulate stage A: the V rows arrive in the same order as the K rows. At a tile's first beat
  the running max M becomes max(M, tile max) (a grown max rescales the state: the tile merge);
  then per beat and lane: s > M takes the max-assurance rescale (counted); otherwise (fast path)
  p = exp2 weight of M - s, L += p, O += p·v. After the ``final`` tile: O / L by the reciprocal
  unit, one output row per lane.

Ports
    q       In stream {lane, row[d]}: query rows (held per lane; load before the block's K beats).
    k       In stream {row[d], use[T], top[T], last, final}: K beats; ``last`` ends a tile,
            ``final`` (with ``last``) ends the query block.
    v       In stream {row[d]}: V beats, one per K beat, same order.
    o       Out stream {lane, row[d]}: the output rows of a block, lanes 0..T-1 in order.
    mant, shift     In: runtime score scale; exact_max In: dense-baseline mode.
    rescales, merges Out: counts of max-assurance rescales and of state rescales at tile starts
            (summed over lanes) since reset or ``clear``.
Throughput: one K beat and one V beat per cycle on the fast path; each lane accumulates the
beats it selected. With lanes = 1 (one engine per query lane, fed its own keys) that is one
selected key per cycle per lane; a group of lanes sharing a beat stream trades that for one K/V
row read per beat (lane utilisation = the lane's keys / the group's union). A rescale event (a
grown max at a tile start, or max assurance) stalls stage A for d + 9 cycles (the state is scaled
one element per cycle by a per-lane wide multiplier); the final normalisation takes about
R + d + T + 6 cycles per block. Latency K beat -> score FIFO: ``score_latency`` cycles.
Backpressure: k stalls when the beat FIFO (two tiles) is full; o holds until taken.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from gen.formats import Formats, unsigned_bits

from .dot import dot_latency, dot_lanes
from .exp2 import Exp2Unit
from .layouts import lane_row_layout
from .recip import Reciprocal

__all__ = ["SufaEngine"]


class SufaEngine(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        self.fmt = fmt = Formats(cfg)
        self.score_latency = dot_latency(cfg.head_dim)
        super().__init__({
            "q": In(stream.Signature(self.query_layout(cfg))),
            "k": In(stream.Signature(self.key_layout(cfg))),
            "v": In(stream.Signature(self.value_layout(cfg))),
            "o": Out(stream.Signature(self.query_layout(cfg))),
            "mant": In(unsigned(fmt.scale_bits)),
            "shift": In(unsigned(fmt.scale_shift_bits)),
            "exact_max": In(1),
            "clear": In(1),
            "rescales": Out(32),
            "merges": Out(32),
        })

    @staticmethod
    def query_layout(cfg) -> data.StructLayout:
        """The q and o stream payloads: a row of one lane."""
        return lane_row_layout(cfg)

    @staticmethod
    def key_layout(cfg) -> data.StructLayout:
        """The k stream payload."""
        return data.StructLayout({
            "row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim),
            "use": data.ArrayLayout(1, cfg.lanes), "top": data.ArrayLayout(1, cfg.lanes),
            "last": 1, "final": 1})

    @staticmethod
    def value_layout(cfg) -> data.StructLayout:
        """The v stream payload."""
        return data.StructLayout({"row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)})

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        T, d, b = cfg.lanes, cfg.head_dim, cfg.data_bits
        sb, P, R = fmt.score_bits, fmt.exp_out_bits, fmt.recip_bits

        # ---- stage S: dot products ---------------------------------------------------------
        qreg = [[Signal(signed(b), name=f"q_l{t}_e{e}") for e in range(d)] for t in range(T)]
        m.d.comb += self.q.ready.eq(1)
        with m.If(self.q.valid):
            for t in range(T):
                with m.If(self.q.payload.lane == t):
                    m.d.sync += [qreg[t][e].eq(self.q.payload.row[e]) for e in range(d)]

        beat_layout = data.StructLayout({
            "s": data.ArrayLayout(signed(sb), T), "use": data.ArrayLayout(1, T),
            "last": 1, "final": 1})
        tile_layout = data.StructLayout({
            "m": data.ArrayLayout(signed(sb), T), "has": data.ArrayLayout(1, T)})
        m.submodules.beats = beats = SyncFIFOBuffered(width=beat_layout.size, depth=2 * cfg.tile)
        m.submodules.tiles = tiles = SyncFIFOBuffered(width=tile_layout.size, depth=4)

        en_s = Signal()
        m.d.comb += [en_s.eq(beats.w_rdy & tiles.w_rdy), self.k.ready.eq(en_s)]
        lat = self.score_latency
        fl_layout = data.StructLayout({"valid": 1, "use": data.ArrayLayout(1, T),
                                       "top": data.ArrayLayout(1, T), "last": 1, "final": 1})
        flags = [Signal(fl_layout, name=f"sflags_{i}") for i in range(lat)]
        with m.If(en_s):
            m.d.sync += [flags[0].valid.eq(self.k.valid), flags[0].use.eq(self.k.payload.use),
                         flags[0].top.eq(self.k.payload.top), flags[0].last.eq(self.k.payload.last),
                         flags[0].final.eq(self.k.payload.final)]
            m.d.sync += [flags[i].eq(flags[i - 1]) for i in range(1, lat)]
        scores = dot_lanes(m, qreg, self.k.payload.row, en_s, b)
        out = flags[-1]
        beat = Signal(beat_layout)
        m.d.comb += [beat.use.eq(out.use), beat.last.eq(out.last), beat.final.eq(out.final)]
        m.d.comb += [beat.s[t].eq(scores[t]) for t in range(T)]
        m.d.comb += [beats.w_data.eq(beat), beats.w_en.eq(en_s & out.valid)]

        # tile max per lane: over the top-flagged beats (exact_max: over the used beats)
        mt = [Signal(signed(sb), name=f"mt_l{t}") for t in range(T)]
        mh = [Signal(name=f"mh_l{t}") for t in range(T)]
        tile_rec = Signal(tile_layout)
        for t in range(T):
            cand = Mux(self.exact_max, out.use[t], out.top[t])
            nm = Mux(cand & (~mh[t] | (scores[t] > mt[t])), scores[t], mt[t])
            nh = mh[t] | cand
            m.d.comb += [tile_rec.m[t].eq(nm), tile_rec.has[t].eq(nh)]
            with m.If(en_s & out.valid):
                m.d.sync += [mt[t].eq(nm), mh[t].eq(nh & ~out.last)]
        m.d.comb += [tiles.w_data.eq(tile_rec), tiles.w_en.eq(en_s & out.valid & out.last)]

        # ---- stage A: accumulate -------------------------------------------------------------
        head = data.View(beat_layout, beats.r_data)
        tile_head = data.View(tile_layout, tiles.r_data)
        M = [Signal(signed(sb), name=f"M_l{t}") for t in range(T)]
        has = [Signal(name=f"has_l{t}") for t in range(T)]
        L = [Signal(fmt.l_bits, name=f"L_l{t}") for t in range(T)]
        O = [[Signal(signed(fmt.o_bits), name=f"O_l{t}_e{e}") for e in range(d)]
             for t in range(T)]
        tile_start = Signal(init=1)

        exps = []
        t_in = [Signal(fmt.score_bits + 1, name=f"t_l{t}") for t in range(T)]
        for t in range(T):
            unit = Exp2Unit(cfg)
            m.submodules[f"exp_l{t}"] = unit
            m.d.comb += [unit.en.eq(1), unit.t.eq(t_in[t]), unit.mant.eq(self.mant),
                         unit.shift.eq(self.shift)]
            exps.append(unit)

        # accumulate pipeline: entry -> exp (3) -> p·v product -> add
        a_lat = Exp2Unit.latency + 1
        a_layout = data.StructLayout({"valid": 1, "use": data.ArrayLayout(1, T),
                                      "v": data.ArrayLayout(signed(b), d)})
        apipe = [Signal(a_layout, name=f"apipe_{i}") for i in range(a_lat)]
        enter = Signal()
        entry = Signal(a_layout)
        m.d.comb += [entry.valid.eq(enter), entry.use.eq(head.use)]
        m.d.comb += [entry.v[e].eq(self.v.payload.row[e]) for e in range(d)]
        m.d.sync += apipe[0].eq(entry)
        m.d.sync += [apipe[i].eq(apipe[i - 1]) for i in range(1, a_lat)]
        pv = [[Signal(signed(fmt.p_bits + b), name=f"pv_l{t}_e{e}") for e in range(d)]
              for t in range(T)]
        pd = [Signal(fmt.p_bits, name=f"p_l{t}") for t in range(T)]
        stage = apipe[Exp2Unit.latency - 1]         # aligned with the exp units' outputs
        for t in range(T):
            p = Mux(stage.valid & stage.use[t], exps[t].p, 0)
            m.d.sync += pd[t].eq(p)
            m.d.sync += [pv[t][e].eq(p * stage.v[e]) for e in range(d)]
        busy_pipe = Signal()
        m.d.comb += busy_pipe.eq(sum(x.valid for x in apipe) != 0)

        # state multiplier (rescale by f, normalise by r): one element per cycle per lane
        sel_e = Signal(range(d + 1))               # d = L, else O[sel_e]
        f_reg = [Signal(max(fmt.p_bits, R + 1), name=f"f_l{t}") for t in range(T)]
        nshift = [Signal(unsigned_bits(fmt.l_bits - 1 + R), name=f"nsh_l{t}") for t in range(T)]
        normalizing = Signal()
        pend_m = [Signal(signed(sb), name=f"pm_l{t}") for t in range(T)]
        pend = [Signal(name=f"pend_l{t}") for t in range(T)]
        outbuf = [[Signal(signed(b), name=f"ob_l{t}_e{e}") for e in range(d)] for t in range(T)]
        mul_out = []
        for t in range(T):
            x = Signal(signed(fmt.o_bits), name=f"mx_l{t}")
            with m.Switch(sel_e):
                for e in range(d):
                    with m.Case(e):
                        m.d.comb += x.eq(O[t][e])
                with m.Default():
                    m.d.comb += x.eq(L[t])
            prod = Signal(signed(fmt.o_bits + len(f_reg[t]) + 1), name=f"mp_l{t}")
            m.d.comb += prod.eq(x * f_reg[t])
            sh = Mux(normalizing, nshift[t], P)
            rounded = Signal(signed(len(prod) + 1), name=f"mr_l{t}")
            m.d.comb += rounded.eq((prod + (1 << (sh - 1)[:len(nshift[t])])) >> sh)
            mul_out.append(rounded)

        recips = []
        for t in range(T):
            unit = Reciprocal(cfg)
            m.submodules[f"recip_l{t}"] = unit
            m.d.comb += unit.l.eq(L[t])
            recips.append(unit)

        # entry checks: tile merge at a tile's first beat, max assurance on every beat.
        # At a tile's first beat a lane without state adopts the tile max (m_eff) at once.
        adopt = [Signal(name=f"adopt_l{t}") for t in range(T)]
        m_eff = [Signal(signed(sb), name=f"meff_l{t}") for t in range(T)]
        grow = [Signal(name=f"grow_l{t}") for t in range(T)]
        over = [Signal(name=f"over_l{t}") for t in range(T)]
        for t in range(T):
            m.d.comb += [
                adopt[t].eq(tile_start & tile_head.has[t] & ~has[t]),
                m_eff[t].eq(Mux(adopt[t], tile_head.m[t], M[t])),
                grow[t].eq(tile_start & tile_head.has[t] & has[t] & (tile_head.m[t] > M[t])),
                over[t].eq(head.use[t] & (head.s[t] > m_eff[t])),
            ]
        any_grow = Signal()
        any_over = Signal()
        m.d.comb += [any_grow.eq(sum(grow) != 0), any_over.eq(sum(over) != 0)]
        out_lane = Signal(range(T + 1))
        wait = Signal(range(Exp2Unit.latency + 2))

        with m.If(self.clear):
            m.d.sync += [self.rescales.eq(0), self.merges.eq(0)]

        with m.FSM(name="sufa"):
            with m.State("RUN"):
                ready = beats.r_rdy & self.v.valid & (~tile_start | tiles.r_rdy)
                with m.If(ready & tile_start & ~any_grow):
                    # take the tile record; lanes without state adopt its max
                    m.d.comb += tiles.r_en.eq(1)
                    m.d.sync += tile_start.eq(0)
                    for t in range(T):
                        with m.If(adopt[t]):
                            m.d.sync += [M[t].eq(tile_head.m[t]), has[t].eq(1)]
                with m.If(ready & tile_start & any_grow):
                    # the running max grows: rescale the state first (the tile merge)
                    m.d.comb += tiles.r_en.eq(1)
                    m.d.sync += tile_start.eq(0)
                    for t in range(T):
                        with m.If(adopt[t]):
                            m.d.sync += [M[t].eq(tile_head.m[t]), has[t].eq(1)]
                    m.d.sync += [pend[t].eq(grow[t]) for t in range(T)]
                    m.d.sync += [pend_m[t].eq(tile_head.m[t]) for t in range(T)]
                    m.d.sync += self.merges.eq(self.merges + sum(grow))
                    m.next = "DRAIN"
                with m.Elif(ready & any_over):
                    # max assurance: a score above the fixed max
                    m.d.sync += [pend[t].eq(over[t]) for t in range(T)]
                    m.d.sync += [pend_m[t].eq(head.s[t]) for t in range(T)]
                    m.d.sync += self.rescales.eq(self.rescales + sum(over))
                    m.next = "DRAIN"
                with m.Elif(ready):
                    # fast path: the beat enters the exp / accumulate pipeline
                    m.d.comb += [enter.eq(1), beats.r_en.eq(1), self.v.ready.eq(1)]
                    m.d.comb += [t_in[t].eq(Mux(head.use[t], m_eff[t] - head.s[t], 0))
                                 for t in range(T)]
                    m.d.sync += tile_start.eq(head.last)
                    with m.If(head.final):         # the block's last beat: normalise next
                        m.next = "FINAL"
            with m.State("DRAIN"):
                # wait for the pipeline to empty, then compute the factors w(new max - M)
                with m.If(~busy_pipe):
                    m.d.comb += [t_in[t].eq(Mux(pend[t], pend_m[t] - M[t], 0)) for t in range(T)]
                    m.d.sync += wait.eq(Exp2Unit.latency)
                    m.next = "FACTOR"
            with m.State("FACTOR"):
                m.d.comb += [t_in[t].eq(Mux(pend[t], pend_m[t] - M[t], 0)) for t in range(T)]
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 1):
                    m.d.sync += [f_reg[t].eq(Mux(pend[t], exps[t].p, 1 << P)) for t in range(T)]
                    m.d.sync += [sel_e.eq(0), normalizing.eq(0)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                for t in range(T):
                    with m.Switch(sel_e):
                        for e in range(d):
                            with m.Case(e):
                                m.d.sync += O[t][e].eq(mul_out[t])
                        with m.Default():
                            m.d.sync += L[t].eq(mul_out[t])
                m.d.sync += sel_e.eq(sel_e + 1)
                with m.If(sel_e == d):
                    for t in range(T):
                        with m.If(pend[t]):
                            m.d.sync += M[t].eq(pend_m[t])
                    m.next = "RUN"
            with m.State("FINAL"):
                with m.If(~busy_pipe):
                    m.d.comb += [r.start.eq(1) for r in recips]
                    m.next = "RECIP"
            with m.State("RECIP"):
                with m.If(recips[0].done):
                    m.d.sync += [f_reg[t].eq(recips[t].r) for t in range(T)]
                    m.d.sync += [nshift[t].eq(recips[t].shift) for t in range(T)]
                    m.d.sync += [sel_e.eq(0), normalizing.eq(1)]
                    m.next = "NORM"
            with m.State("NORM"):
                for t in range(T):
                    sat = Mux(mul_out[t] > fmt.qmax, fmt.qmax,
                              Mux(mul_out[t] < fmt.qmin, fmt.qmin, mul_out[t]))
                    with m.Switch(sel_e):
                        for e in range(d):
                            with m.Case(e):
                                m.d.sync += outbuf[t][e].eq(sat)
                m.d.sync += sel_e.eq(sel_e + 1)
                with m.If(sel_e == d - 1):
                    m.d.sync += [out_lane.eq(0), normalizing.eq(0)]
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.lane.eq(out_lane)]
                with m.Switch(out_lane):
                    for t in range(T):
                        with m.Case(t):
                            m.d.comb += [self.o.payload.row[e].eq(outbuf[t][e])
                                         for e in range(d)]
                with m.If(self.o.ready):
                    m.d.sync += out_lane.eq(out_lane + 1)
                    with m.If(out_lane == T - 1):
                        m.d.sync += [x.eq(0) for x in has + L]
                        m.d.sync += [x.eq(0) for row in O for x in row]
                        m.d.sync += tile_start.eq(1)
                        m.next = "RUN"

        # accumulate (outside the FSM: the pipeline drains in any state)
        acc = apipe[-1]
        with m.If(acc.valid):
            for t in range(T):
                m.d.sync += L[t].eq(L[t] + pd[t])
                m.d.sync += [O[t][e].eq(O[t][e] + pv[t][e]) for e in range(d)]
        return m

