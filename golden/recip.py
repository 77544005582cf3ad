"""Reciprocal unit and final normalisation O = o / l.

Model of ``hw/recip.py``. For the row sum l >= 1 with n = bit_length(l), the normalised reciprocal is
r = floor(2**(n - 1 + R) / l), in [2**(R-1), 2**R] (R = ``recip_bits``): exactly what an (R+1)-step
restoring divider produces. Each output element is round_half_up(o·r / 2**(n - 1 + R)), saturated to
``data_bits``. Error: the reciprocal is low by less than one part in 2**(R-1), so
|O - o/l| <= 0.5 + |o/l|·2**(1-R) LSB.
"""

from __future__ import annotations

import numpy as np

from .intops import bit_length
from .rules import recip_normalize

__all__ = ["reciprocal", "normalize"]


def reciprocal(l, fmt) -> tuple[np.ndarray, np.ndarray]:
    """Return (r, shift) with r = floor(2**shift / l) and shift = bit_length(l) - 1 + R."""
    l = np.asarray(l, dtype=np.int64)
    if np.any(l < 1):
        raise ValueError("reciprocal needs l >= 1")
    shift = bit_length(l) - 1 + fmt.recip_bits
    return (np.int64(1) << shift) // l, shift


def normalize(o, l, fmt) -> np.ndarray:
    """Return O = o / l as ``data_bits`` integers; o is [rows, d], l is [rows]."""
    r, shift = reciprocal(l, fmt)
    return recip_normalize(o, r[:, None], shift[:, None], fmt.data_bits)
