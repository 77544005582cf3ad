"""The whole STAR flow for one attention head, bit-exact: quantise, predict, select, SU-FA.

Also the dense FlashAttention baseline in the same formats (prediction off, every key computed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dlzs, mac4, sads, sufa
from .intops import int_matmul
from .quant import quantize, score_scale
from .reference import causal_mask

__all__ = ["PREDICTORS", "HeadInputs", "prepare", "predicted_scores", "run", "run_float"]

PREDICTORS = ("dlzs", "mac4", "exact")


@dataclass
class HeadInputs:
    """One head quantised for the core: int q/k/v, their scales, the score-scale register pair."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scale_q: float
    scale_k: float
    scale_v: float
    mant: int
    shift: int
    valid: np.ndarray  # bool [sq, sk]: causal (or sliding-window) mask; all True if neither


def prepare(fmt, q, k, v, *, causal: bool, softmax_scale: float,
            window: int | None = None) -> HeadInputs:
    """Quantise float q [sq, d], k/v [sk, d] for the core and derive the score-scale register.
    ``window``: a causal sliding window (a model's masking; the core itself masks causally)."""
    b = fmt.data_bits
    (qi, sq), (ki, sk), (vi, sv) = quantize(q, b), quantize(k, b), quantize(v, b)
    mant, shift = score_scale(fmt, sq, sk, softmax_scale)
    n_q, n_k = qi.shape[0], ki.shape[0]
    valid = causal_mask(n_q, n_k, window) if causal else np.ones((n_q, n_k), bool)
    return HeadInputs(qi, ki, vi, sq, sk, sv, mant, shift, valid)


def predicted_scores(h: HeadInputs, fmt, predictor: str) -> np.ndarray:
    """Return the scores a predictor ranks keys by: ``dlzs``, ``mac4`` or ``exact`` (q·k)."""
    if predictor == "dlzs":
        return dlzs.predict(h.q, h.k, fmt)
    if predictor == "mac4":
        return mac4.predict(h.q, h.k, fmt)
    if predictor == "exact":
        return int_matmul(h.q, h.k.T)
    raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}, not {predictor!r}")


def run(h: HeadInputs, fmt, *, dense: bool = False, predictor: str = "dlzs",
        k_tile: int | None = None, radius: int | None = None):
    """Run the core's computation on a prepared head; return (sufa.Result, selection).

    ``dense`` runs the FlashAttention baseline (every valid key, exact tile max); otherwise the
    predictor's scores go through SADS (k_tile and radius default to the config's) and SU-FA.
    """
    cfg = fmt.cfg
    if dense:
        sel = sads.dense_order(h.valid, fmt)
    else:
        scores = predicted_scores(h, fmt, predictor)
        sel = sads.select(scores, fmt, valid=h.valid,
                          k_tile=cfg.k_tile if k_tile is None else k_tile,
                          radius=cfg.radius if radius is None else radius)
    res = sufa.attend(h.q, h.k, h.v, sel, h.mant, h.shift, fmt, exact_max=dense)
    return res, sel


def run_float(fmt, q, k, v, *, causal: bool, softmax_scale: float, **kw) -> np.ndarray:
    """Quantise, run the core's computation and return O dequantised to float [sq, d]."""
    h = prepare(fmt, q, k, v, causal=causal, softmax_scale=softmax_scale)
    res, _ = run(h, fmt, **kw)
    return res.out * h.scale_v
