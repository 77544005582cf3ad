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
        for i in range(idx.shape[1]):
            key = idx[:, i]
            act = key >= 0
            safe = np.maximum(key, 0)
            si = s_all[rs, safe]
            up = act & (si > mr)
            if up.any():
                f = weight(np.where(up, si - mr, 0), mant, shift, fmt)
                lr = np.where(up, rescale(lr, f, P), lr)
                orr = np.where(up[:, None], rescale(orr, f[:, None], P), orr)
                mr = np.where(up, si, mr)
                rescales[rs] += up
                over += [(int(rs[r]), int(key[r])) for r in np.flatnonzero(up)]
            p = np.where(act, weight(np.where(act, mr - si, 0), mant, shift, fmt), 0)
            lr = lr + p
            orr = orr + p[:, None] * v[safe]
        m[rs], l[rs], o[rs] = mr, lr, orr
        has[rs] = True
    if not np.all(has):
        raise ValueError("every query row must select at least one key")
    return Result(normalize(o, l, fmt), m, l, o, rescales, merges, grew,
                  np.array(over, np.int64).reshape(-1, 2))
