"""The bit-serial guard filter: PADE's predictor-free front (bit planes of K, MSB first).

Model of the bit-serial front (issue 35; its RTL is still to come). Format and rules:
``docs/formats.md``, "Bit-serial front". Keys are ``data_bits`` = p-bit two's complement and
are read as bit planes, most significant first: plane 0 is the sign bit (weight -2^(p-1)),
plane i >= 1 has weight 2^(p-1-i). After r planes a key's known part is k with its low p - r
bits cleared, ``(k >> (p - r)) << (p - r)`` (arithmetic shift), and the rest u is in
[0, 2^(p-r) - 1], so with S_r = q·(known part)

    S_r + lo_r  <=  q·k  <=  S_r + hi_r,
    lo_r = (2^(p-r) - 1) · Σ_{q_d < 0} q_d,   hi_r = (2^(p-r) - 1) · Σ_{q_d > 0} q_d,

the query's interval table (p entries, from the query alone). Per query row and tile, in
rounds r = 1 .. p: every live key reads plane r - 1 and updates S_r; the row's running maximum
of lower bounds M takes every live key's S_r + lo_r; the threshold is T = M - off (``off`` =
:func:`guard_offset` of the runtime alpha and radius); a key stays live while its upper bound
S_r + hi_r >= T (>=, not PADE's >, so that off = 0 keeps the tile's maxima). After round p
the live keys' S_p are their exact scores q·k (nothing is read twice: stage fusion).

Intervals nest from round to round, so a lower bound only rises and an upper bound only
falls; M never exceeds the tile's largest exact score and reaches it in round p, because the
key holding it is never dropped (its upper bound is at least its score, at least M). Hence the
survivors are exactly the valid keys with q·k >= max q·k - off in their tile, whatever the
rounds did; the rounds decide only how many planes each dropped key cost. The threshold is
tile-local: a running maximum carried across tiles (``m_init``) is at least the tile's own, so
it can only drop more (tiling is safe: PADE's ISTA argument; tested).

Optional cap: the ``cap`` best survivors by exact score (ties to the lower key index), so the
front can be compared with SADS at equal work. Visit order, as SADS's: descending exact score,
ties to the lower index.
"""

from __future__ import annotations

import numpy as np

from star.spec.formats import ALPHA_FRAC_BITS

from .intops import int_matmul

__all__ = ["interval_table", "known_part", "guard_offset", "offset_keeping", "filter_tile",
           "select"]

_FLOOR = np.int64(-(1 << 62))  # below every score and bound


def interval_table(q, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (lo, hi), each [..., bits]: entry r - 1 the bounds of q·(the unread low bits)
    after r planes of a ``bits``-bit key (entry bits - 1 is 0: the key is known)."""
    q = np.asarray(q, np.int64)
    neg = np.where(q < 0, q, 0).sum(axis=-1)
    pos = np.where(q > 0, q, 0).sum(axis=-1)
    span = (np.int64(1) << (bits - np.arange(1, bits + 1, dtype=np.int64))) - 1
    return neg[..., None] * span, pos[..., None] * span


def known_part(k, bits: int, planes: int) -> np.ndarray:
    """The value of ``bits``-bit keys ``k`` known from their first ``planes`` bit planes."""
    drop = bits - planes
    return (np.asarray(k, np.int64) >> drop) << drop


def guard_offset(alpha: int, radius: int) -> int:
    """off = floor(alpha · radius / 2^ALPHA_FRAC_BITS): alpha in [0, 2^ALPHA_FRAC_BITS]
    (0 .. 1.0), radius >= 0 in q·k units (the integer scores, before the score scale)."""
    if not 0 <= alpha <= 1 << ALPHA_FRAC_BITS:
        raise ValueError(f"alpha must be in [0, {1 << ALPHA_FRAC_BITS}] (0 .. 1.0 with "
                         f"{ALPHA_FRAC_BITS} fraction bits), got {alpha}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return (alpha * radius) >> ALPHA_FRAC_BITS


def offset_keeping(scores, valid, tile: int, share: float) -> int:
    """The guard offset under which the front keeps ``share`` of the valid keys of ``scores``
    [Sq, Sk] (exact q·k): the quantile of the gaps tile max − q·k (the sound front keeps exactly
    the keys within the offset of their tile's maximum)."""
    scores, valid = np.asarray(scores, np.int64), np.asarray(valid, bool)
    gaps = []
    for j in range(0, scores.shape[1], tile):
        blk, ok = scores[:, j:j + tile], valid[:, j:j + tile]
        top = np.where(ok, blk, _FLOOR).max(axis=1, keepdims=True)
        gaps.append((top - blk)[ok])
    return int(np.quantile(np.concatenate(gaps), share))


def filter_tile(q, k, bits: int, off: int, valid=None, m_init=None, table=None):
    """One tile's rounds for every query row.

    ``q`` [Sq, d] and ``k`` [t, d] ints (``bits``-bit); ``valid`` bool [Sq, t] (None: all);
    ``m_init`` [Sq] the running maximum the rows start from (None: the tile's own, tile-local);
    ``table`` (lo, hi) each [Sq, bits] in place of the sound :func:`interval_table` (a narrower,
    speculative one voids the survivor guarantee: scripts/measure_guard_bounds.py measures it).
    Returns (live [Sq, t] bool: the survivors; scores [Sq, t]: q·k exact where live, else the
    last partial; planes [Sq, t]: planes each key read (0 for an invalid key); m [Sq]: the
    final running maximum).
    """
    q = np.asarray(q, np.int64)
    k = np.asarray(k, np.int64)
    sq, t = q.shape[0], k.shape[0]
    live = np.ones((sq, t), bool) if valid is None else np.array(valid, bool)
    m = np.full(sq, _FLOOR) if m_init is None else np.array(m_init, np.int64)
    lo, hi = interval_table(q, bits) if table is None else table
    planes = np.zeros((sq, t), np.int64)
    scores = np.zeros((sq, t), np.int64)
    for r in range(1, bits + 1):
        planes += live
        s = int_matmul(q, known_part(k, bits, r).T)
        scores = np.where(live, s, scores)
        lower = np.where(live, s + lo[:, r - 1:r], _FLOOR)
        m = np.maximum(m, lower.max(axis=1, initial=_FLOOR))
        live &= s + hi[:, r - 1:r] >= (m - off)[:, None]
    return live, scores, planes, m


def select(q, k, bits: int, tile: int, off: int, valid=None, cap: int | None = None,
           carry: bool = False, table=None):
    """Return (sel, planes): the survivors of every tile in visit order [Sq, n_tiles, width]
    padded with -1 (width ``cap``, or ``tile`` without one) and the planes each key read
    [Sq, Sk]. ``q`` [Sq, d], ``k`` [Sk, d]; ``valid`` bool [Sq, Sk] (causal mask; None: all);
    ``carry``: the running maximum carried from tile to tile (for the tiling test; the front
    is tile-local); ``table``: as :func:`filter_tile`'s."""
    q = np.asarray(q, np.int64)
    k = np.asarray(k, np.int64)
    sq, sk = q.shape[0], k.shape[0]
    valid = np.ones((sq, sk), bool) if valid is None else np.asarray(valid, bool)
    n_tiles = -(-sk // tile)
    width = tile if cap is None else cap
    sel = np.full((sq, n_tiles, width), -1, np.int64)
    planes = np.zeros((sq, sk), np.int64)
    m = None
    for j in range(n_tiles):
        cols = slice(j * tile, min((j + 1) * tile, sk))
        live, scores, used, m_out = filter_tile(q, k[cols], bits, off, valid[:, cols],
                                                m if carry else None, table)
        m = m_out
        planes[:, cols] = used
        order = np.argsort(-np.where(live, scores, _FLOOR), axis=1, kind="stable")[:, :width]
        taken = np.take_along_axis(live, order, axis=1)
        sel[:, j, :order.shape[1]] = np.where(taken, order + j * tile, -1)
    return sel, planes
