"""SU-FA engine: exact attention over the selected keys, max fixed up front, max assurance.

Model: :mod:`golden.sufa` (bit-exact). Units: ``hw/dot.py``, ``hw/exp2.py``, ``hw/recip.py``. Two stages joined by FIFOs, so the score stage works on
tile j+1 while the accumulate stage finishes tile j:

* score stage S (a dot product per lane, ``hw/dot.py``): a K row is broadcast to every lane each cycle with per-lane
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
            With ``partial`` (Spatial-STAR): {lane, part} instead, ``part`` the lane's state
            {has, m, l, o[d]} (``hw.merge.partial_layout``) not divided by l: the block ends
            after its last beat leaves the accumulate pipeline (no reciprocal, no normalisation;
            the lanes have no reciprocal unit).
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

from amaranth import Cat, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from gen.formats import Formats, unsigned_bits

from .dot import dot_latency, dot_product
from .exp2 import Exp2Unit
from .layouts import lane_row_layout
from .merge import partial_layout
from .recip import Reciprocal

__all__ = ["SufaEngine", "SufaLane"]


class SufaEngine(wiring.Component):
    def __init__(self, cfg, partial: bool = False):
        self.cfg = cfg
        self.partial = partial
        self.fmt = fmt = Formats(cfg)
        self.score_latency = dot_latency(cfg.head_dim)
        super().__init__({
            "q": In(stream.Signature(self.query_layout(cfg))),
            "k": In(stream.Signature(self.key_layout(cfg))),
            "v": In(stream.Signature(self.value_layout(cfg))),
            "o": Out(stream.Signature(self.partial_out_layout(cfg) if partial
                                      else self.query_layout(cfg))),
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
    def partial_out_layout(cfg) -> data.StructLayout:
        """The o stream payload with ``partial``: a lane's partial state."""
        return data.StructLayout({"lane": lane_row_layout(cfg)["lane"].shape,
                                  "part": partial_layout(cfg)})

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
        sb = fmt.score_bits
        lanes = [SufaLane(cfg, self.partial) for _ in range(T)]
        for t, lane in enumerate(lanes):
            m.submodules[f"lane{t}"] = lane
            m.d.comb += [lane.mant.eq(self.mant), lane.shift.eq(self.shift)]

        # ---- stage S: dot products ---------------------------------------------------------
        m.d.comb += self.q.ready.eq(1)
        for t, lane in enumerate(lanes):
            m.d.comb += [lane.q_we.eq(self.q.valid & (self.q.payload.lane == t)),
                         lane.q_row.eq(self.q.payload.row)]

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
        out = flags[-1]
        beat = Signal(beat_layout)
        tile_rec = Signal(tile_layout)
        m.d.comb += [beat.use.eq(out.use), beat.last.eq(out.last), beat.final.eq(out.final)]
        for t, lane in enumerate(lanes):
            # tile max per lane: over the top-flagged beats (exact_max: over the used beats)
            m.d.comb += [lane.k_row.eq(self.k.payload.row), lane.en_s.eq(en_s),
                         lane.cand.eq(Mux(self.exact_max, out.use[t], out.top[t])),
                         lane.beat_valid.eq(en_s & out.valid), lane.beat_last.eq(out.last),
                         beat.s[t].eq(lane.score),
                         tile_rec.m[t].eq(lane.tile_m), tile_rec.has[t].eq(lane.tile_has)]
        m.d.comb += [beats.w_data.eq(beat), beats.w_en.eq(en_s & out.valid)]
        m.d.comb += [tiles.w_data.eq(tile_rec), tiles.w_en.eq(en_s & out.valid & out.last)]

        # ---- stage A: accumulate -------------------------------------------------------------
        head = data.View(beat_layout, beats.r_data)
        tile_head = data.View(tile_layout, tiles.r_data)
        tile_start = Signal(init=1)

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
        stage = apipe[Exp2Unit.latency - 1]         # aligned with the exp units' outputs
        busy_pipe = Signal()
        m.d.comb += busy_pipe.eq(sum(x.valid for x in apipe) != 0)

        sel_e = Signal(range(d + 1))               # d = L, else O[sel_e]
        normalizing = Signal()
        cmd = Signal(SufaLane.cmd_layout(self.partial))
        for t, lane in enumerate(lanes):
            m.d.comb += [
                lane.tile_start.eq(tile_start), lane.tile_m_in.eq(tile_head.m[t]),
                lane.tile_has_in.eq(tile_head.has[t]),
                lane.head_use.eq(head.use[t]), lane.head_s.eq(head.s[t]),
                lane.p_use.eq(stage.valid & stage.use[t]), lane.v_row.eq(stage.v),
                lane.acc.eq(apipe[-1].valid),
                lane.sel_e.eq(sel_e), lane.normalizing.eq(normalizing), lane.cmd.eq(cmd),
            ]
        grow = Signal(T)
        over = Signal(T)
        m.d.comb += [grow.eq(Cat(lane.grow for lane in lanes)),
                     over.eq(Cat(lane.over for lane in lanes))]
        out_lane = Signal(range(T + 1))
        wait = Signal(range(Exp2Unit.latency + 2))

        with m.If(self.clear):
            m.d.sync += [self.rescales.eq(0), self.merges.eq(0)]

        with m.FSM(name="sufa"):
            with m.State("RUN"):
                ready = beats.r_rdy & self.v.valid & (~tile_start | tiles.r_rdy)
                with m.If(ready & tile_start & ~grow.any()):
                    # take the tile record (lanes without state adopt its max); the beat
                    # below is handled in the same cycle
                    m.d.comb += [tiles.r_en.eq(1), cmd.take_tile.eq(1)]
                    m.d.sync += tile_start.eq(0)
                with m.If(ready & tile_start & grow.any()):
                    # the running max grows: rescale the state first (the tile merge)
                    m.d.comb += [tiles.r_en.eq(1), cmd.take_tile.eq(1), cmd.take_grow.eq(1)]
                    m.d.sync += tile_start.eq(0)
                    m.d.sync += self.merges.eq(self.merges + sum(grow))
                    m.next = "DRAIN"
                with m.Elif(ready & over.any()):
                    # max assurance: a score above the fixed max
                    m.d.comb += cmd.take_over.eq(1)
                    m.d.sync += self.rescales.eq(self.rescales + sum(over))
                    m.next = "DRAIN"
                with m.Elif(ready):
                    # fast path: the beat enters the exp / accumulate pipeline
                    m.d.comb += [enter.eq(1), beats.r_en.eq(1), self.v.ready.eq(1),
                                 cmd.enter.eq(1)]
                    m.d.sync += tile_start.eq(head.last)
                    with m.If(head.final):         # the block's last beat: normalise next
                        m.next = "FINAL"
            with m.State("DRAIN"):
                # wait for the pipeline to empty, then compute the factors w(new max - M)
                with m.If(~busy_pipe):
                    m.d.comb += cmd.factor.eq(1)
                    m.d.sync += wait.eq(Exp2Unit.latency)
                    m.next = "FACTOR"
            with m.State("FACTOR"):
                m.d.comb += cmd.factor.eq(1)
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 1):
                    m.d.comb += cmd.load_factor.eq(1)
                    m.d.sync += [sel_e.eq(0), normalizing.eq(0)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += cmd.scale.eq(1)
                m.d.sync += sel_e.eq(sel_e + 1)
                with m.If(sel_e == d):
                    m.d.comb += cmd.commit.eq(1)
                    m.next = "RUN"
            with m.State("FINAL"):
                with m.If(~busy_pipe):
                    if self.partial:
                        m.d.sync += out_lane.eq(0)
                        m.next = "OUT"
                    else:
                        m.d.comb += cmd.recip_start.eq(1)
                        m.next = "RECIP"
            if not self.partial:
                with m.State("RECIP"):
                    with m.If(lanes[0].recip_done):
                        m.d.comb += cmd.load_recip.eq(1)
                        m.d.sync += [sel_e.eq(0), normalizing.eq(1)]
                        m.next = "NORM"
                with m.State("NORM"):
                    m.d.comb += cmd.norm.eq(1)
                    m.d.sync += sel_e.eq(sel_e + 1)
                    with m.If(sel_e == d - 1):
                        m.d.sync += [out_lane.eq(0), normalizing.eq(0)]
                        m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.lane.eq(out_lane)]
                with m.Switch(out_lane):
                    for t, lane in enumerate(lanes):
                        with m.Case(t):
                            if self.partial:
                                m.d.comb += self.o.payload.part.eq(lane.state)
                            else:
                                m.d.comb += self.o.payload.row.eq(lane.o_row)
                with m.If(self.o.ready):
                    m.d.sync += out_lane.eq(out_lane + 1)
                    with m.If(out_lane == T - 1):
                        m.d.comb += cmd.clear_block.eq(1)
                        m.d.sync += tile_start.eq(1)
                        m.next = "RUN"
        return m


class SufaLane(Elaboratable):
    """One query lane of :class:`SufaEngine`: its dot product, tile max, softmax state (M, L,
    O[d]), exp2 unit, p·v products, state multiplier, reciprocal unit and output row.

    Every lane is the same module (no lane index inside), so synthesis can map one and instance
    it T times. The engine's FSM drives ``cmd`` (one strobe per action, see ``Cmd``), ``sel_e``
    (the state element being scaled / normalised, d = L) and ``normalizing``; the lane reports
    ``grow`` (its max grows at a tile start), ``over`` (a used score beats its max) and
    ``recip_done``. Latencies are the engine's (see :class:`SufaEngine`).
    """

    Cmd = data.StructLayout({
        "take_tile": 1,     # tile start: adopt the tile max when the lane has no state
        "take_grow": 1,     # with take_tile: mark a grown max pending (the tile merge)
        "take_over": 1,     # max assurance: mark a score above the max pending
        "enter": 1,         # a beat enters the exp / accumulate pipeline
        "factor": 1,        # exp input = pending max - M (the rescale factor)
        "load_factor": 1,   # latch the factor (1.0 when nothing is pending)
        "scale": 1,         # state[sel_e] *= factor
        "commit": 1,        # after scaling: M = pending max
        "recip_start": 1,   # start 1 / L
        "load_recip": 1,    # latch the reciprocal and its shift
        "norm": 1,          # output[sel_e] = saturate(O[sel_e] / L)
        "clear_block": 1,   # block done: clear the state
    })

    @classmethod
    def cmd_layout(cls, partial: bool) -> data.StructLayout:
        """``Cmd``, without the normalisation strobes for a lane that keeps its state."""
        if not partial:
            return cls.Cmd
        return data.StructLayout({name: field.shape for name, field in cls.Cmd
                                  if name not in ("recip_start", "load_recip", "norm")})

    def __init__(self, cfg, partial: bool = False):
        self.cfg = cfg
        self.partial = partial
        self.fmt = fmt = Formats(cfg)
        d, b, sb = cfg.head_dim, cfg.data_bits, fmt.score_bits
        row = data.ArrayLayout(signed(b), d)
        # stage S
        self.q_we, self.q_row = Signal(), Signal(row)
        self.k_row, self.en_s = Signal(row), Signal()
        self.cand, self.beat_valid, self.beat_last = Signal(), Signal(), Signal()
        self.score = Signal(signed(sb))
        self.tile_m, self.tile_has = Signal(signed(sb)), Signal()
        # stage A
        self.mant = Signal(fmt.scale_bits)
        self.shift = Signal(fmt.scale_shift_bits)
        self.tile_start, self.tile_m_in, self.tile_has_in = Signal(), Signal(signed(sb)), Signal()
        self.head_use, self.head_s = Signal(), Signal(signed(sb))
        self.p_use, self.v_row, self.acc = Signal(), Signal(row), Signal()
        self.sel_e = Signal(range(d + 1))
        self.normalizing = Signal()
        self.cmd = Signal(self.cmd_layout(partial))
        self.grow, self.over, self.recip_done = Signal(), Signal(), Signal()
        self.o_row = Signal(row)
        self.state = Signal(partial_layout(cfg))    # {has, m (0 without has), l, o}

    def elaborate(self, platform):
        m = Module()
        cfg, fmt, cmd = self.cfg, self.fmt, self.cmd
        d, b = cfg.head_dim, cfg.data_bits
        sb, P, R = fmt.score_bits, fmt.exp_out_bits, fmt.recip_bits

        # ---- stage S: s = q·k, the tile max ------------------------------------------------
        qreg = [Signal(signed(b), name=f"q_e{e}") for e in range(d)]
        with m.If(self.q_we):
            m.d.sync += [qreg[e].eq(self.q_row[e]) for e in range(d)]
        m.d.comb += self.score.eq(dot_product(m, qreg, self.k_row, self.en_s, b))
        mt = Signal(signed(sb))
        mh = Signal()
        m.d.comb += [
            self.tile_m.eq(Mux(self.cand & (~mh | (self.score > mt)), self.score, mt)),
            self.tile_has.eq(mh | self.cand),
        ]
        with m.If(self.beat_valid):
            m.d.sync += [mt.eq(self.tile_m), mh.eq(self.tile_has & ~self.beat_last)]

        # ---- stage A: softmax state ---------------------------------------------------------
        M = Signal(signed(sb))
        has = Signal()
        L = Signal(fmt.l_bits)
        O = [Signal(signed(fmt.o_bits), name=f"O_e{e}") for e in range(d)]
        m_eff = Signal(signed(sb))
        adopt = Signal()
        m.d.comb += [
            adopt.eq(self.tile_start & self.tile_has_in & ~has),
            m_eff.eq(Mux(adopt, self.tile_m_in, M)),
            self.grow.eq(self.tile_start & self.tile_has_in & has & (self.tile_m_in > M)),
            self.over.eq(self.head_use & (self.head_s > m_eff)),
        ]
        pend = Signal()
        pend_m = Signal(signed(sb))
        with m.If(cmd.take_tile & adopt):
            m.d.sync += [M.eq(self.tile_m_in), has.eq(1)]
        with m.If(cmd.take_grow):
            m.d.sync += [pend.eq(self.grow), pend_m.eq(self.tile_m_in)]
        with m.If(cmd.take_over):
            m.d.sync += [pend.eq(self.over), pend_m.eq(self.head_s)]

        m.submodules.exp = exp = Exp2Unit(cfg)
        m.d.comb += [exp.en.eq(1), exp.mant.eq(self.mant), exp.shift.eq(self.shift),
                     exp.t.eq(Mux(cmd.enter & self.head_use, m_eff - self.head_s,
                                  Mux(cmd.factor & pend, pend_m - M, 0)))]

        # p·v products (one accumulate-pipeline stage), then the accumulation
        pd = Signal(fmt.p_bits)
        pv = [Signal(signed(fmt.p_bits + b), name=f"pv_e{e}") for e in range(d)]
        p = Mux(self.p_use, exp.p, 0)
        m.d.sync += pd.eq(p)
        m.d.sync += [pv[e].eq(p * self.v_row[e]) for e in range(d)]
        with m.If(self.acc):
            m.d.sync += L.eq(L + pd)
            m.d.sync += [O[e].eq(O[e] + pv[e]) for e in range(d)]

        # state multiplier (rescale by f, normalise by r): one element per cycle
        f_reg = Signal(max(fmt.p_bits, R + 1))
        nshift = Signal(unsigned_bits(fmt.l_bits - 1 + R))
        x = Signal(signed(fmt.o_bits))
        with m.Switch(self.sel_e):
            for e in range(d):
                with m.Case(e):
                    m.d.comb += x.eq(O[e])
            with m.Default():
                m.d.comb += x.eq(L)
        prod = Signal(signed(fmt.o_bits + len(f_reg) + 1))
        m.d.comb += prod.eq(x * f_reg)
        mul_out = Signal(signed(len(prod) + 1))
        if self.partial:
            m.d.comb += mul_out.eq((prod + (1 << (P - 1))) >> P)
        else:
            sh = Mux(self.normalizing, nshift, P)
            m.d.comb += mul_out.eq((prod + (1 << (sh - 1)[:len(nshift)])) >> sh)
        with m.If(cmd.load_factor):
            m.d.sync += f_reg.eq(Mux(pend, exp.p, 1 << P))
        with m.If(cmd.scale):
            with m.Switch(self.sel_e):
                for e in range(d):
                    with m.Case(e):
                        m.d.sync += O[e].eq(mul_out)
                with m.Default():
                    m.d.sync += L.eq(mul_out)
        with m.If(cmd.commit & pend):
            m.d.sync += M.eq(pend_m)

        m.d.comb += [self.state.has.eq(has), self.state.m.eq(Mux(has, M, 0)),
                     self.state.l.eq(L)]
        m.d.comb += [self.state.o[e].eq(O[e]) for e in range(d)]
        if not self.partial:
            m.submodules.recip = recip = Reciprocal(cfg)
            m.d.comb += [recip.l.eq(L), recip.start.eq(cmd.recip_start),
                         self.recip_done.eq(recip.done)]
            with m.If(cmd.load_recip):
                m.d.sync += [f_reg.eq(recip.r), nshift.eq(recip.shift)]
            sat = Mux(mul_out > fmt.qmax, fmt.qmax, Mux(mul_out < fmt.qmin, fmt.qmin, mul_out))
            with m.If(cmd.norm):
                with m.Switch(self.sel_e):
                    for e in range(d):
                        with m.Case(e):
                            m.d.sync += self.o_row[e].eq(sat)
        with m.If(cmd.clear_block):
            m.d.sync += [has.eq(0), L.eq(0)] + [o.eq(0) for o in O]
        return m
