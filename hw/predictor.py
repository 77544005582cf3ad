"""The score-predictor array shared by DLZS and the 4-bit multiply baseline.

A predictor scores a key against every query lane per ``pred_cycles`` cycles. It differs only in
its arithmetic, given by a :class:`PredictorArith`: how a query row is encoded (once, when the lane is
loaded: a code per element plus an optional per-row shift), how a key element is prepared (once
per key, shared by the lanes) and the term one (query code, key operand) pair contributes. Both
predictors therefore have the same ports, pipeline and adder tree, so their area can be compared
fairly. The per-row shift goes out beside the summed score, unapplied: SADS compares one row's
scores, which share it, so it sorts the narrower sums.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import adder_tree, tree_latency
from .pipe import CopyRegister
from .layouts import lane_row_layout, score_layout
from .shared import add_lane

__all__ = ["PredictorArith", "ScorePredictor", "PredictorLane", "query_latency",
           "predictor_latency", "stage", "KEY_COPY_LANES"]

#: lanes that read one copy of the prepared keys' register: one register driving 16 lanes took
#: 1.1 ns to switch its 33 loads at OSU 0.18 µm (the int8 core's worst path); 8 lanes halve that
KEY_COPY_LANES = 8


def query_latency(cfg) -> int:
    """Cycles from a ``q`` transfer until its lane's codes are stored, minus one: the register
    stages of the DLZS query encoder (one per leading-one term, one after the row maximum). Keys
    pass as many registers before the array, so a key that follows a query row uses its codes."""
    return cfg.dlzs_terms + 1


def predictor_latency(cfg) -> int:
    """Cycles from a ``k`` transfer to its scores on ``a`` (:class:`ScorePredictor`, no stall):
    the key registers' (``query_latency``) and the adder tree's over pred_width terms,
    ceil(log2(pred_width) / 2); with C = ``pred_cycles`` > 1 also the C - 1 later chunks and the
    lanes' accumulator."""
    C = cfg.pred_cycles
    return query_latency(cfg) + tree_latency(cfg.formats.pred_width) + (C if C > 1 else 0)


def stage(m: Module, value, name: str, en=None):
    """Return ``value`` through a register (loading only while ``en``, when given)."""
    reg = Signal(value.shape(), name=name)
    with m.If(1 if en is None else en):
        m.d.sync += reg.eq(value)
    return reg


class PredictorArith:
    """The arithmetic of one predictor (subclass and override)."""

    score_bits: int      # width of the summed score

    shift_bits = 0       # width of the per-row shift of the score (0: none)

    def code_layout(self):
        """Shape of a stored query element code."""
        raise NotImplementedError

    def encode_row(self, m: Module, row):
        """Return (codes, row shift) of a query row through ``query_latency(cfg)`` registers
        (:func:`stage`); row shift None when ``shift_bits`` is 0."""
        raise NotImplementedError

    def key_layout(self):
        """Shape of a prepared key operand (what :meth:`prepare_key` returns)."""
        raise NotImplementedError

    def prepare_key(self, m: Module, k, name: str):
        """Return the prepared key operand of key element ``k`` (combinational)."""
        raise NotImplementedError

    def term(self, m: Module, code, key, name: str):
        """Return (signed term, carry bit): the pair contributes term + carry to the score."""
        raise NotImplementedError


class ScorePredictor(wiring.Component):
    """A predictor array: the scores of one key for every query lane per C = ``pred_cycles``
    cycles, W = ``pred_width`` = head_dim / pred_cycles terms per lane per cycle.

    Ports
        q   In stream {lane, row[d]}: a query row for one lane, encoded once by d shared encoders
            and held until the lane is loaded again. Always ready; loading a lane while keys are
            in flight changes the scores of the keys transferred after the row.
        k   In stream {key[d], last}: a key row; ``last`` is passed through untouched.
        a   Out stream {score[T], shift[T], last} (:func:`hw.layouts.score_layout`): the key's
            summed scores, T = lanes, and each lane's row shift (the predicted score is
            score << shift; no shift with ``shift_bits`` = 0).
    Throughput: one k transfer per C cycles (the key is held in the first key register while
    its chunks pass, chunk c of W elements in its c-th cycle). Latency: ``predictor_latency(cfg)``
    cycles from k to a: ``query_latency`` key registers (the last holding the prepared chunk that
    the lanes read, a copy per ``KEY_COPY_LANES`` lanes), then ceil(log2(W) / 2) (the adder tree
    has a register after every second level), then (C > 1) the last chunk's cycles and the lanes'
    accumulator over the chunks. A q row's codes are stored ``query_latency`` + 1 cycles after
    its transfer, so a key transferred after it uses them. Backpressure: the key pipeline stalls
    while ``a`` is valid and not ready; the query pipeline never stalls.
    """

    def __init__(self, cfg, arith: PredictorArith):
        self.cfg, self.arith = cfg, arith
        super().__init__({
            "q": In(stream.Signature(self.query_layout(cfg), always_ready=True)),
            "k": In(stream.Signature(self.key_layout(cfg))),
            "a": Out(stream.Signature(score_layout(cfg, arith.score_bits, arith.shift_bits))),
        })

    @staticmethod
    def query_layout(cfg) -> data.StructLayout:
        """The q stream payload."""
        return lane_row_layout(cfg)

    @staticmethod
    def key_layout(cfg) -> data.StructLayout:
        """The k stream payload."""
        return data.StructLayout({
            "key": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim), "last": 1})

    def elaborate(self, platform):
        m = Module()
        cfg, arith = self.cfg, self.arith
        T, d, W, C = cfg.lanes, cfg.head_dim, cfg.formats.pred_width, cfg.pred_cycles
        lanes = [PredictorLane(cfg, arith) for _ in range(T)]

        # query side: d shared encoders, pipelined; the addressed lane stores the row's codes
        enc, row_value = arith.encode_row(m, self.q.payload.row)
        q_we, q_lane = self.q.valid, self.q.payload.lane
        for i in range(query_latency(cfg)):
            q_we, q_lane = stage(m, q_we, f"q_we_{i}"), stage(m, q_lane, f"q_lane_{i}")
        codes = Signal(lanes[0].codes_in.shape(), name="codes")    # one row's codes, all lanes
        m.d.comb += [codes[e].eq(enc[e]) for e in range(d)]
        for t, lane in enumerate(lanes):
            add_lane(m, f"lane{t}", lane, "pred", (cfg, type(arith).__name__))
            m.d.comb += [lane.q_we.eq(q_we & (q_lane == t)), lane.codes_in.eq(codes)]
            if arith.shift_bits:
                m.d.comb += lane.row_in.eq(row_value)

        # key side, under one global enable: the chunks of a key with their flags (valid, the
        # chunk index, the key's last chunk, the tile's last key)
        en = Signal()
        m.d.comb += en.eq(~self.a.valid | self.a.ready)
        idx_field = {"idx": range(C)} if C > 1 else {}        # (no 0-bit fields in Verilog)
        flags = data.StructLayout({"valid": 1, **idx_field, "final": 1, "last": 1})
        chunk = Signal(data.ArrayLayout(signed(cfg.data_bits), W), name="k_chunk")
        f = Signal(flags, name="k_flags")
        if C == 1:
            m.d.comb += [self.k.ready.eq(en), chunk.eq(self.k.payload.key),
                         f.valid.eq(self.k.valid), f.final.eq(1), f.last.eq(self.k.payload.last)]
            n_raw = query_latency(cfg) - 1
        else:
            # the first key register holds the key while its C chunks leave, one per cycle
            held, held_last = Signal.like(self.k.payload.key, name="k_held"), Signal()
            busy, idx = Signal(), Signal(range(C))
            m.d.comb += self.k.ready.eq(en & (~busy | (idx == C - 1)))
            with m.If(en & busy):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == C - 1):
                    m.d.sync += [busy.eq(0), idx.eq(0)]
            with m.If(self.k.valid & self.k.ready):
                m.d.sync += [held.eq(self.k.payload.key), held_last.eq(self.k.payload.last),
                             busy.eq(1), idx.eq(0)]
            m.d.comb += [chunk.as_value().eq(held.as_value().word_select(idx, W * cfg.data_bits)),
                         f.valid.eq(busy), f.idx.eq(idx), f.final.eq(idx == C - 1),
                         f.last.eq(held_last)]
            n_raw = query_latency(cfg) - 2
        for i in range(n_raw):
            chunk, f = stage(m, chunk, f"k_raw_{i}", en), stage(m, f, f"k_flags_{i}", en)
        # each key element of the chunk is prepared once into a register that the lanes share,
        # a copy per KEY_COPY_LANES lanes, with the chunk index
        copy = data.StructLayout({"keys": lanes[0].keys.shape(), **idx_field})
        prepared = Signal(copy, name="k_prepared")
        if C > 1:
            m.d.comb += prepared.idx.eq(f.idx)
        for e in range(W):
            m.d.comb += prepared.keys[e].eq(arith.prepare_key(m, chunk[e], f"e{e}"))
        f = stage(m, f, "k_flags_copy", en)
        for t, lane in enumerate(lanes):
            if t % KEY_COPY_LANES == 0:
                keys = m.submodules[f"keys{t // KEY_COPY_LANES}"] = CopyRegister(copy)
                m.d.comb += [keys.en.eq(en), keys.i.eq(prepared)]
            m.d.comb += [lane.keys.eq(keys.o.keys), lane.en.eq(en),
                         self.a.payload.score[t].eq(lane.score)]
            if arith.shift_bits:
                m.d.comb += self.a.payload.shift[t].eq(lane.shift)
            if C > 1:
                m.d.comb += lane.idx.eq(keys.o.idx)
        # the adder tree's registers, then (C > 1) the lanes' accumulator
        for i in range(tree_latency(W)):
            f = stage(m, f, f"k_flags_tree_{i}", en)
        if C > 1:
            for lane in lanes:
                m.d.comb += [lane.acc_en.eq(en & f.valid), lane.acc_first.eq(f.idx == 0)]
            f = stage(m, f, "k_flags_acc", en)
        m.d.comb += [self.a.valid.eq(f.valid & f.final), self.a.payload.last.eq(f.last)]
        return m


class PredictorLane(wiring.Component):
    """One query lane of a :class:`ScorePredictor`: its stored query codes (and row value), the
    W = ``pred_width`` = head_dim / pred_cycles terms of chunk ``idx`` against the prepared key
    chunk, an adder tree (latency ``tree_latency(W)``) and, with C = ``pred_cycles`` > 1, the sum over a key's chunks
    (``acc_en``: the tree's output is a chunk; ``acc_first``: the key's first). ``score`` is the
    tree's output (C = 1) or the accumulator's. Every lane is the same module (no lane index
    inside), so synthesis can map one and instance it.
    """

    def __init__(self, cfg, arith: PredictorArith):
        self.cfg, self.arith = cfg, arith
        d, W, C = cfg.head_dim, cfg.formats.pred_width, cfg.pred_cycles
        members = {
            "q_we": In(1), "codes_in": In(data.ArrayLayout(arith.code_layout(), d)),
            "keys": In(data.ArrayLayout(arith.key_layout(), W)),
            "en": In(1), "score": Out(signed(arith.score_bits))}
        if arith.shift_bits:
            members.update(row_in=In(arith.shift_bits), shift=Out(arith.shift_bits))
        if C > 1:
            members.update(idx=In(range(C)), acc_en=In(1), acc_first=In(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, arith = self.cfg, self.arith
        W, C = cfg.formats.pred_width, cfg.pred_cycles
        codes = Signal(self.codes_in.shape(), name="codes")
        with m.If(self.q_we):
            m.d.sync += codes.eq(self.codes_in)
            if arith.shift_bits:
                m.d.sync += self.shift.eq(self.row_in)
        chunk = Signal(data.ArrayLayout(arith.code_layout(), W), name="codes_chunk")
        if C > 1:
            m.d.comb += chunk.as_value().eq(
                codes.as_value().word_select(self.idx, len(chunk.as_value())))
        else:
            m.d.comb += chunk.eq(codes)
        terms, carries = [], []
        for e in range(W):
            term, carry = arith.term(m, chunk[e], self.keys[e], f"e{e}")
            terms.append(term)
            carries.append(carry)
        carries = [c for c in carries if not isinstance(c, int)]    # (constant 0: none)
        total = adder_tree(m, terms, carries, self.en, "k")
        if C > 1:
            acc = Signal(signed(arith.score_bits), name="acc")
            with m.If(self.acc_en):
                m.d.sync += acc.eq(Mux(self.acc_first, 0, acc) + total)
            total = acc
        m.d.comb += self.score.eq(total)
        return m
