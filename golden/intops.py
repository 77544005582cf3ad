"""Exact integer helpers shared by the golden models (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["bit_length", "int_matmul"]

_EXACT = 1 << 53  # float64 holds every integer below this exactly


def bit_length(a) -> np.ndarray:
    """Return the bit length of each non-negative integer (0 for 0), exact below 2**53."""
    a = np.asarray(a, dtype=np.int64)
    if np.any(a < 0) or np.any(a >= _EXACT):
        raise ValueError("bit_length needs integers in [0, 2**53)")
    _, e = np.frexp(a.astype(np.float64))
    return e.astype(np.int64)


def int_matmul(a, b) -> np.ndarray:
    """Return the exact integer product ``a @ b`` of int64 matrices.

    Uses float64 BLAS, which is exact while every partial sum stays below 2**53; the bound
    Σ|a||b| is checked first, so an inexact result raises instead of returning.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    bound = np.abs(a).max(initial=0) * np.abs(b).max(initial=0) * a.shape[-1]
    if bound >= _EXACT:
        raise ValueError(f"int_matmul operands too wide for exact float64 ({bound:.3g})")
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
