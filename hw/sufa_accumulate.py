"""The accumulate stage A of a SU-FA lane: the softmax state over the lane's scored keys.

Model: :func:`golden.sufa.attend` (one row). Part of :class:`hw.sufa_lane.SufaLane`: A takes the
score stage's tile records (:class:`hw.sufa_score.TileRecords`) in order, and owns the running
max M, the row sum L, the output accumulator O (:class:`hw.sufa_state.OState`) and the state
pass (:class:`hw.sufa_state.StatePass`).

A uses P multipliers for p·v, a turn at its group's exp2 unit and the state pass. The engine's
exp2 unit serves ``exp_group(cfg)`` lanes in turn (``exp.turn`` one cycle in that many, the same
cycle of every G, so a lane walking without a stall always meets it; otherwise a key waits less
than exp_group cycles for it). Per tile, once the tile's record is ready (its fixed max known:
entries 0 and 1 scored, so A follows S through the tile a few cycles behind; with ``exact_max``
once every entry is scored) and the tile's V rows are there, never ahead of the scores: the
running max M becomes max(M, tile max) (a grown max rescales the state first: the tile merge);
then per list entry: s > M takes the max-assurance rescale (counted); otherwise p = w(M - s),
L += p and O[e] += p·v[e] over G cycles, one chunk per cycle from the V tile store. One key per
G cycles; a rescale stalls this lane only, for ``rescale_cycles(cfg)`` cycles plus the pipeline
drain and the wait for its exp2 turn. After the block's final tile: the final pass
(``norm_cycles``), then the lane waits for the engine to take its row (``done`` until
``clear_block``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

from .arith import MulPipe, mul_latency
from .exp2 import exp2_latency
from .recip import recip_latency
from .sufa_records import TileRecords
from .sufa_state import O_READ_LATENCY, Normalise, OState, StatePass, state_latency
from .tilebuf import SLOTS, SlotReturn, StoreRead, count_returns
from .turns import TURNS_LATENCY

__all__ = ["AccumulateStage", "ExpTurn", "accumulate_latency", "rescale_cycles", "norm_cycles",
           "exp_latency", "exp_group", "exp_wait", "EXP_LANES"]

#: lanes that share one exp2 unit (with its score-scale multiplier): a lane needs a weight once per
#: key, every G = head_dim / sufa_macs cycles, so up to G lanes could take turns. A lane's first
#: key of a tile comes G + 2 cycles after its previous key (the tile's end and start), so it waits
#: (EXP_LANES - 2) cycles for its turn: 4 lanes keep that at 2 cycles a tile (8 would take 6: 3 %
#: of a 6-key tile at G = 32) and save three quarters of the units
EXP_LANES = 4


def exp_group(cfg) -> int:
    """Lanes per shared exp2 unit: ``EXP_LANES``, at most G (a power of two dividing G, so a lane
    that walks without a stall meets its turn at every key's first chunk)."""
    return min(EXP_LANES, cfg.formats.sufa_chunks)


def exp_wait(cfg) -> int:
    """The longest wait of a key (or a rescale factor) for its lane's exp2 turn."""
    return exp_group(cfg) - 1


def exp_latency(cfg) -> int:
    """Cycles from a lane's ``exp.t`` (in its turn) to its ``exp.p``: the group's
    :class:`hw.turns.Turns`, then the exp2 unit (:func:`hw.exp2.exp2_latency`)."""
    return TURNS_LATENCY + exp2_latency(cfg)


def accumulate_latency(cfg) -> int:
    """Cycles of the A stage: key issue -> exp2 -> V read address -> V chunk + p -> p·v product
    (pipelined) -> accumulate."""
    fmt = cfg.formats
    return exp_latency(cfg) + mul_latency(fmt.p_bits, cfg.data_bits) + 1


def _resume_lead(cfg) -> int:
    """Cycles from a walk resuming to its first O read: the exp2 turn's latency, then the V
    address and the V chunk."""
    return exp_latency(cfg) + 2


def rescale_cycles(cfg) -> int:
    """Cycles a rescale (tile merge or max assurance) takes once the lane's pipeline is empty
    (the exp2 factor is computed while it drains): the d elements of O and L one per cycle,
    the part of their results' return (``state_latency``) that a resumed walk does not hide,
    then M."""
    return cfg.head_dim + max(0, state_latency(cfg) - _resume_lead(cfg)) + 3


def norm_cycles(cfg) -> int:
    """Cycles of the final O / L once the pipeline is empty: the reciprocal, then d elements
    and their results back (``state_latency``)."""
    return recip_latency(cfg) + cfg.head_dim + state_latency(cfg) + 2


class ExpTurn(wiring.Signature):
    """A lane's turn at its group's exp2 unit, seen from the lane: ``turn`` In; ``t`` Out, the
    score difference sent in the turn (zero otherwise: the group ORs its lanes); ``p`` In, the
    weight of the difference sent ``exp_latency(cfg)`` cycles ago."""

    def __init__(self, cfg):
        fmt = cfg.formats
        super().__init__({"turn": In(1), "t": Out(fmt.score_bits + 1), "p": In(fmt.p_bits)})


class AccumulateStage(wiring.Component):
    """The accumulate stage (module docstring). Ports: ``records`` (the flipped
    :class:`hw.sufa_score.TileRecords`), ``exp`` (:class:`ExpTurn`), ``v``
    (:class:`hw.tilebuf.StoreRead` of the V store), ``v_slots`` (:class:`hw.tilebuf.SlotReturn`:
    A is done with a V tile), ``v_filled`` In (a tile's V rows are all in the store, tiles in
    order), ``clear`` In, ``done`` Out / ``clear_block`` In (the block's row is ready / taken),
    ``result`` Out (the lane's output: ``final``'s, :class:`hw.sufa_state.Normalise`'s O row or
    :class:`hw.sufa_state.Unload`'s {has, m (0 without has), l, o}), the pulses
    ``over`` (a max-assurance rescale) and ``grow`` (a tile merge), and ``mac_busy`` (the p·v
    multipliers take a chunk), ``stalled`` (a rescale holds the lane), ``v_wait`` (a record is
    ready but its tile's V rows are not all there) Out."""

    def __init__(self, cfg, final=Normalise):
        self.cfg, self.final = cfg, final
        super().__init__({
            "records": In(TileRecords(cfg)), "exp": Out(ExpTurn(cfg)),
            "v": Out(StoreRead(cfg)), "v_slots": Out(SlotReturn()), "v_filled": In(1),
            "clear": In(1), "done": Out(1), "clear_block": In(1),
            "over": Out(1), "grow": Out(1),
            "mac_busy": Out(1), "stalled": Out(1), "v_wait": Out(1),
            "result": Out(final.result_layout(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.cfg.formats
        m.submodules.ostate = O = OState(cfg)
        m.submodules.state_pass = sp = StatePass(cfg, self.final, _resume_lead(cfg))
        M, has = Signal(signed(fmt.score_bits)), Signal()
        L = Signal(fmt.l_bits)
        walk = self._walk_state(m)
        pipe = self._pipeline(m, walk, M, L, O, sp)
        self._control(m, walk, pipe, M, has, L, O, sp)
        m.d.comb += [sp.has.eq(has), sp.m.eq(Mux(has, M, 0)), self.result.eq(sp.result)]
        return m

    def _walk_state(self, m):
        """The walk's registers: the slot A reads, the tile's count and final flag, the entry
        ``e`` (``e_next`` is the one read from the score memory this cycle) and its chunk ``n``;
        the score memory's head (``s``, ``key``: entry e) and the tiles whose V rows are in."""
        cfg, rd = self.cfg, self.records
        lb = cfg.formats.log2_tile
        w = data.StructLayout({"slot": 1, "final": 1, "count": unsigned_bits(cfg.tile),
                               "e": unsigned_bits(cfg.tile),
                               "n": range(max(cfg.formats.sufa_chunks, 2))})
        walk = Signal(w, name="walk")
        e_next = Signal(unsigned_bits(cfg.tile))
        m.d.sync += walk.e.eq(e_next)
        m.d.comb += [e_next.eq(walk.e), rd.addr.eq(Cat(e_next[:lb], walk.slot))]
        with m.If(self.clear):
            m.d.sync += walk.slot.eq(0)
        v_avail = Signal(range(SLOTS + 1))
        m.d.sync += v_avail.eq(v_avail + self.v_filled - rd.take)
        return dict(w=walk, e_next=e_next, v_avail=v_avail)

    def _pipeline(self, m, walk, M, L, O, sp):
        """Issue -> exp2 -> V address -> V chunk and p -> p·v (pipelined) -> O[chunk] += p·v."""
        cfg, fmt = self.cfg, self.cfg.formats
        b, P, lb = cfg.data_bits, fmt.sufa_macs, fmt.log2_tile
        flag = data.StructLayout({"valid": 1, "first": 1, "key": lb, "slot": 1, "end": 1})
        issue = Signal(flag)
        fl = [Signal(flag, name="aflag_0")]
        m.d.sync += fl[0].eq(issue)
        for i in range(accumulate_latency(cfg) - 1):
            nxt = Signal(flag, name=f"aflag_{i + 1}")
            m.d.sync += nxt.eq(fl[-1])
            fl.append(nxt)
        busy = Signal()
        m.d.comb += busy.eq(Cat(*(f.valid | f.end for f in fl)).any())
        fv = fl[exp_latency(cfg) - 1]               # aligned with the exp2 output
        m.d.comb += [self.v.addr.eq(Cat(fv.key, fv.slot)), self.records.free.eq(fv.end)]
        count_returns(m, self.v_slots, fv.end)

        p_hold = Signal(fmt.p_bits)
        with m.If(fv.first):
            m.d.sync += p_hold.eq(self.exp.p)
        fp = fl[exp_latency(cfg)]                    # V chunk of fv's address is here
        pv = []                                      # p·v, pipelined: at fa
        for i in range(P):
            mul = m.submodules[f"pv_mul{i}"] = MulPipe(unsigned(fmt.p_bits), signed(b))
            m.d.comb += [mul.en.eq(1), mul.a.eq(Mux(fp.valid, p_hold, 0)),
                         mul.b.eq(self.v.chunk[i])]
            pv.append(mul.p)
        pd = [Signal(fmt.p_bits, name=f"pd_{i}") for i in range(mul_latency(fmt.p_bits, b))]
        m.d.sync += pd[0].eq(Mux(fp.valid & fp.first, p_hold, 0))
        m.d.sync += [pd[i + 1].eq(pd[i]) for i in range(len(pd) - 1)]
        fa = fl[-1]
        m.d.comb += self.mac_busy.eq(fp.valid)
        # O[chunk] += p·v[chunk]: the chunk is read O_READ_LATENCY cycles before its product is
        # there (as its V chunk arrives for an unsplit p·v, whose two cycles are O's read; later
        # for a split one), written in the cycle its sum is formed; the state pass reads and
        # writes one element per cycle while no key is in flight
        late = mul_latency(fmt.p_bits, b) - O_READ_LATENCY
        assert late >= 0
        fo = fl[exp_latency(cfg) + late]             # fp's chunk is read here
        lp = P.bit_length() - 1
        v_idx = Signal.like(self.v.phase)            # the index of the V chunk arriving
        m.d.sync += v_idx.eq(self.v.phase)
        for i in range(late):
            nxt = Signal.like(v_idx, name=f"v_idx_{i + 1}")
            m.d.sync += nxt.eq(v_idx)
            v_idx = nxt
        m.d.comb += [O.addr.eq(Mux(fo.valid, v_idx, sp.o_addr)), O.w_addr.eq(O.rd_chunk),
                     sp.o_data.eq(O.data), sp.l.eq(L)]
        with m.If(fa.valid):
            m.d.sync += L.eq(L + pd[-1])
            m.d.comb += [O.w_en.eq(-1), O.mark.eq(1)]
            m.d.comb += [O.w_data[i].eq(O.data[i] + pv[i]) for i in range(P)]
        with m.If(sp.wb):
            with m.If(sp.wb_e == cfg.head_dim):
                m.d.sync += L.eq(sp.wb_data)
            with m.Else():
                m.d.comb += [O.w_addr.eq(sp.wb_e[lp:]),
                             O.w_en.eq(Const(1, P) << sp.wb_e[:lp] if P > 1 else 1)]
                m.d.comb += [O.w_data[i].eq(sp.wb_data) for i in range(P)]
        return dict(issue=issue, busy=busy)

    def _control(self, m, walk, pipe, M, has, L, O, sp):
        """The lane's walk: a tile's record taken (a grown max merges first), its entries
        issued one chunk per cycle in the lane's exp2 turns, a rescale (the factor through the
        exp2 unit while the keys in flight drain, then the state pass), the final pass."""
        cfg, fmt, rd = self.cfg, self.cfg.formats, self.records
        G = fmt.sufa_chunks
        w, e_next, issue = walk["w"], walk["e_next"], pipe["issue"]
        r = Signal.like(rd.rec[0])
        m.d.comb += r.eq(Mux(w.slot, rd.rec[1].as_value(), rd.rec[0].as_value()))
        scored = Signal.like(rd.scored[0])
        m.d.comb += scored.eq(Mux(w.slot, rd.scored[1], rd.scored[0]))
        pend_m = Signal(signed(fmt.score_bits))
        # the exp2 unit, in this lane's turn: a key's M - s, or a rescale's factor pend_m - M
        factor = Signal()
        m.d.comb += self.exp.t.eq(Mux(factor, pend_m - M, Mux(issue.first & issue.valid,
                                                               M - rd.score, 0)))
        wait = Signal(range(exp_latency(cfg)))
        sent, got, f_new = Signal(), Signal(), Signal(fmt.p_bits)
        over = Signal()
        m.d.comb += over.eq((w.e < w.count) & (w.n == 0) & (rd.score > M))
        m.d.comb += [issue.slot.eq(w.slot), sp.f.eq(f_new)]
        with m.FSM(name="lane"):
            with m.State("TILE"):
                with m.If(rd.ready & (walk["v_avail"] != 0)):
                    m.d.comb += [rd.take.eq(1), e_next.eq(0)]
                    m.d.sync += [w.count.eq(r.count), w.final.eq(r.final), w.n.eq(0)]
                    with m.If(r.has & ~has):
                        m.d.sync += [M.eq(r.m), has.eq(1)]
                    with m.If(r.has & has & (r.m > M)):
                        m.d.comb += self.grow.eq(1)
                        m.d.sync += pend_m.eq(r.m)
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "WALK"
                with m.Elif(rd.ready):
                    m.d.comb += self.v_wait.eq(1)
            with m.State("WALK"):
                last_key = (w.e == w.count - 1) & (w.n == G - 1)
                with m.If(w.count == 0):
                    m.d.comb += issue.end.eq(1)
                    m.next = "TILE_END"
                with m.Elif(w.e >= scored):
                    pass                           # the head's score is not written yet
                with m.Elif(over):
                    m.d.comb += self.over.eq(1)
                    m.d.sync += pend_m.eq(rd.score)
                    m.next = "DRAIN"
                with m.Elif((w.n == 0) & ~self.exp.turn):
                    pass                           # a key's weight waits for the exp2 turn
                with m.Else():
                    m.d.comb += [issue.valid.eq(1), issue.first.eq(w.n == 0),
                                 issue.key.eq(rd.key), issue.end.eq(last_key)]
                    m.d.sync += w.n.eq(Mux(w.n == G - 1, 0, w.n + 1))
                    with m.If(w.n == G - 1):
                        m.d.comb += e_next.eq(w.e + 1)
                    with m.If(last_key):
                        m.next = "TILE_END"
            with m.State("TILE_END"):
                # the slot of the next tile; the final tile ends the block
                m.d.sync += w.slot.eq(~w.slot)
                with m.If(w.final):
                    m.next = "FINAL"
                with m.Else():
                    m.next = "TILE"
            with m.State("DRAIN"):
                # the factor w(pend_m - M) goes into the exp2 unit in the lane's first turn
                # while the keys in flight drain; its p is there exp_latency cycles later
                m.d.comb += self.stalled.eq(1)
                with m.If(~sent):
                    with m.If(self.exp.turn):
                        m.d.comb += factor.eq(1)
                        m.d.sync += [sent.eq(1), wait.eq(exp_latency(cfg) - 1)]
                with m.Elif(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Elif(~got):
                    m.d.sync += [f_new.eq(self.exp.p), got.eq(1)]
                with m.If(got & ~pipe["busy"]):
                    m.d.comb += sp.scale.eq(1)
                    m.d.sync += [sent.eq(0), got.eq(0)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += self.stalled.eq(1)
                with m.If(sp.scaled):
                    m.d.sync += M.eq(pend_m)
                    m.next = "WALK"
            with m.State("FINAL"):
                with m.If(~pipe["busy"]):
                    m.d.comb += sp.unload.eq(1)
                    m.next = "UNLOAD"
            with m.State("UNLOAD"):
                with m.If(sp.unloaded):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.clear_block):
                    m.d.sync += [has.eq(0), L.eq(0)]
                    m.d.comb += O.clear.eq(1)
                    m.next = "TILE"
