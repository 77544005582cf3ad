"""DLZS predictor: leading-one encoders for the queries and a shift-add array scoring keys.

Model: :mod:`golden.dlzs` (bit-exact). Formats: :class:`gen.formats.Formats`. Ports, pipeline,
latency and backpressure: :class:`hw.predictor.ScorePredictor`.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data

from gen.formats import Formats

from .predictor import PredictorArith, ScorePredictor

__all__ = ["lzc8", "lz_code_layout", "lz_encode", "row_window", "DlzsArith", "DlzsPredictor"]


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
    """The log-domain code of one query element: q ≈ (-1)**neg · 2**pos, or 0 when ``zero``."""
    return data.StructLayout({"neg": 1, "zero": 1, "pos": fmt.lz_pos_bits})


def lz_encode(m: Module, q, fmt: Formats):
    """Build the configurable leading-zero encoder for one query element; return its code.

    As in SOFA, an 8-bit element uses one 8-bit leading-zero counter; a 16-bit element uses two
    whose all-zero flags combine: LZ16 = upper_all_zero ? 8 + lz(lower) : lz(upper).
    pos = data_bits - 1 - LZ, plus one under ``nearest`` rounding when the next bit is set.
    """
    b = fmt.data_bits
    mag = Signal(b, name="lz_mag")
    m.d.comb += mag.eq(abs(q))
    if b == 8:
        zero, lz = lzc8(m, mag)
    else:
        z_hi, c_hi = lzc8(m, mag[8:16])
        z_lo, c_lo = lzc8(m, mag[0:8])
        zero = Signal(name="lz_zero")
        lz = Signal(5, name="lz16")
        m.d.comb += [zero.eq(z_hi & z_lo), lz.eq(Mux(z_hi, 8 + c_lo, c_hi))]
    pos = Signal(fmt.lz_pos_bits, name="lz_pos")
    m.d.comb += pos.eq(b - 1 - lz)
    if fmt.cfg.dlzs_rounding == "nearest":
        below = Signal(name="lz_below")
        m.d.comb += below.eq(Mux(pos == 0, 0, (mag >> (pos - 1)[:len(pos)])[0]))
        rounded = pos + below
    else:
        rounded = pos
    code = Signal(lz_code_layout(fmt), name="lz_code")
    m.d.comb += [code.neg.eq(q < 0), code.zero.eq(zero), code.pos.eq(rounded)]
    return code


def window_code_layout(fmt: Formats) -> data.StructLayout:
    """A stored query element: sign, dropped flag, shift relative to the row base."""
    return data.StructLayout({"neg": 1, "drop": 1, "shift": fmt.cfg.dlzs_shift_bits})


def row_window(m: Module, codes, fmt: Formats):
    """Keep the 2**dlzs_shift_bits leading-one positions below the row's largest one.

    Returns (window codes, base): base = max(top - (window - 1), 0) over the row's nonzero
    elements; an element is dropped when it is zero or its position is below base.
    """
    top = Signal(fmt.lz_pos_bits, name="row_top")
    level = [Mux(c.zero, 0, c.pos) for c in codes]
    while len(level) > 1:                      # comparator tree, shared by all lanes
        level = [Mux(a > b, a, b) for a, b in zip(level[::2], level[1::2])] + \
                ([level[-1]] if len(level) % 2 else [])
    m.d.comb += top.eq(level[0])
    base = Signal(fmt.lz_pos_bits, name="row_base")
    m.d.comb += base.eq(Mux(top >= fmt.dlzs_window - 1, top - (fmt.dlzs_window - 1), 0))
    out = []
    for e, c in enumerate(codes):
        w = Signal(window_code_layout(fmt), name=f"win_e{e}")
        m.d.comb += [w.neg.eq(c.neg), w.drop.eq(c.zero | (c.pos < base)),
                     w.shift.eq(c.pos - base)]
        out.append(w)
    return out, base


class DlzsArith(PredictorArith):
    """DLZS terms: ±(kmag << shift); the sign is applied as x XOR s plus a carry of s.

    Σ ±x = Σ (x XOR s) + Σ s, so a negative term never needs its own negation (the carries are
    summed once at the root of the adder tree). A dropped query element contributes nothing. The
    summed score is shifted left by the lane's row base once.
    """

    def __init__(self, cfg):
        self.fmt = Formats(cfg)
        self.score_bits = self.fmt.pred_bits
        self.row_bits = self.fmt.lz_pos_bits
        self.xbits = self.fmt.dlzs_x_bits                    # |term| magnitude width

    def code_layout(self):
        return window_code_layout(self.fmt)

    def encode_row(self, m, row):
        return row_window(m, [lz_encode(m, q, self.fmt) for q in row], self.fmt)

    def finish(self, m, total, row_value):
        return total << row_value

    def key_layout(self):
        return data.StructLayout({"mag": self.fmt.cfg.dlzs_k_bits, "neg": 1})

    def prepare_key(self, m, k, name):
        op = Signal(self.key_layout(), name=f"kop_{name}")
        m.d.comb += [op.mag.eq(abs(k) >> self.fmt.dlzs_k_shift), op.neg.eq(k < 0)]
        return op

    def term(self, m, code, key, name):
        x = Signal(self.xbits + 1, name=f"x_{name}")
        s = Signal(name=f"s_{name}")
        m.d.comb += [
            s.eq(~code.drop & (code.neg ^ key.neg)),
            x.eq(Mux(code.drop, 0, key.mag << code.shift) ^ s.replicate(self.xbits + 1)),
        ]
        return x.as_signed(), s


class DlzsPredictor(ScorePredictor):
    """DLZS shift-add array (see :class:`hw.predictor.ScorePredictor` for ports and timing)."""

    def __init__(self, cfg):
        super().__init__(cfg, DlzsArith(cfg))
