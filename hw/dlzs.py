"""DLZS predictor: leading-one encoders for the queries and a shift-add array scoring keys.

Model: :mod:`golden.dlzs` (bit-exact). Formats: :class:`star.spec.formats.Formats`. Ports, pipeline,
latency and backpressure: :class:`hw.predictor.ScorePredictor`.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import data

from star.spec.formats import Formats

from .predictor import PredictorArith, ScorePredictor, stage

__all__ = ["lzc8", "lz_code_layout", "leading_one", "lz_encode", "row_window", "DlzsArith",
           "DlzsPredictor"]


def lzc8(m: Module, byte) -> tuple[Signal, Signal]:
    """Count leading zeros of an 8-bit value: return (all_zero, count), count in [0, 7]."""
    zero = Signal(name="lzc_zero")
    count = Signal(3, name="lzc_count")
    m.d.comb += zero.eq(byte == 0)
    with m.Switch(byte):
        for lz in range(8):
            # '-' bits are don't-care: the first one at bit 7 - lz decides the count
            with m.Case("0" * lz + "1" + "-" * (7 - lz)):
                m.d.comb += count.eq(lz)
    return zero, count


def lz_code_layout(fmt: Formats) -> data.StructLayout:
    """The log-domain code of one query element: q ≈ (-1)**neg · Σ_t 2**pos[t] over the
    ``dlzs_terms`` terms that are not ``zero``."""
    terms = fmt.cfg.dlzs_terms
    return data.StructLayout({"neg": 1, "zero": data.ArrayLayout(1, terms),
                              "pos": data.ArrayLayout(fmt.lz_pos_bits, terms)})


def leading_one(m: Module, mag, fmt: Formats, rounding: str, name: str):
    """Return (zero, pos) of an unsigned ``data_bits`` magnitude.

    As in SOFA, an 8-bit value uses one 8-bit leading-zero counter; a 16-bit value uses two
    whose all-zero flags combine: LZ16 = upper_all_zero ? 8 + lz(lower) : lz(upper).
    pos = data_bits - 1 - LZ, plus one under ``nearest`` rounding when the next bit is set.
    """
    b = fmt.data_bits
    if b == 8:
        zero, lz = lzc8(m, mag)
    else:
        z_hi, c_hi = lzc8(m, mag[8:16])
        z_lo, c_lo = lzc8(m, mag[0:8])
        zero = Signal(name=f"{name}_zero")
        lz = Signal(5, name=f"{name}_lz16")
        m.d.comb += [zero.eq(z_hi & z_lo), lz.eq(Mux(z_hi, 8 + c_lo, c_hi))]
    pos = Signal(fmt.lz_pos_bits, name=f"{name}_pos")
    m.d.comb += pos.eq(b - 1 - lz)
    if rounding == "floor":
        return zero, pos
    below = Signal(name=f"{name}_below")
    m.d.comb += below.eq(Mux(pos == 0, 0, (mag >> (pos - 1)[:len(pos)])[0]))
    rounded = Signal(fmt.lz_pos_bits, name=f"{name}_rounded")
    m.d.comb += rounded.eq(pos + below)
    return zero, rounded


def lz_encode(m: Module, q, fmt: Formats, stage=None):
    """Build the leading-zero encoder of one query element; return its code.

    Term 1 is the leading one of |q|; with ``dlzs_terms = 2`` term 2 is the leading one of the
    residual (|q| with that one cleared) from a second encoder. ``dlzs_rounding`` applies to the
    last term. ``stage(value, name)``, when given, registers the code (and the residual) after
    each term: latency ``dlzs_terms`` cycles; without it the encoder is combinational.
    """
    terms = fmt.cfg.dlzs_terms
    mag = Signal(fmt.data_bits, name="lz_mag")
    neg = Signal(name="lz_neg")
    m.d.comb += [mag.eq(abs(q)), neg.eq(q < 0)]
    zeros, poss = [], []
    for t in range(terms):
        rounding = fmt.cfg.dlzs_rounding if t == terms - 1 else "floor"
        zero, pos = leading_one(m, mag, fmt, rounding, f"lz{t}")
        zeros, poss = zeros + [zero], poss + [pos]
        if t < terms - 1:
            one = (Const(1, fmt.data_bits) << pos)[:fmt.data_bits]
            residual = Signal(fmt.data_bits, name=f"lz{t}_residual")
            m.d.comb += residual.eq(Mux(zero, 0, mag ^ one))
            mag = residual if stage is None else stage(residual, f"lz{t}_mag")
        if stage is not None:            # the code so far, a cycle later
            neg = stage(neg, f"lz{t}_neg")
            zeros = [stage(z, f"lz{t}_zero{i}") for i, z in enumerate(zeros)]
            poss = [stage(p, f"lz{t}_pos{i}") for i, p in enumerate(poss)]
    code = Signal(lz_code_layout(fmt), name="lz_code")
    m.d.comb += code.neg.eq(neg)
    m.d.comb += [code.zero[t].eq(zeros[t]) for t in range(terms)]
    m.d.comb += [code.pos[t].eq(poss[t]) for t in range(terms)]
    return code


def window_code_layout(fmt: Formats) -> data.StructLayout:
    """A stored query element: sign, and per term a dropped flag and a shift from the row base."""
    terms = fmt.cfg.dlzs_terms
    return data.StructLayout({"neg": 1, "drop": data.ArrayLayout(1, terms),
                              "shift": data.ArrayLayout(fmt.cfg.dlzs_shift_bits, terms)})


def row_window(m: Module, codes, fmt: Formats, stage):
    """Keep the 2**dlzs_shift_bits leading-one positions below the row's largest one.

    Returns (window codes, base): base = max(top - (window - 1), 0) over the row's nonzero first
    terms; a term is dropped when it is zero or its position is below base. ``stage(value,
    name)`` registers the row maximum and the codes beside it (latency one cycle).
    """
    level = [Mux(c.zero[0], 0, c.pos[0]) for c in codes]
    while len(level) > 1:                      # comparator tree, shared by all lanes
        level = [Mux(a > b, a, b) for a, b in zip(level[::2], level[1::2])] + \
                ([level[-1]] if len(level) % 2 else [])
    top = stage(level[0], "row_top")
    codes = [stage(c, f"row_code_e{e}") for e, c in enumerate(codes)]
    base = Signal(fmt.lz_pos_bits, name="row_base")
    m.d.comb += base.eq(Mux(top >= fmt.dlzs_window - 1, top - (fmt.dlzs_window - 1), 0))
    out = []
    for e, c in enumerate(codes):
        w = Signal(window_code_layout(fmt), name=f"win_e{e}")
        m.d.comb += w.neg.eq(c.neg)
        for t in range(fmt.cfg.dlzs_terms):
            m.d.comb += [w.drop[t].eq(c.zero[t] | (c.pos[t] < base)),
                         w.shift[t].eq(c.pos[t] - base)]
        out.append(w)
    return out, base


class DlzsArith(PredictorArith):
    """DLZS terms: ±Σ_t (kmag << shift_t); the sign is applied as x XOR s plus a carry of s.

    Σ ±x = Σ (x XOR s) + Σ s, so a negative term never needs its own negation (the carries are
    summed once at the root of the adder tree). A dropped term contributes nothing (a second term
    is dropped whenever the first is). The lane's row base is the score's shift
    (``pred_shift_bits``; none when the window spans every position), applied by no one: SADS
    compares one row's sums.
    """

    def __init__(self, cfg):
        self.fmt = cfg.formats
        self.score_bits = self.fmt.pred_sum_bits
        self.shift_bits = self.fmt.pred_shift_bits
        self.xbits = self.fmt.dlzs_x_bits                    # |term| magnitude width

    def code_layout(self):
        return window_code_layout(self.fmt)

    def encode_row(self, m, row):
        def reg(value, name):
            return stage(m, value, name)
        return row_window(m, [lz_encode(m, q, self.fmt, reg) for q in row], self.fmt, reg)

    def key_layout(self):
        return data.StructLayout({"mag": self.fmt.cfg.dlzs_k_bits, "neg": 1})

    def prepare_key(self, m, k, name):
        op = Signal(self.key_layout(), name=f"kop_{name}")
        m.d.comb += [op.mag.eq(abs(k) >> self.fmt.dlzs_k_shift), op.neg.eq(k < 0)]
        return op

    def term(self, m, code, key, name):
        x = Signal(self.xbits + 1, name=f"x_{name}")
        s = Signal(name=f"s_{name}")
        mag = sum(Mux(code.drop[t], 0, key.mag << code.shift[t])
                  for t in range(self.fmt.cfg.dlzs_terms))
        m.d.comb += [
            s.eq(~code.drop[0] & (code.neg ^ key.neg)),
            x.eq(mag ^ s.replicate(self.xbits + 1)),
        ]
        return x.as_signed(), s


class DlzsPredictor(ScorePredictor):
    """DLZS shift-add array (see :class:`hw.predictor.ScorePredictor` for ports and timing)."""

    def __init__(self, cfg):
        super().__init__(cfg, DlzsArith(cfg))
