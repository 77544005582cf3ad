"""exp2 unit: softmax weights p = 2**(-(m - s)·c) in fixed point.

Model of ``hw/exp2.py``. Input t = m - s >= 0 (an exact integer score difference) and the runtime
score scale (mantissa C, shift): u = round_half_up(t·C / 2**(shift - E)) is the exponent with E
fraction bits, saturated at ``u_max`` = (P + 2)·2**E (where p is already 0). Then with n = u >> E
and f = u mod 2**E, p = round_half_up(table[f] / 2**n), where table[f] = round(2**(P - f/2**E))
(``Formats.exp2_table``). Rounding (not truncating) the shift keeps the many small weights of a
long row unbiased.

Error bound (checked exhaustively in the tests): |p - 2**(P - u/2**E)| <= 0.75 LSB of p; the
exponent's own rounding adds at most a factor 2**(±2**-(E+1)) (±0.27 % at E = 8, ±1.1 % at E = 6).
"""

from __future__ import annotations

import numpy as np

from .rules import clamp_max, table_shift

__all__ = ["exponent", "exp2_neg", "weight"]


def exponent(t, mant: int, shift: int, fmt) -> np.ndarray:
    """Return u, the saturated fixed-point exponent of the score difference t >= 0."""
    t = np.asarray(t, dtype=np.int64)
    if np.any(t < 0):
        raise ValueError("exponent input must be m - s >= 0")
    prod = t * np.int64(mant)
    return clamp_max(table_shift(prod, shift - fmt.exp_frac_bits), fmt.u_max)


def exp2_neg(u, fmt) -> np.ndarray:
    """Return p = 2**(-u / 2**E) with ``exp_out_bits`` fraction bits (table lookup, rounded shift)."""
    u = np.asarray(u, dtype=np.int64)
    table = np.asarray(fmt.exp2_table, dtype=np.int64)
    e = fmt.exp_frac_bits
    return table_shift(table[u & ((1 << e) - 1)], u >> e)


def weight(t, mant: int, shift: int, fmt) -> np.ndarray:
    """Return the softmax weight of the score difference t = m - s >= 0 (exponent then exp2)."""
    return exp2_neg(exponent(t, mant, shift, fmt), fmt)
