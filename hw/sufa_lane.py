"""One SU-FA query lane: it walks its own selected keys with P multipliers for q·k and P for p·v.

Model: :func:`golden.sufa.attend` (one row of it). Used by :class:`hw.sufa.SufaEngine`, which
owns the tile stores (``hw/tilebuf.py``) and hands each lane its list of every tile.

Score stage S (P multipliers): per tile, the lane takes its list (SADS's order: predicted top-1,
top-2, then the rest by descending prediction; dense: every visible key in index order) and
computes s = q·k of each key over G = head_dim / P cycles, one chunk of P elements per cycle,
from the K tile store. Scores go to the lane's score memory (two tiles) in list order; the
tile's fixed max (over list entries 0 and 1, or every entry with ``exact_max``) to a tile record.
One key per G cycles, no stalls; latency ``score_latency(cfg)`` cycles from a key's first chunk
to its score.

Accumulate stage A (P multipliers, a turn at the group's exp2 unit, a state multiplier): the
engine's exp2 unit serves ``exp_group(cfg)`` lanes in turn (``exp_turn`` one cycle in that many,
the same cycle of every G, so a lane walking without a stall always meets it; otherwise a key
waits less than exp_group cycles for it). Per tile, once the
tile's fixed max is known (its entries 0 and 1 scored, so A follows S through the tile a few
cycles behind; with ``exact_max`` once every entry is scored) and the tile's V rows are there,
never ahead of the scores: the running max M becomes max(M, tile max) (a grown max
rescales the state first: the tile merge); then per list entry: s > M takes the max-assurance
rescale (counted); otherwise p = w(M - s), L += p and O[e] += p·v[e] over G cycles, one chunk per
cycle from the V tile store. One key per G cycles; a rescale stalls this lane only, for
``rescale_cycles(cfg)`` cycles plus the pipeline drain and the wait for its exp2 turn. After
the block's final tile: O / L by
the reciprocal unit (``norm_cycles``), then the lane waits for the engine to take its row.

Every lane is the same module (no lane index inside), so synthesis can map one and instance it.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib.memory import Memory

from star.spec.formats import unsigned_bits

from .arith import MulPipe, adder_tree, mul_latency, tree_latency
from .exp2 import exp2_latency
from .merge import partial_layout
from .recip import Reciprocal, recip_latency
from .rules import round_finish_range, round_shift_finish, round_shift_start, saturate_flagged
from .tilebuf import SLOTS
from .turns import TURNS_LATENCY

__all__ = ["SufaLane", "OState", "score_latency", "accumulate_latency", "state_latency",
           "rescale_cycles", "norm_cycles", "exp_latency", "exp_group", "exp_wait", "EXP_LANES"]

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
    """Cycles from a lane's ``exp_t`` (in its turn) to its ``exp_p``: the group's
    :class:`hw.turns.Turns`, then the exp2 unit (:func:`hw.exp2.exp2_latency`)."""
    return TURNS_LATENCY + exp2_latency(cfg)


def accumulate_latency(cfg) -> int:
    """Cycles of the A stage: key issue -> exp2 -> V read address -> V chunk + p -> p·v product
    (pipelined) -> accumulate."""
    fmt = cfg.formats
    return exp_latency(cfg) + mul_latency(fmt.p_bits, cfg.data_bits) + 1


def score_latency(cfg) -> int:
    """Cycles from a key's last chunk read to its score (K read, the pipelined products, the
    adder tree, the sum over the chunks)."""
    return 2 + mul_latency(cfg.data_bits, cfg.data_bits) + tree_latency(cfg.sufa_macs)


def state_latency(cfg) -> int:
    """Cycles of the state pass from an element's address to its result (written back to O or
    L, or shifted into the row out): the O read (``O_READ_LATENCY``), the multiplier
    (:func:`hw.arith.mul_latency`), then the rounding's shift and add registers."""
    fmt = cfg.formats
    return O_READ_LATENCY + mul_latency(fmt.o_bits, max(fmt.p_bits, fmt.recip_bits + 1)) + 2


def rescale_cycles(cfg) -> int:
    """Cycles a rescale (tile merge or max assurance) takes once the lane's pipeline is empty
    (the exp2 factor is computed while it drains): the d elements of O and L one per cycle,
    the part of their results' return (``state_latency``) that a resumed walk does not hide,
    then M."""
    return cfg.head_dim + max(0, state_latency(cfg) - exp_latency(cfg) - 2) + 3


def norm_cycles(cfg) -> int:
    """Cycles of the final O / L once the pipeline is empty: the reciprocal, then d elements
    and their results back (``state_latency``)."""
    return recip_latency(cfg) + cfg.head_dim + state_latency(cfg) + 2


class SufaLane(wiring.Component):
    """A query lane (see the module docstring). Signals, driven by :class:`SufaEngine`:

    q_we                    the next block's query row is written to the engine's Q store, at
                            the slot other than ``q_slot`` (``q_full`` until the lane starts
                            that block's first tile, which makes it ``q_slot``).
    q_chunk                 the Q store's chunk of the row at ``q_slot``, the K chunk's (the
                            stores read in the same phase: ``k_phase``).
    exp_turn, exp_t, exp_p  the lane's turn at its group's exp2 unit; the score difference it
                            sends in its turn (zero otherwise); the weight of the difference
                            sent ``exp_latency(cfg)`` cycles ago.
    list_we, list_index, list_count, list_first, list_final
                            the lane's list of the next tile (``list_full`` until S takes it).
    k_addr / k_chunk, k_phase; v_addr / v_chunk, v_phase
                            the tile stores: address out, chunk back a cycle later;
                            ``k_phase`` / ``v_phase`` the chunk index the K / V address reads
                            this cycle.
    v_filled                a tile's V rows are all in the V store (tiles in order).
    k_release, v_release    the engine freed the oldest K / V tile slot (every lane had
                            ``s_pend`` / ``a_pend``: finished S / A of it).
    done                    the block's row (or partial state) is ready; ``clear_block`` (from
                            the engine, after taking it) starts the next block.
    over, grow              one-cycle pulses: a max-assurance rescale, a tile merge.
    mac_busy, stalled, v_wait   the p·v multipliers take a chunk; a rescale holds the lane; the
                            lane has an S record but its tile's V rows are not all there.
    """

    def __init__(self, cfg, partial: bool = False):
        self.cfg, self.partial = cfg, partial
        self.fmt = fmt = cfg.formats
        d, b, K, Bc = cfg.head_dim, cfg.data_bits, cfg.k_tile, cfg.tile
        P, G = fmt.sufa_macs, fmt.sufa_chunks
        row = data.ArrayLayout(signed(b), d)
        chunk = data.ArrayLayout(signed(b), P)
        self.idx_bits = unsigned_bits(max(G - 1, 1))
        self.addr_bits = unsigned_bits(SLOTS * Bc - 1)           # a K / V store address
        self.cnt_bits = unsigned_bits(Bc)
        idx = unsigned(self.idx_bits)
        super().__init__({
            "exp_turn": In(1), "exp_t": Out(fmt.score_bits + 1), "exp_p": In(fmt.p_bits),
            "exact_max": In(1), "clear": In(1),
            "q_we": In(1), "q_full": Out(1), "q_slot": Out(1), "q_chunk": In(chunk),
            "list_we": In(1), "list_full": Out(1),
            "list_index": In(data.ArrayLayout(unsigned_bits(Bc - 1), K)),
            "list_count": In(self.cnt_bits), "list_first": In(1), "list_final": In(1),
            "k_addr": Out(self.addr_bits), "v_addr": Out(self.addr_bits),
            "k_chunk": In(chunk), "v_chunk": In(chunk),
            "v_phase": In(idx), "k_phase": In(idx),
            "v_filled": In(1), "k_release": In(1), "v_release": In(1),
            "s_pend": Out(1), "a_pend": Out(1),
            "done": Out(1), "clear_block": In(1),
            "over": Out(1), "grow": Out(1),
            "mac_busy": Out(1), "stalled": Out(1), "v_wait": Out(1),
            "o_row": Out(row),
            "state": Out(partial_layout(cfg)),       # {has, m (0 without has), l, o}
        })

    def elaborate(self, platform):
        m = Module()
        rec = self._score_stage(m)
        self._accumulate_stage(m, rec)
        return m

    # ---- S: q·k over the lane's list -----------------------------------------------------------

    def _score_stage(self, m):
        cfg, fmt = self.cfg, self.fmt
        b, K, Bc = cfg.data_bits, cfg.k_tile, cfg.tile
        P, G, sb = fmt.sufa_macs, fmt.sufa_chunks, fmt.score_bits
        lb = Bc.bit_length() - 1

        with m.If(self.q_we):
            m.d.sync += self.q_full.eq(1)

        # the next tile's list (a one-entry queue), then the list being walked
        nl_index = Signal(self.list_index.shape())
        nl_count, nl_first, nl_final = Signal(self.cnt_bits), Signal(), Signal()
        with m.If(self.list_we):
            m.d.sync += [nl_index.eq(self.list_index), nl_count.eq(self.list_count),
                         nl_first.eq(self.list_first), nl_final.eq(self.list_final),
                         self.list_full.eq(1)]
        s_index = Signal(self.list_index.shape())
        s_count, s_final, s_busy, s_slot = Signal(self.cnt_bits), Signal(), Signal(), Signal()
        s_e = Signal(self.cnt_bits)
        s_n = Signal(range(max(G, 2)))
        slots = Signal(range(3))              # score slots in use (S started, A not finished)
        free_slot = Signal()                  # from A: a tile's scores are all read
        start = Signal()
        m.d.comb += start.eq(self.list_full & ~s_busy & (slots < 2))
        m.d.sync += slots.eq(slots + start - free_slot)
        with m.If(start):
            m.d.sync += [s_index.eq(nl_index), s_count.eq(nl_count), s_final.eq(nl_final),
                         s_busy.eq(1), s_e.eq(0), s_n.eq(0), self.list_full.eq(0)]
            with m.If(nl_first & self.q_full):
                m.d.sync += [self.q_slot.eq(~self.q_slot), self.q_full.eq(0)]
            with m.If(self.q_we):            # a row arriving in the same cycle stays next
                m.d.sync += self.q_full.eq(1)

        # issue: one chunk per cycle; an empty list issues one bubble that ends the tile
        flag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "e": self.cnt_bits,
                                  "key": lb, "cand": 1, "end": 1, "slot": 1, "final": 1})
        f0 = Signal(flag)
        key = Signal(lb)
        m.d.comb += key.eq(Mux(self.exact_max, s_e[:lb], s_index[s_e[:unsigned_bits(K - 1)]]
                               if K > 1 else s_index[0]))
        end = Signal()
        m.d.comb += [end.eq((s_count == 0) | ((s_e == s_count - 1) & (s_n == G - 1))),
                     self.k_addr.eq(Cat(key, s_slot))]
        qc = self.q_chunk
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

        # products of the chunk (pipelined multipliers), adder tree, sum over the G chunks of
        # a key; the key's score is in acc a cycle after its last chunk (flags fw)
        prods = []
        for i in range(P):
            mul = m.submodules[f"qk_mul{i}"] = MulPipe(signed(b), signed(b))
            m.d.comb += [mul.en.eq(1), mul.a.eq(qc[i]), mul.b.eq(self.k_chunk[i])]
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
        s = acc

        # scores in list order; the tile record (fixed max, has, count, final) per slot
        m.submodules.scores = scores = Memory(shape=sb + lb, depth=2 * Bc, init=[])
        sw = scores.write_port()
        m.d.comb += [sw.en.eq(fw.valid & fw.last), sw.addr.eq(Cat(fw.e[:lb], fw.slot)),
                     sw.data.eq(Cat(s, fw.key))]
        tm, th = Signal(signed(sb)), Signal()
        tm_new, th_new = Signal(signed(sb)), Signal()
        cand = fw.valid & fw.last & fw.cand
        m.d.comb += [tm_new.eq(Mux(cand & (~th | (s > tm)), s, tm)), th_new.eq(th | cand)]
        m.d.sync += [tm.eq(tm_new), th.eq(th_new)]
        rec = [Signal(data.StructLayout({"m": signed(sb), "has": 1, "count": self.cnt_bits,
                                         "final": 1}), name=f"rec{i}") for i in range(2)]
        with m.If(start):           # the slot's count and flags are known when S starts it
            for i in range(2):
                with m.If(s_slot == i):
                    m.d.sync += [rec[i].count.eq(nl_count), rec[i].final.eq(nl_final)]
        # scored entries per slot (read by A one cycle late: the score memory is not
        # transparent), reset when S starts the slot's next tile
        scored = [Signal(self.cnt_bits, name=f"scored{i}") for i in range(2)]
        scored_d = [Signal(self.cnt_bits, name=f"scored_d{i}") for i in range(2)]
        m.d.sync += [scored_d[i].eq(scored[i]) for i in range(2)]
        for i in range(2):
            with m.If(start & (s_slot == i)):
                m.d.sync += scored[i].eq(0)
            with m.Elif(fw.valid & fw.last & (fw.slot == i)):
                m.d.sync += scored[i].eq(scored[i] + 1)
        s_done = Signal()
        m.d.comb += s_done.eq(fw.end & (fw.last | ~fw.valid))
        # the fixed max is known once entries 0 and 1 (the predicted top-1 and top-2) are
        # scored, so A may start the tile then; with exact_max once every entry is
        max_known, fired = Signal(), Signal()
        m.d.comb += max_known.eq(~fired & (s_done | (~self.exact_max & fw.valid & fw.last
                                                    & (fw.e == 1))))
        with m.If(max_known):
            m.d.sync += fired.eq(1)
            for i in range(2):
                with m.If(fw.slot == i):
                    m.d.sync += [rec[i].m.eq(tm_new), rec[i].has.eq(th_new)]
        with m.If(s_done):
            m.d.sync += [tm.eq(0), th.eq(0), fired.eq(0)]

        # tiles whose max is known (for A) and S-done tiles (for the K slot release)
        ready, rel = Signal(range(3)), Signal(range(3))
        a_take = Signal()
        m.d.sync += [ready.eq(ready + max_known - a_take),
                     rel.eq(rel + s_done - self.k_release)]
        m.d.comb += self.s_pend.eq(rel != 0)
        return dict(rec=rec, ready=ready, a_take=a_take, free_slot=free_slot, scores=scores,
                    scored=scored_d)

    # ---- A: the softmax state -------------------------------------------------------------------

    def _accumulate_stage(self, m, st):
        cfg, fmt = self.cfg, self.fmt
        d, b, Bc = cfg.head_dim, cfg.data_bits, cfg.tile
        P, G, sb = fmt.sufa_macs, fmt.sufa_chunks, fmt.score_bits
        lb = Bc.bit_length() - 1
        rec, a_take, free_slot = st["rec"], st["a_take"], st["free_slot"]

        M, has = Signal(signed(sb)), Signal()
        L = Signal(fmt.l_bits)
        pend_m = Signal(signed(sb))

        v_avail = Signal(range(3))
        m.d.sync += v_avail.eq(v_avail + self.v_filled - a_take)
        a_slot, a_final = Signal(), Signal()
        a_count = Signal(self.cnt_bits)
        a_e, a_e_next = Signal(self.cnt_bits), Signal(self.cnt_bits)
        a_n = Signal(range(max(G, 2)))
        m.d.sync += a_e.eq(a_e_next)
        m.d.comb += a_e_next.eq(a_e)
        rd = st["scores"].read_port()
        m.d.comb += rd.addr.eq(Cat(a_e_next[:lb], a_slot))
        head_s = Signal(signed(sb))
        head_key = Signal(lb)
        m.d.comb += [head_s.eq(rd.data[:sb]), head_key.eq(rd.data[sb:])]
        with m.If(self.clear):
            m.d.sync += a_slot.eq(0)

        # the accumulate pipeline: issue -> exp2 -> V address -> V chunk, p -> p·v -> add
        flag = data.StructLayout({"valid": 1, "first": 1, "key": lb, "slot": 1, "end": 1})
        f0 = Signal(flag)
        issue = Signal(flag)
        m.d.sync += f0.eq(issue)
        fl = [f0]
        for i in range(accumulate_latency(cfg) - 1):
            nxt = Signal(flag, name=f"aflag_{i + 1}")
            m.d.sync += nxt.eq(fl[-1])
            fl.append(nxt)
        busy_pipe = Signal()
        m.d.comb += busy_pipe.eq(Cat(*(f.valid | f.end for f in fl)).any())
        fv = fl[exp_latency(cfg) - 1]               # aligned with the exp2 output
        m.d.comb += [self.v_addr.eq(Cat(fv.key, fv.slot)), free_slot.eq(fv.end)]
        a_rel = Signal(range(3))
        m.d.sync += a_rel.eq(a_rel + fv.end - self.v_release)
        m.d.comb += self.a_pend.eq(a_rel != 0)

        # the group's exp2 unit, in this lane's turn (zero otherwise: the group ORs its lanes)
        factor = Signal()
        m.d.comb += self.exp_t.eq(Mux(factor, pend_m - M, Mux(issue.first & issue.valid,
                                                               M - head_s, 0)))
        p_hold = Signal(fmt.p_bits)
        with m.If(fv.first):
            m.d.sync += p_hold.eq(self.exp_p)
        fp = fl[exp_latency(cfg)]                    # V chunk of fv's address is here
        pv = []                                      # p·v, pipelined: at fa
        for i in range(P):
            mul = m.submodules[f"pv_mul{i}"] = MulPipe(unsigned(fmt.p_bits), signed(b))
            m.d.comb += [mul.en.eq(1), mul.a.eq(Mux(fp.valid, p_hold, 0)),
                         mul.b.eq(self.v_chunk[i])]
            pv.append(mul.p)
        pd = [Signal(fmt.p_bits, name=f"pd_{i}") for i in range(mul_latency(fmt.p_bits, b))]
        m.d.sync += pd[0].eq(Mux(fp.valid & fp.first, p_hold, 0))
        m.d.sync += [pd[i + 1].eq(pd[i]) for i in range(len(pd) - 1)]
        fa = fl[-1]
        # (p_bits <= 21 and data_bits <= 16 keep p·v unsplit: its two cycles are O's read)
        assert mul_latency(fmt.p_bits, b) == O_READ_LATENCY
        m.d.comb += self.mac_busy.eq(fp.valid)
        # O[chunk] += p·v[chunk]: the chunk is read as its V chunk arrives (OState's two read
        # cycles end with the product's), written in the cycle its sum is formed
        m.submodules.ostate = O = OState(cfg)
        pe = Signal(range(d + 1))                    # the state pass's element addressed
        lp, lg = P.bit_length() - 1, G.bit_length() - 1
        v_idx = Signal.like(self.v_phase)            # the index of the V chunk arriving
        m.d.sync += v_idx.eq(self.v_phase)
        m.d.comb += O.addr.eq(Mux(fp.valid, v_idx, pe[lp:lp + lg] if lg else 0))
        m.d.comb += O.w_addr.eq(O.rd_chunk)
        with m.If(fa.valid):
            m.d.sync += L.eq(L + pd[-1])
            m.d.comb += [O.w_en.eq(-1), O.mark.eq(1)]
            m.d.comb += [O.w_data[i].eq(O.data[i] + pv[i]) for i in range(P)]

        scored = Signal(self.cnt_bits)
        m.d.comb += scored.eq(Mux(a_slot, st["scored"][1], st["scored"][0]))
        self._control(m, dict(M=M, has=has, L=L, O=O, pe=pe, pend_m=pend_m, rec=rec,
                              scored=scored,
                              v_avail=v_avail, ready=st["ready"], a_take=a_take,
                              a_slot=a_slot, a_final=a_final, a_count=a_count, a_e=a_e,
                              a_e_next=a_e_next, a_n=a_n, head_s=head_s, head_key=head_key,
                              issue=issue, busy_pipe=busy_pipe, factor=factor))

    def _control(self, m, a):
        cfg, fmt = self.cfg, self.fmt
        d, G = cfg.head_dim, fmt.sufa_chunks
        W, R = fmt.exp_out_bits, fmt.recip_bits          # a weight's fraction bits
        M, has, L, O, pend_m = a["M"], a["has"], a["L"], a["O"], a["pend_m"]
        rec, issue = a["rec"], a["issue"]
        a_slot, a_e, a_n, a_count = a["a_slot"], a["a_e"], a["a_n"], a["a_count"]
        r = Signal(rec[0].shape())
        m.d.comb += r.eq(Mux(a_slot, rec[1].as_value(), rec[0].as_value()))

        # the state pass through the state multiplier (rescale by f, normalise by r, or the
        # partial state's unload): element pe of O addressed per cycle (L at pe = d), its value
        # x two cycles later (OState's read), its result ``state_latency(cfg)`` cycles after
        # the address; a tag (valid, e, write back) travels alongside: sp[i], i cycles on
        pe = a["pe"]
        f_reg = Signal(max(fmt.p_bits, R + 1))
        nshift = Signal(unsigned_bits(fmt.l_bits - 1 + R))
        normalizing = Signal()
        issue_e, write_back = Signal(), Signal()
        tag = data.StructLayout({"valid": 1, "e": range(d + 1), "wb": 1})
        sp = [Signal(tag, name=f"sp_{i}") for i in range(state_latency(cfg) + 1)]
        m.d.comb += [sp[0].valid.eq(issue_e), sp[0].e.eq(pe), sp[0].wb.eq(write_back)]
        m.d.sync += [sp[i + 1].eq(sp[i]) for i in range(len(sp) - 1)]
        with m.If(issue_e):
            m.d.sync += pe.eq(pe + 1)
        sp_x, sp_out = sp[O_READ_LATENCY], sp[-1]
        sp_busy, sp_early = Signal(), Signal()
        m.d.comb += sp_busy.eq(Cat(*(t.valid for t in sp[1:])).any())
        # results that would land after a resumed walk's first O read
        early = sp[1:max(1, len(sp) - 1 - exp_latency(cfg) - 2)]
        m.d.comb += sp_early.eq(Cat(*(t.valid for t in early)).any() if early else 0)
        x = Signal(signed(fmt.o_bits))
        P = fmt.sufa_macs
        lp = P.bit_length() - 1

        def elem(e):
            return e[:lp] if P > 1 else 0
        m.d.comb += x.eq(Mux(sp_x.e == d, L, O.data.as_value().word_select(elem(sp_x.e),
                                                                             fmt.o_bits)
                             if P > 1 else O.data[0]))
        # x·f_reg rounded half up: by 2**W (rescale), by 2**nshift (normalise, then saturated)
        m.submodules.smul = smul = MulPipe(x.shape(), unsigned(len(f_reg)))
        m.d.comb += [smul.en.eq(1), smul.a.eq(x), smul.b.eq(f_reg)]
        # the rounding in its two halves (the shift, registered; the add), by a shift that is
        # static during the pass (registered too)
        rshift = Signal(max(len(nshift), unsigned_bits(W)))
        m.d.sync += rshift.eq(W if self.partial else Mux(normalizing, nshift, W))
        mul_w = Signal(signed(len(smul.p) + 1), name="mul_w")
        # the rounding add only as wide as the state (a rescaled state fits its width); the
        # normalised row's saturation decided from mul_w beside it
        mul_out = Signal(signed(max(fmt.o_bits, fmt.l_bits + 1)), name="mul_out")
        over, under = Signal(name="mul_over"), Signal(name="mul_under")
        m.d.sync += [mul_w.eq(round_shift_start(smul.p, rshift)),
                     mul_out.eq(round_shift_finish(mul_w, len(mul_out))),
                     Cat(over, under).eq(Cat(*round_finish_range(mul_w, cfg.data_bits)))]
        with m.If(sp_out.valid & sp_out.wb):
            with m.If(sp_out.e == d):
                m.d.sync += L.eq(mul_out)
            with m.Else():
                m.d.comb += [O.w_addr.eq(sp_out.e[lp:]),
                             O.w_en.eq(Const(1, P) << elem(sp_out.e) if P > 1 else 1)]
                m.d.comb += [O.w_data[i].eq(mul_out) for i in range(P)]
        # the row out (normalised and saturated; partial: O unscaled, read straight from O),
        # shifted in element-wise
        out = self.state.o if self.partial else self.o_row
        new_e = x if self.partial else saturate_flagged(mul_out, over, under, cfg.data_bits)
        ew = fmt.o_bits if self.partial else cfg.data_bits
        out_tag = sp_x if self.partial else sp_out
        with m.If(out_tag.valid & ~out_tag.wb):
            m.d.sync += out.as_value().eq(Cat(out.as_value()[ew:], new_e[:ew]))

        # the rescale factor: sent to the exp2 unit in the lane's turn, taken exp_latency later
        wait = Signal(range(exp_latency(cfg)))
        sent, got, f_new = Signal(), Signal(), Signal(fmt.p_bits)
        over = Signal()
        m.d.comb += over.eq((a_e < a_count) & (a_n == 0) & (a["head_s"] > M))
        m.d.comb += issue.slot.eq(a_slot)

        if not self.partial:
            m.submodules.recip = recip = Reciprocal(cfg)
            m.d.comb += recip.l.eq(L)
        with m.FSM(name="lane"):
            with m.State("TILE"):
                with m.If(a["ready"].any() & a["v_avail"].any()):
                    m.d.comb += a["a_take"].eq(1)
                    m.d.comb += a["a_e_next"].eq(0)
                    m.d.sync += [a_count.eq(r.count), a["a_final"].eq(r.final), a_n.eq(0)]
                    with m.If(r.has & ~has):
                        m.d.sync += [M.eq(r.m), has.eq(1)]
                    with m.If(r.has & has & (r.m > M)):
                        m.d.comb += self.grow.eq(1)
                        m.d.sync += pend_m.eq(r.m)
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "WALK"
                with m.Elif(a["ready"].any()):
                    m.d.comb += self.v_wait.eq(1)
            with m.State("WALK"):
                last_key = (a_e == a_count - 1) & (a_n == G - 1)
                with m.If(a_count == 0):
                    m.d.comb += issue.end.eq(1)
                    m.next = "TILE_END"
                with m.Elif(a_e >= a["scored"]):
                    pass                           # the head's score is not written yet
                with m.Elif(over):
                    m.d.comb += self.over.eq(1)
                    m.d.sync += pend_m.eq(a["head_s"])
                    m.next = "DRAIN"
                with m.Elif((a_n == 0) & ~self.exp_turn):
                    pass                           # a key's weight waits for the exp2 turn
                with m.Else():
                    m.d.comb += [issue.valid.eq(1), issue.first.eq(a_n == 0),
                                 issue.key.eq(a["head_key"]), issue.end.eq(last_key)]
                    m.d.sync += a_n.eq(Mux(a_n == G - 1, 0, a_n + 1))
                    with m.If(a_n == G - 1):
                        m.d.comb += a["a_e_next"].eq(a_e + 1)
                    with m.If(last_key):
                        m.next = "TILE_END"
            with m.State("TILE_END"):
                # the slot of the next tile; the final tile ends the block
                m.d.sync += a_slot.eq(~a_slot)
                with m.If(a["a_final"]):
                    m.next = "FINAL"
                with m.Else():
                    m.next = "TILE"
            with m.State("DRAIN"):
                # the factor w(pend_m - M) goes into the exp2 unit in the lane's first turn
                # while the keys in flight drain; its p is there exp_latency cycles later
                m.d.comb += self.stalled.eq(1)
                with m.If(~sent):
                    with m.If(self.exp_turn):
                        m.d.comb += a["factor"].eq(1)
                        m.d.sync += [sent.eq(1), wait.eq(exp_latency(cfg) - 1)]
                with m.Elif(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Elif(~got):
                    m.d.sync += [f_new.eq(self.exp_p), got.eq(1)]
                with m.If(got & ~a["busy_pipe"]):
                    m.d.sync += [f_reg.eq(f_new), normalizing.eq(0), pe.eq(0), sent.eq(0),
                                 got.eq(0)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += [self.stalled.eq(1), issue_e.eq(1), write_back.eq(1)]
                with m.If(pe == d):
                    m.next = "SCALE_END"
            with m.State("SCALE_END"):
                # the walk may go on once every result still in flight will be written before
                # the walk's first O read (exp_latency + 2 cycles after it resumes)
                m.d.comb += self.stalled.eq(1)
                with m.If(~sp_early):
                    m.d.sync += M.eq(pend_m)
                    m.next = "WALK"
            with m.State("FINAL"):
                with m.If(~a["busy_pipe"]):
                    if self.partial:
                        m.d.sync += pe.eq(0)
                        m.next = "UNLOAD"
                    else:
                        m.d.comb += recip.start.eq(1)
                        m.next = "RECIP"
            if not self.partial:
                with m.State("RECIP"):
                    with m.If(recip.done):
                        m.d.sync += [f_reg.eq(recip.r), nshift.eq(recip.shift),
                                     normalizing.eq(1), pe.eq(0)]
                        m.next = "UNLOAD"
            with m.State("UNLOAD"):
                m.d.comb += issue_e.eq(1)
                with m.If(pe == d - 1):
                    m.next = "UNLOAD_END"
            with m.State("UNLOAD_END"):
                with m.If(~sp_busy):
                    m.d.sync += normalizing.eq(0)
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.clear_block):
                    m.d.sync += [has.eq(0), L.eq(0)]
                    m.d.comb += O.clear.eq(1)
                    m.next = "TILE"

        m.d.comb += [self.state.has.eq(has), self.state.m.eq(Mux(has, M, 0)),
                     self.state.l.eq(L)]


#: cycles from an OState address to its data: the memory's read port, then a register
O_READ_LATENCY = 2


class OState(wiring.Component):
    """A lane's output accumulator O[head_dim] in a memory of G = head_dim / P chunks of P
    elements (no flip-flop per element, P adders instead of head_dim).

    addr        In: the chunk read this cycle; ``data`` gives it ``O_READ_LATENCY`` = 2 cycles
                later, registered (a chunk not written since ``clear`` reads as zeros; every
                write up to the cycle before ``data`` shows is in it, the last one forwarded).
    rd_chunk    Out: the chunk ``data`` gives this cycle.
    w_addr, w_en, w_data    In: per element, write chunk ``w_addr``: the read-modify-write of
                O[chunk] += p·v[chunk] (``w_addr`` = ``rd_chunk``) and the state pass's one
                element per cycle.
    mark        In: the write makes the whole chunk valid (every element written).
    clear       In: every chunk reads as zeros from the next cycle.
    """

    def __init__(self, cfg):
        fmt = cfg.formats
        self.P, self.ob = fmt.sufa_macs, fmt.o_bits
        self.G = max(fmt.sufa_chunks, 2)              # (G = 1: one chunk used, no 0-bit address)
        chunk = data.ArrayLayout(signed(self.ob), self.P)
        super().__init__({"addr": In(range(self.G)), "data": Out(chunk),
                          "rd_chunk": Out(range(self.G)), "w_addr": In(range(self.G)),
                          "w_en": In(self.P), "w_data": In(chunk), "mark": In(1),
                          "clear": In(1)})

    def elaborate(self, platform):
        m = Module()
        width = self.P * self.ob
        m.submodules.mem = mem = Memory(shape=width, depth=self.G, init=[])
        wp = mem.write_port(granularity=self.ob)
        rp = mem.read_port(transparent_for=(wp,))
        chunk = Signal(range(self.G))                 # the chunk rp.data holds
        valid = Signal(self.G)                        # chunks written since clear
        m.d.sync += [chunk.eq(self.addr), self.rd_chunk.eq(chunk)]
        m.d.comb += [rp.addr.eq(self.addr), wp.addr.eq(self.w_addr), wp.en.eq(self.w_en),
                     wp.data.eq(self.w_data.as_value())]
        # the register after the read port takes this cycle's write to its chunk (the write
        # the memory shows only from the next read on)
        stored = Mux(valid.bit_select(chunk, 1), rp.data, 0)
        hit = self.w_addr == chunk
        for i in range(self.P):
            m.d.sync += self.data[i].eq(Mux(hit & self.w_en[i], self.w_data[i],
                                            stored[i * self.ob:(i + 1) * self.ob]))
        with m.If(self.clear):
            m.d.sync += valid.eq(0)
        with m.Elif(self.mark):
            m.d.sync += valid.eq(valid | (Const(1, self.G) << self.w_addr))
        return m
