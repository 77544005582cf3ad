"""DLZS predictor: leading-one encoders for the queries and a shift-add array scoring keys.

Model: :mod:`golden.dlzs` (bit-exact). Formats: :class:`gen.formats.Formats`. Ports, pipeline,
latency and backpressure: :class:`hw.predictor.ScorePredictor`.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data

from gen.formats import Formats

from .predictor import PredictorArith, ScorePredictor

__all__ = ["lzc8", "lz_code_layout", "lz_encode", "DlzsArith", "DlzsPredictor"]


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


class DlzsArith(PredictorArith):
    """DLZS terms: ±(kmag << pos); the sign is applied as x XOR s plus a carry of s.

    Σ ±x = Σ (x XOR s) + Σ s, so a negative term never needs its own negation (the carries are
    summed once at the root of the adder tree). A zero query element contributes nothing.
    """

    def __init__(self, cfg):
        self.fmt = Formats(cfg)
        self.score_bits = self.fmt.pred_bits
        self.xbits = cfg.dlzs_k_bits + self.fmt.data_bits - 1     # |term| magnitude width

    def code_layout(self):
        return lz_code_layout(self.fmt)

    def encode_query(self, m, q):
        return lz_encode(m, q, self.fmt)

    def prepare_key(self, m, k, name):
        op = Signal(data.StructLayout({"mag": self.fmt.cfg.dlzs_k_bits, "neg": 1}),
                    name=f"kop_{name}")
        m.d.comb += [op.mag.eq(abs(k) >> self.fmt.dlzs_k_shift), op.neg.eq(k < 0)]
        return op

    def term(self, m, code, key, name):
        x = Signal(self.xbits + 1, name=f"x_{name}")
        s = Signal(name=f"s_{name}")
        m.d.comb += [
            s.eq(~code.zero & (code.neg ^ key.neg)),
            x.eq(Mux(code.zero, 0, key.mag << code.pos) ^ s.replicate(self.xbits + 1)),
        ]
        return x.as_signed(), s


class DlzsPredictor(ScorePredictor):
    """DLZS shift-add array (see :class:`hw.predictor.ScorePredictor` for ports and timing)."""

    def __init__(self, cfg):
        super().__init__(cfg, DlzsArith(cfg))
