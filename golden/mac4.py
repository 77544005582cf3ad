"""4-bit multiply-accumulate predictor (Sanger-style), the comparison point for DLZS.

Model of the benchmark-only ``hw/mac4.py``. Each operand is reduced to 4-bit two's complement by
dropping its low ``data_bits - 4`` bits with round-half-up and saturating to [-8, 7]; the predicted
score is the exact dot product of the 4-bit operands.
"""

from __future__ import annotations

import numpy as np

from .intops import int_matmul
from .rules import round_shift, saturate

__all__ = ["to_int4", "predict"]


def to_int4(x, fmt) -> np.ndarray:
    """Return ``x`` reduced to 4-bit two's complement (round half up, saturate to [-8, 7])."""
    return saturate(round_shift(np.asarray(x, dtype=np.int64), fmt.mac4_shift), 4)


def predict(q, k, fmt) -> np.ndarray:
    """Return 4-bit predicted scores [Sq, Sk] for int query rows q [Sq, d] and key rows k [Sk, d]."""
    return int_matmul(to_int4(q, fmt), to_int4(k, fmt).T)
