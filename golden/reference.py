"""Float reference attention (float64): dense or restricted to a key mask; causal; grouped-query."""

from __future__ import annotations

import numpy as np

from star.spec.tiling import key_limit

__all__ = ["causal_mask", "attention_head", "attention", "softmax_probs", "rel_error"]


def causal_mask(sq: int, sk: int, window: int | None = None) -> np.ndarray:
    """Return the causal mask [sq, sk]: query i sees key j iff j <= i + (sk - sq) (bottom-right);
    with a sliding ``window`` also only the last ``window`` of those: j > i + (sk - sq) - window.
    """
    if sk < sq:
        raise ValueError(f"a causal mask needs at least as many keys as queries ({sk} < {sq})")
    last = key_limit(np.arange(sq)[:, None], sk - sq, sk, True)
    mask = np.arange(sk)[None, :] <= last
    if window is not None:
        mask &= np.arange(sk)[None, :] > last - window
    return mask


def softmax_probs(q, k, scale: float, mask=None) -> np.ndarray:
    """Return softmax(scale·q·kᵀ) [sq, sk] over the keys allowed by ``mask`` (None: all)."""
    s = scale * (np.asarray(q, np.float64) @ np.asarray(k, np.float64).T)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def attention_head(q, k, v, scale: float, mask=None) -> np.ndarray:
    """Return softmax(scale·q·kᵀ)·v for one head, q [sq, d], k/v [sk, d]; mask limits the keys."""
    return softmax_probs(q, k, scale, mask) @ np.asarray(v, np.float64)


def attention(q, k, v, *, causal: bool = False, scale: float | None = None) -> np.ndarray:
    """Return multi-head attention for q [Hq, sq, d] and k/v [Hkv, sk, d] (Hq a multiple of Hkv).

    Query head h reads kv head h // (Hq / Hkv); scale defaults to 1/sqrt(d).
    """
    hq, sq, d = q.shape
    hkv, sk, _ = k.shape
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    mask = causal_mask(sq, sk) if causal else None
    group = hq // hkv
    return np.stack([attention_head(q[h], k[h // group], v[h // group], scale, mask)
                     for h in range(hq)])


def rel_error(out, ref) -> float:
    """The relative (Frobenius) error of ``out`` against ``ref``: |out - ref| / |ref|."""
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-300))
