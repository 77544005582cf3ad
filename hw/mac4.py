"""4-bit multiply-accumulate predictor (Sanger-style): the benchmark baseline for DLZS.

Model: :mod:`golden.mac4` (bit-exact). Each operand is reduced to 4-bit two's complement (round
half up on the dropped bits, saturate to [-8, 7]: :mod:`hw.rules`); the score is the exact dot
product. Same ports, pipeline and adder tree as DLZS (:class:`hw.predictor.ScorePredictor`). Used
only for comparison.
"""

from __future__ import annotations

from amaranth import Signal, signed

from star.spec.formats import Formats

from .predictor import PredictorArith, ScorePredictor, query_latency, stage
from .rules import round_shift, saturate

__all__ = ["to_int4", "Mac4Arith", "Mac4Predictor"]


def to_int4(m, x, fmt: Formats, name: str):
    """Return ``x`` reduced to 4-bit two's complement: (x + 2**(s-1)) >> s, saturated."""
    s = fmt.mac4_shift
    wide = Signal(signed(fmt.data_bits + 1 - s), name=f"i4w_{name}")
    out = Signal(signed(4), name=f"i4_{name}")
    m.d.comb += [wide.eq(round_shift(x, s)), out.eq(saturate(wide, 4))]
    return out


class Mac4Arith(PredictorArith):
    """4-bit × 4-bit signed products; no carry."""

    def __init__(self, cfg):
        self.fmt = cfg.formats
        self.score_bits = self.fmt.mac4_bits

    def code_layout(self):
        return signed(4)

    def encode_row(self, m, row):
        codes = [to_int4(m, q, self.fmt, f"q{e}") for e, q in enumerate(row)]
        for i in range(query_latency(self.fmt.cfg)):     # the DLZS encoder's latency
            codes = [stage(m, c, f"q{e}_{i}") for e, c in enumerate(codes)]
        return codes, None

    def key_layout(self):
        return signed(4)

    def prepare_key(self, m, k, name):
        return to_int4(m, k, self.fmt, name)

    def term(self, m, code, key, name):
        prod = Signal(signed(8), name=f"prod_{name}")
        m.d.comb += prod.eq(code * key)
        return prod, 0


class Mac4Predictor(ScorePredictor):
    """4-bit MAC array (see :class:`hw.predictor.ScorePredictor` for ports and timing)."""

    def __init__(self, cfg):
        super().__init__(cfg, Mac4Arith(cfg))
