"""Quantisation of float tensors to the core's integer formats (symmetric, per tensor)."""

from __future__ import annotations

import math

import numpy as np

from star.spec.formats import encode_score_scale

__all__ = ["quantize", "quantize_keys_per_channel", "score_scale"]


def quantize(x, bits: int) -> tuple[np.ndarray, float]:
    """Quantise ``x`` to signed ``bits``-bit integers with one symmetric scale.

    scale = max|x| / (2**(bits-1) - 1) (1.0 for an all-zero tensor); values are rounded to nearest
    (ties to even) and lie in [-(2**(bits-1) - 1), 2**(bits-1) - 1]. Returns (int64 array, scale).
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantise a tensor holding NaN or infinity")
    qmax = (1 << (bits - 1)) - 1
    amax = float(np.abs(x).max(initial=0.0))
    scale = amax / qmax if amax > 0 else 1.0
    return np.clip(np.rint(x / scale), -qmax, qmax).astype(np.int64), scale


def quantize_keys_per_channel(q, k, bits: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Quantise K per channel (each column of ``k`` [S, d] to the full range) with the channel
    scales folded into ``q`` [.., d] before its per-tensor quantisation, so the integer q·k keeps
    its meaning: q·k ≈ scale_q · (qi·ki). A host's choice for the bit-serial front (the planes
    are narrower where a channel is small; docs/decisions.md). Returns (qi, scale_q, ki)."""
    cols = [quantize(k[:, c], bits) for c in range(np.shape(k)[1])]
    ki = np.stack([c[0] for c in cols], axis=1)
    qi, scale_q = quantize(np.asarray(q, np.float64) * np.array([c[1] for c in cols]), bits)
    return qi, scale_q, ki


def score_scale(fmt, scale_q: float, scale_k: float, softmax_scale: float) -> tuple[int, int]:
    """Return the (mantissa, shift) register pair that turns integer scores into log2 units.

    One integer score LSB is worth scale_q·scale_k·softmax_scale nats, i.e. that times log2(e) in
    base-2 exponent units.
    """
    c = scale_q * scale_k * softmax_scale * math.log2(math.e)
    return encode_score_scale(c, fmt.scale_bits, fmt.exp_frac_bits)
