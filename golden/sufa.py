"""SU-FA: sorted-updating FlashAttention over the selected keys, with max assurance and tile merge.

Model of ``hw/sufa.py`` (dot-product lanes, accumulator, tile merge). Per query row and tile:

* exact scores s = q·k of the tile's selected keys, visited in the given order;
* the tile max m is fixed up front from the first two visited keys (SADS's predicted top-1/top-2):
  m = max(s[0], s[1]) (``exact_max``: the max over all visited keys, as FlashAttention-2 does);
* fast path, s <= m: p = exp2 weight of (m - s); l += p; o += p·v;
* max assurance, s > m: the state is rescaled, l = rs(l, w(s - m)), o = rs(o, w(s - m)), m = s,
  and the rescale counter is incremented; then the fast path runs (p = 1.0);
* tiles are merged in order into a running (m, l, o) with the same rule: the side with the lower
  max is rescaled by w(M - m_side) (the other side's factor is exactly 1.0);
* O = o / l by the reciprocal unit.

rs(x, f) = round_half_up(x·f / 2**P), the one rescale rounding rule (``rescale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen.formats import round_shift

from .exp2 import weight
from .intops import int_matmul
from .recip import normalize

__all__ = ["Partial", "rescale", "tile_pass", "merge", "attend", "Result"]


@dataclass
class Partial:
    """Softmax state per query row: max score m, row sum l, weighted value sum o [rows, d]."""

    m: np.ndarray
    l: np.ndarray
    o: np.ndarray
    has: np.ndarray  # bool: the row has seen at least one key


def rescale(x, f, fmt) -> np.ndarray:
    """Return round_half_up(x·f / 2**P): the state scaled by an exp2 weight f <= 1.0."""
    return round_shift(np.asarray(x, np.int64) * f, fmt.exp_out_bits)


def tile_pass(s, v, count, m0, mant: int, shift: int, fmt) -> tuple[Partial, np.ndarray]:
    """Accumulate one tile: s [rows, K] scores in visit order, v [rows, K, d], count [rows] keys used.

    Returns the tile's Partial and the number of max-assurance rescales per row.
    """
    rows, kk = s.shape
    m = np.asarray(m0, np.int64).copy()
    l = np.zeros(rows, np.int64)
    o = np.zeros((rows, v.shape[2]), np.int64)
    rescales = np.zeros(rows, np.int64)
    for i in range(kk):
        act = i < count
        si = s[:, i]
        up = act & (si > m)
        if up.any():
            f = weight(np.where(up, si - m, 0), mant, shift, fmt)
            l = np.where(up, rescale(l, f, fmt), l)
            o = np.where(up[:, None], rescale(o, f[:, None], fmt), o)
            m = np.where(up, si, m)
            rescales += up
        p = np.where(act, weight(np.where(act, m - si, 0), mant, shift, fmt), 0)
        l = l + p
        o = o + p[:, None] * v[:, i, :]
    return Partial(m, l, o, count > 0), rescales


def merge(a: Partial, b: Partial, mant: int, shift: int, fmt) -> Partial:
    """Merge tile state b into the running state a (rows without keys pass through)."""
    both = a.has & b.has
    mm = np.maximum(a.m, b.m)
    fa = weight(np.where(both, mm - a.m, 0), mant, shift, fmt)
    fb = weight(np.where(both, mm - b.m, 0), mant, shift, fmt)
    l = np.where(both, rescale(a.l, fa, fmt) + rescale(b.l, fb, fmt), np.where(a.has, a.l, b.l))
    o = np.where(both[:, None], rescale(a.o, fa[:, None], fmt) + rescale(b.o, fb[:, None], fmt),
                 np.where(a.has[:, None], a.o, b.o))
    m = np.where(both, mm, np.where(a.has, a.m, b.m))
    return Partial(m, l, o, a.has | b.has)


@dataclass
class Result:
    """Output of :func:`attend`: O as data_bits integers, the final state, rescale counts."""

    out: np.ndarray
    state: Partial
    rescales: np.ndarray  # per row, summed over tiles


def attend(q, k, v, sel, mant: int, shift: int, fmt, *, exact_max: bool = False) -> Result:
    """Run SU-FA for int q [Sq, d], k/v [Sk, d] over the selection sel [Sq, n_tiles, K] (-1 pads).

    Every row must select at least one key overall. ``exact_max`` fixes each tile's m to the max of
    all its visited scores (the dense FlashAttention-2 baseline); otherwise m comes from the first
    two visited keys and max assurance handles the rest.
    """
    q, k, v = (np.asarray(x, np.int64) for x in (q, k, v))
    s_all = int_matmul(q, k.T)
    state = None
    total = np.zeros(q.shape[0], np.int64)
    for j in range(sel.shape[1]):
        idx = sel[:, j, :]
        count = (idx >= 0).sum(axis=1)
        safe = np.where(idx >= 0, idx, 0)
        s = np.take_along_axis(s_all, safe, axis=1)
        if exact_max:
            m0 = np.where(idx >= 0, s, np.iinfo(np.int64).min).max(axis=1)
        else:
            m0 = np.where(count >= 2, np.maximum(s[:, 0], s[:, min(1, s.shape[1] - 1)]), s[:, 0])
        m0 = np.where(count > 0, m0, 0)
        part, resc = tile_pass(s, v[safe], count, m0, mant, shift, fmt)
        total += resc
        state = part if state is None else merge(state, part, mant, shift, fmt)
    if not np.all(state.has):
        raise ValueError("every query row must select at least one key")
    return Result(normalize(state.o, state.l, fmt), state, total)
