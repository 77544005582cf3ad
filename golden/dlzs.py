"""DLZS predictor: leading-one (log-domain) encoding of the query, shift-add scores.

Model of ``hw/dlzs.py``. Each query element q becomes a signed sum of ``dlzs_terms`` powers of two
±(2**pos_1 [+ 2**pos_2]): pos_1 is the position of the leading one of |q|, pos_2 that of what is
left when that one is cleared (the residual). ``dlzs_rounding`` applies to the last term only
(``nearest``: plus one when the bit below its leading one is set); a zero magnitude or residual
gives no term. Per query row only the ``2**dlzs_shift_bits`` positions below the row's largest
first-term position are kept: base = max(max_pos - (window - 1), 0), terms with pos < base count
as zero, the rest are stored as shift = pos - base. Each key element is truncated to its top
``dlzs_k_bits`` magnitude bits, kmag = |k| >> (data_bits - dlzs_k_bits). The predicted score is
Â = (Σ_d sign(q_d)·sign(k_d)·Σ_t (kmag_d << shift_dt)) << base: shifts and adds only (one extra
shift and add per product for the second term).
"""

from __future__ import annotations

import numpy as np

from .intops import bit_length, int_matmul

__all__ = ["lz_encode", "query_code", "key_operand", "query_weight", "predict"]


def _leading_one(mag, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """(zero, pos) of non-negative magnitudes: pos = bit_length - 1 (0 for zero), plus one under
    ``nearest`` when the bit below the leading one is set."""
    zero = mag == 0
    pos = np.maximum(bit_length(mag) - 1, 0)
    if rounding == "nearest":
        pos = pos + np.where(pos >= 1, (mag >> np.maximum(pos - 1, 0)) & 1, 0)
    return zero, pos


def lz_encode(q, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode query elements: return (negative, zero, pos); zero and pos have a last axis of
    ``dlzs_terms`` terms.

    Term t is the leading one of the magnitude left by terms < t (``zero`` when nothing is left);
    ``dlzs_rounding`` applies to the last term. pos lies in [0, data_bits - 1]
    (|q| <= 2**(data_bits-1)), is 0 for a zero term and never exceeds an earlier term's pos.
    """
    q = np.asarray(q, dtype=np.int64)
    mag = np.abs(q)
    terms = fmt.cfg.dlzs_terms
    zeros, poss = [], []
    for t in range(terms):
        zero, pos = _leading_one(mag, fmt.cfg.dlzs_rounding if t == terms - 1 else "floor")
        zeros.append(zero)
        poss.append(pos)
        mag = np.where(zero, 0, mag - (np.int64(1) << pos))     # the residual
    return q < 0, np.stack(zeros, axis=-1), np.stack(poss, axis=-1)


def query_code(q, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encode query rows q [..., d]: return (negative [..., d], dropped, shift [..., d, terms],
    base [...]).

    ``dropped`` marks terms that contribute nothing (zero, or below the row's window); the window
    is set by the first terms.
    """
    neg, zero, pos = lz_encode(q, fmt)
    top = np.where(zero[..., 0], 0, pos[..., 0]).max(axis=-1)
    base = np.maximum(top - (fmt.dlzs_window - 1), 0)[..., None, None]
    dropped = zero | (pos < base)
    return neg, dropped, np.where(dropped, 0, pos - base), base[..., 0, 0]


def query_weight(q, fmt) -> tuple[np.ndarray, np.ndarray]:
    """Return (w, base): each element's signed sum of powers of two ±Σ_t 2**shift_t (dropped
    terms count 0), and the row base."""
    neg, dropped, shift, base = query_code(q, fmt)
    w = np.where(dropped, 0, np.left_shift(np.int64(1), shift)).sum(axis=-1)
    return np.where(neg, -w, w), base


def key_operand(k, fmt) -> np.ndarray:
    """Return each key element truncated to the predictor's magnitude bits, with its sign."""
    k = np.asarray(k, dtype=np.int64)
    kmag = np.abs(k) >> fmt.dlzs_k_shift
    return np.where(k < 0, -kmag, kmag)


def predict(q, k, fmt) -> np.ndarray:
    """Return predicted scores Â [Sq, Sk] for int query rows q [Sq, d] and key rows k [Sk, d]."""
    w, base = query_weight(q, fmt)
    return int_matmul(w, key_operand(k, fmt).T) << base[:, None]
