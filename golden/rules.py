"""The rounding and saturation rules of the datapath in numpy, each written once.

The numpy twin of :mod:`hw.rules`: the same helpers under the same names, giving the values the
hardware computes (``tests/test_rules.py`` checks each pair). Every golden model that rounds or
saturates calls these (exp2: table_shift, clamp_max; mac4: round_shift, saturate; recip:
recip_normalize; sufa, spatial: rescale); the rules are documented for users in
``docs/formats.md``. Inputs are integers or int64 arrays (shifts broadcast against values);
results are int64 (wide enough for every product of the datapath, ``Formats.widest_product``).

round_shift(x, shift)        rule 1, round half up: (x + 2**(shift-1)) >> shift, shift >= 1.
saturate(x, bits)            rule 2, x clamped to the ``bits``-bit two's-complement range;
clamp_max(x, hi)             and x clamped to at most ``hi``.
table_shift(x, n)            rule 3, the exp2 unit's shift: round_shift(x, n), x itself for n = 0.
rescale(x, f, shift)         rule 5, the state rescale: round_shift(x·f, shift) (shift = P).
recip_normalize(o, r, shift, bits)
                             rule 4, the reciprocal normalisation: saturate(rescale(o, r, shift),
                             bits).
"""

from __future__ import annotations

import numpy as np

__all__ = ["round_shift", "saturate", "clamp_max", "table_shift", "rescale", "recip_normalize"]


def round_shift(x, shift):
    """Return x / 2**shift rounded half up, (x + 2**(shift-1)) >> shift, for shift >= 1."""
    x, shift = np.asarray(x, np.int64), np.asarray(shift, np.int64)
    return (x + (np.int64(1) << (shift - 1))) >> shift


def saturate(x, bits: int):
    """Return x clamped to [-2**(bits-1), 2**(bits-1) - 1]."""
    return np.clip(np.asarray(x, np.int64), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def clamp_max(x, hi: int):
    """Return min(x, hi)."""
    return np.minimum(np.asarray(x, np.int64), hi)


def table_shift(x, n):
    """Return x / 2**n rounded half up for n >= 1, x itself for n = 0."""
    x, n = np.asarray(x, np.int64), np.asarray(n, np.int64)
    half = np.where(n == 0, 0, np.int64(1) << np.maximum(n - 1, 0))
    return (x + half) >> n


def rescale(x, f, shift):
    """Return x·f / 2**shift rounded half up (the state scaled by an exp2 weight f)."""
    return round_shift(np.asarray(x, np.int64) * np.asarray(f, np.int64), shift)


def recip_normalize(o, r, shift, bits: int):
    """Return o·r / 2**shift rounded half up, saturated to ``bits`` (the output element)."""
    return saturate(rescale(o, r, shift), bits)
