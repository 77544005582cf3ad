"""SU-FA: sorted-updating FlashAttention over the selected keys, with max assurance.

Model of ``hw/sufa.py``. Per query row, one running state (M, L, O) over the tiles in order:

* tile start: the tile's max is fixed up front from the exact scores of its first two selected
  keys (SADS's predicted top-1 and top-2): m = max(s[top1], s[top2]); ``exact_max`` uses the max
  over all the tile's selected keys instead (the dense FlashAttention-2 baseline). The running max
  becomes max(M, m); if it grew, the state is rescaled: L = rs(L, w(new - old)), O likewise
  (the tile merge);
* then each row visits its own selected keys in list order (each query lane walks its own list):
  SADS's order (predicted top-1, top-2, then the rest in descending predicted score: the
  paper's sorted updating) or, dense, ascending key index. Fast path s <= M: p = w(M - s);
  L += p; O += p·v (no comparison against a changing max, no rescale); max assurance, s > M:
  L, O = rs(·, w(s - M)), M = s, counted, then the fast path (p = 1.0). Predicted top-1/top-2
  make this rare; it costs cycles, never accuracy;
* O = o / l by the reciprocal unit.

w(t) is the exp2 unit (``golden.exp2.weight``); rs(x, f) = round_half_up(x·f / 2**P) is the one
rescale rounding rule (``golden.rules.rescale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exp2 import weight
from .intops import int_matmul
from .recip import normalize
from .rules import rescale

__all__ = ["attend", "Result"]


@dataclass
class Result:
    """Output of :func:`attend`: O as data_bits integers, the final state and event counts."""

    out: np.ndarray
    m: np.ndarray
    l: np.ndarray
    o: np.ndarray
    rescales: np.ndarray     # per row: max-assurance rescales (a score above the fixed max)
    merges: np.ndarray       # per row: tile starts that raised the running max (state rescaled)
    grew: np.ndarray | None = None   # [rows, tiles] bool: the row's max grew at the tile's start
    over: np.ndarray | None = None   # [events, 2] (row, key) of every max-assurance rescale


def _weighted_rows(p, idx, v) -> np.ndarray:
    """Σ_i p[r, i] · v[idx[r, i]] per row r, exact (-1 entries of idx carry p = 0): the weights
    scattered over the span of keys the rows name, times those V rows (golden.intops.int_matmul:
    exact, or it raises)."""
    ok = idx >= 0
    if not ok.any():
        return np.zeros((p.shape[0], v.shape[1]), np.int64)
    lo, hi = int(idx[ok].min()), int(idx[ok].max()) + 1
    dense = np.zeros((p.shape[0], hi - lo + 1), np.int64)     # last column: the -1 entries
    np.put_along_axis(dense, np.where(ok, idx - lo, hi - lo), p, axis=1)
    return int_matmul(dense[:, :-1], v[lo:hi])


def attend(q, k, v, sel, mant: int, shift: int, fmt, *, exact_max: bool = False) -> Result:
    """Run SU-FA for int q [Sq, d], k/v [Sk, d] over sel [Sq, n_tiles, K] (-1 pads last).

    Each row visits its keys of a tile in the order of ``sel`` (SADS's descending predicted
    order, or ascending for dense). Every row must select at least one key overall.
    """
    q, k, v = (np.asarray(x, np.int64) for x in (q, k, v))
    rows, P = q.shape[0], fmt.exp_out_bits
    s_all = int_matmul(q, k.T)
    m = np.zeros(rows, np.int64)
    l = np.zeros(rows, np.int64)
    o = np.zeros((rows, v.shape[1]), np.int64)
    has = np.zeros(rows, bool)
    rescales = np.zeros(rows, np.int64)
    merges = np.zeros(rows, np.int64)
    grew = np.zeros(sel.shape[:2], bool)
    over = []
    for j in range(sel.shape[1]):
        # only the rows with a key in this tile change: work on them alone (a causal or
        # windowed job leaves most rows idle in most tiles)
        rs = np.flatnonzero((sel[:, j, :] >= 0).any(axis=1))
        if not rs.size:
            continue
        idx = sel[rs, j, :]
        count = (idx >= 0).sum(axis=1)
        s = np.take_along_axis(s_all[rs], np.maximum(idx, 0), axis=1)
        if exact_max:
            m_tile = np.where(idx >= 0, s, np.iinfo(np.int64).min).max(axis=1)
        else:
            m_tile = np.where(count >= 2, np.maximum(s[:, 0], s[:, min(1, s.shape[1] - 1)]),
                              s[:, 0])
        mr, lr, orr, hr = m[rs], l[rs], o[rs], has[rs]
        grow = hr & (m_tile > mr)
        f = weight(np.where(grow, m_tile - mr, 0), mant, shift, fmt)
        lr = np.where(grow, rescale(lr, f, P), lr)
        orr = np.where(grow[:, None], rescale(orr, f[:, None], P), orr)
        merges[rs] += grow
        grew[rs, j] = grow
        mr = np.where(~hr | grow, m_tile, mr)
        # a row none of whose keys beats its max takes no rescale in this tile: its weights
        # are all w(m - s), summed at once (integer sums: the order does not matter)
        calm = ~((idx >= 0) & (s > mr[:, None])).any(axis=1)
        c = np.flatnonzero(calm)
        p = np.where(idx[c] >= 0, weight(np.maximum(mr[c, None] - s[c], 0), mant, shift, fmt), 0)
        lr[c] += p.sum(axis=1)
        orr[c] += _weighted_rows(p, idx[c], v)
        w = np.flatnonzero(~calm)          # the rest key by key, max assurance on the way
        mw, lw, ow = mr[w], lr[w], orr[w]
        for i in range(idx.shape[1]):
            key = idx[w, i]
            act = key >= 0
            safe = np.maximum(key, 0)
            si = s[w, i]
            up = act & (si > mw)
            if up.any():
                f = weight(np.where(up, si - mw, 0), mant, shift, fmt)
                lw = np.where(up, rescale(lw, f, P), lw)
                ow = np.where(up[:, None], rescale(ow, f[:, None], P), ow)
                mw = np.where(up, si, mw)
                rescales[rs[w]] += up
                over += [(int(rs[w[r]]), int(key[r])) for r in np.flatnonzero(up)]
            pw = np.where(act, weight(np.where(act, mw - si, 0), mant, shift, fmt), 0)
            lw = lw + pw
            ow = ow + pw[:, None] * v[safe]
        mr[w], lr[w], orr[w] = mw, lw, ow
        m[rs], l[rs], o[rs] = mr, lr, orr
        has[rs] = True
    if not np.all(has):
        raise ValueError("every query row must select at least one key")
    return Result(normalize(o, l, fmt), m, l, o, rescales, merges, grew,
                  np.array(over, np.int64).reshape(-1, 2))
