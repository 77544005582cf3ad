"""The score-predictor array shared by DLZS and the 4-bit multiply baseline.

A predictor scores ``pred_keys`` keys against every query lane per cycle. It differs only in its
arithmetic, given by a :class:`PredictorArith`: how a query row is encoded (once, when the lane is
loaded: a code per element plus an optional per-row value), how a key element is prepared (once
per key, shared by the lanes), the term one (query code, key operand) pair contributes, and how the
per-row value finishes the summed score. Both predictors therefore have the same ports,
pipeline and adder tree, so their area can be compared fairly.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import adder_tree, tree_latency
from .pipe import CopyRegister
from .layouts import lane_row_layout
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
    the key registers' (``query_latency``) plus the adder tree's, ceil(log2(d) / 2)."""
    return query_latency(cfg) + tree_latency(cfg.head_dim)


def stage(m: Module, value, name: str, en=None):
    """Return ``value`` through a register (loading only while ``en``, when given)."""
    reg = Signal(value.shape(), name=name)
    with m.If(1 if en is None else en):
        m.d.sync += reg.eq(value)
    return reg


class PredictorArith:
    """The arithmetic of one predictor (subclass and override)."""

    score_bits: int      # width of the predicted score

    row_bits = 0         # width of the per-row value (0: none)

    def code_layout(self):
        """Shape of a stored query element code."""
        raise NotImplementedError

    def encode_row(self, m: Module, row):
        """Return (codes, row value) of a query row through ``query_latency(cfg)`` registers
        (:func:`stage`); row value None if unused."""
        raise NotImplementedError

    def finish(self, m: Module, total, row_value):
        """Return the score from the summed terms and the lane's row value (default: the sum)."""
        return total

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
    """A predictor array: scores of ``pred_keys`` keys for every query lane per cycle.

    Ports
        q   In stream {lane, row[d]}: a query row for one lane, encoded once by d shared encoders
            and held until the lane is loaded again. Always ready; loading a lane while keys are
            in flight changes the scores of the keys transferred after the row.
        k   In stream {keys[P][d], last}: P key rows; ``last`` is passed through untouched.
        a   Out stream {score[T][P], last}: the predicted scores, T = lanes.
    Throughput: one k transfer per cycle. Latency: ``predictor_latency(cfg)`` cycles from k to a
    (``query_latency`` key registers, the last holding the prepared keys that the lanes read, a
    copy per ``KEY_COPY_LANES`` lanes,
    then ceil(log2(d) / 2): the adder tree has a register after every second level). A q row's
    codes are stored ``query_latency`` + 1 cycles after its transfer, so a key transferred after
    it uses them. Backpressure: the key pipeline stalls while ``a`` is valid and not ready
    (k.ready = a.ready or a not valid); the query pipeline never stalls.
    """

    def __init__(self, cfg, arith: PredictorArith):
        self.cfg, self.arith = cfg, arith
        super().__init__({
            "q": In(stream.Signature(self.query_layout(cfg))),
            "k": In(stream.Signature(self.key_layout(cfg))),
            "a": Out(stream.Signature(self.score_layout(cfg, arith.score_bits))),
        })

    @staticmethod
    def query_layout(cfg) -> data.StructLayout:
        """The q stream payload."""
        return lane_row_layout(cfg)

    @staticmethod
    def key_layout(cfg) -> data.StructLayout:
        """The k stream payload."""
        return data.StructLayout({
            "keys": data.ArrayLayout(data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim),
                                     cfg.pred_keys),
            "last": 1})

    @staticmethod
    def score_layout(cfg, score_bits: int) -> data.StructLayout:
        """The a stream payload."""
        return data.StructLayout({
            "score": data.ArrayLayout(data.ArrayLayout(signed(score_bits), cfg.pred_keys),
                                      cfg.lanes),
            "last": 1})

    def elaborate(self, platform):
        m = Module()
        cfg, arith = self.cfg, self.arith
        T, P, d = cfg.lanes, cfg.pred_keys, cfg.head_dim
        lanes = [PredictorLane(cfg, arith) for _ in range(T)]

        # query side: d shared encoders, pipelined; the addressed lane stores the row's codes
        m.d.comb += self.q.ready.eq(1)
        enc, row_value = arith.encode_row(m, self.q.payload.row)
        q_we, q_lane = self.q.valid, self.q.payload.lane
        for i in range(query_latency(cfg)):
            q_we, q_lane = stage(m, q_we, f"q_we_{i}"), stage(m, q_lane, f"q_lane_{i}")
        codes = Signal(lanes[0].codes_in.shape(), name="codes")    # one row's codes, all lanes
        m.d.comb += [codes[e].eq(enc[e]) for e in range(d)]
        for t, lane in enumerate(lanes):
            add_lane(m, f"lane{t}", lane, "pred", (cfg, type(arith).__name__))
            m.d.comb += [lane.q_we.eq(q_we & (q_lane == t)), lane.codes_in.eq(codes)]
            if row_value is not None:
                m.d.comb += lane.row_in.eq(row_value)

        # pipeline control: a valid/last shift register under one global enable
        en = Signal()
        m.d.comb += [en.eq(~self.a.valid | self.a.ready), self.k.ready.eq(en)]
        valid, last = self.k.valid, self.k.payload.last
        for i in range(predictor_latency(cfg)):
            valid, last = stage(m, valid, f"valid_{i}", en), stage(m, last, f"last_{i}", en)
        m.d.comb += [self.a.valid.eq(valid), self.a.payload.last.eq(last)]

        # key side: the rows wait as long as a query row's encoding, then each key element is
        # prepared once into a register that the lanes share
        raw = self.k.payload.keys
        for i in range(query_latency(cfg) - 1):
            raw = stage(m, raw, f"k_raw_{i}", en)
        prepared = Signal(lanes[0].keys.shape(), name="k_prepared")
        for p in range(P):
            for e in range(d):
                m.d.comb += prepared[p][e].eq(arith.prepare_key(m, raw[p][e], f"k{p}_e{e}"))
        # the prepared keys' register, a copy per KEY_COPY_LANES lanes
        for t, lane in enumerate(lanes):
            if t % KEY_COPY_LANES == 0:
                keys = m.submodules[f"keys{t // KEY_COPY_LANES}"] = CopyRegister(prepared.shape())
                m.d.comb += [keys.en.eq(en), keys.i.eq(prepared)]
            m.d.comb += [lane.keys.eq(keys.o), lane.en.eq(en),
                         self.a.payload.score[t].eq(lane.score)]
        return m


class PredictorLane(wiring.Component):
    """One query lane of a :class:`ScorePredictor`: its stored query codes (and row value), the
    P·d terms against the prepared keys and P adder trees (latency ``tree_latency(d)``). Every
    lane is the same module (no lane index inside), so synthesis can map one and instance it.
    """

    def __init__(self, cfg, arith: PredictorArith):
        self.cfg, self.arith = cfg, arith
        P, d = cfg.pred_keys, cfg.head_dim
        super().__init__({
            "q_we": In(1), "codes_in": In(data.ArrayLayout(arith.code_layout(), d)),
            "row_in": In(max(arith.row_bits, 1)),
            "keys": In(data.ArrayLayout(data.ArrayLayout(arith.key_layout(), d), P)),
            "en": In(1), "score": Out(data.ArrayLayout(signed(arith.score_bits), P))})

    def elaborate(self, platform):
        m = Module()
        cfg, arith = self.cfg, self.arith
        P, d = cfg.pred_keys, cfg.head_dim
        codes = Signal(self.codes_in.shape(), name="codes")
        row = Signal(len(self.row_in), name="row")
        with m.If(self.q_we):
            m.d.sync += [codes.eq(self.codes_in), row.eq(self.row_in)]
        for p in range(P):
            terms, carries = [], []
            for e in range(d):
                term, carry = arith.term(m, codes[e], self.keys[p][e], f"k{p}_e{e}")
                terms.append(term)
                carries.append(carry)
            carries = [c for c in carries if not isinstance(c, int)]    # (constant 0: none)
            total = adder_tree(m, terms, carries, self.en, f"k{p}")
            m.d.comb += self.score[p].eq(arith.finish(m, total, row))
        return m
