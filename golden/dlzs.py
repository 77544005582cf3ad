"""DLZS predictor: leading-one (log-domain) encoding of the query, shift-add scores.

Model of ``hw/dlzs.py``. Each query element q becomes a signed power of two ±2**pos (pos is the
position of the leading one of |q|, optionally rounded to nearest on the next bit; q = 0 becomes 0).
Per query row only the ``2**dlzs_shift_bits`` positions below the row's largest one are kept:
base = max(max_pos - (window - 1), 0), elements with pos < base count as zero, the rest are stored
as shift = pos - base. Each key element is truncated to its top ``dlzs_k_bits`` magnitude bits,
kmag = |k| >> (data_bits - dlzs_k_bits). The predicted score is
Â = (Σ_d sign(q_d)·sign(k_d)·(kmag_d << shift_d)) << base: shifts and adds only.
"""

from __future__ import annotations

import numpy as np

from .intops import bit_length, int_matmul

__all__ = ["lz_encode", "query_code", "key_operand", "query_weight", "predict"]


def lz_encode(q, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode query elements: return (negative, zero, pos) arrays.

    pos = bit_length(|q|) - 1, plus one under ``nearest`` rounding when the bit below the leading
    one is set; it always lies in [0, data_bits - 1] (|q| <= 2**(data_bits-1)). pos is 0 for q = 0.
    """
    q = np.asarray(q, dtype=np.int64)
    mag = np.abs(q)
    zero = mag == 0
    pos = np.maximum(bit_length(mag) - 1, 0)
    if fmt.cfg.dlzs_rounding == "nearest":
        below = np.where(pos >= 1, (mag >> np.maximum(pos - 1, 0)) & 1, 0)
        pos = pos + below
    return q < 0, zero, pos


def query_code(q, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encode query rows q [..., d]: return (negative, dropped, shift [..., d], base [...]).

    ``dropped`` marks elements that contribute nothing (zero, or below the row's window).
    """
    neg, zero, pos = lz_encode(q, fmt)
    top = np.where(zero, 0, pos).max(axis=-1)
    base = np.maximum(top - (fmt.dlzs_window - 1), 0)
    dropped = zero | (pos < base[..., None])
    return neg, dropped, np.where(dropped, 0, pos - base[..., None]), base


def query_weight(q, fmt) -> tuple[np.ndarray, np.ndarray]:
    """Return (w, base): each element's signed power of two ±2**shift (0 if dropped), row base."""
    neg, dropped, shift, base = query_code(q, fmt)
    w = np.left_shift(np.int64(1), shift)
    return np.where(dropped, 0, np.where(neg, -w, w)), base


def key_operand(k, fmt) -> np.ndarray:
    """Return each key element truncated to the predictor's magnitude bits, with its sign."""
    k = np.asarray(k, dtype=np.int64)
    kmag = np.abs(k) >> fmt.dlzs_k_shift
    return np.where(k < 0, -kmag, kmag)


def predict(q, k, fmt) -> np.ndarray:
    """Return predicted scores Â [Sq, Sk] for int query rows q [Sq, d] and key rows k [Sk, d]."""
    w, base = query_weight(q, fmt)
    return int_matmul(w, key_operand(k, fmt).T) << base[:, None]
