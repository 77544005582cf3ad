"""SADS selection: per query row and per tile, the top-k entries within a radius of the tile max.

Model of ``hw/sads.py``. For each query row and each tile of ``tile`` keys (the last tile may be
short), among the valid keys (causal mask) with predicted score Â >= M - r, where M is the tile's
maximum valid score: keep the k highest, ties to the lower key index, listed in descending score
order (so entries 0 and 1 are the exact top-1 and top-2). The streaming hardware clips against its
running maximum and its current k-th best; both only drop entries this rule drops too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["select", "dense_order", "selection_mask", "true_max_last"]

_FLOOR = np.int64(-(1 << 62))  # below every score


def select(scores, fmt, *, k_tile: int, radius: int, valid=None) -> np.ndarray:
    """Return selected key indices [Sq, n_tiles, k_tile] in visit order, padded with -1.

    ``scores`` is [Sq, Sk] int; ``radius`` in score LSBs (-1: off); ``valid`` is a bool mask [Sq, Sk]
    (None: every key valid).
    """
    scores = np.asarray(scores, dtype=np.int64)
    sq, sk = scores.shape
    valid = np.ones((sq, sk), bool) if valid is None else np.asarray(valid, bool)
    tile = fmt.cfg.tile
    r = np.int64(fmt.radius_value(radius))
    n_tiles = -(-sk // tile)
    out = np.full((sq, n_tiles, k_tile), -1, np.int64)
    for j in range(n_tiles):
        rows = np.flatnonzero(valid[:, j * tile:(j + 1) * tile].any(axis=1))  # the rest select none
        blk = scores[rows, j * tile:(j + 1) * tile]
        ok = valid[rows, j * tile:(j + 1) * tile]
        m = np.where(ok, blk, _FLOOR).max(axis=1, keepdims=True)
        keep = ok & (blk >= m - r)
        key = np.where(keep, blk, _FLOOR)
        order = np.argsort(-key, axis=1, kind="stable")[:, :k_tile]  # stable: ties → lower index
        taken = np.take_along_axis(keep, order, axis=1)
        n = order.shape[1]
        out[rows, j, :n] = np.where(taken, order + j * tile, -1)
    return out


def dense_order(valid, fmt) -> np.ndarray:
    """Return every valid key of each tile in index order [Sq, n_tiles, tile], padded with -1."""
    valid = np.asarray(valid, bool)
    sq, sk = valid.shape
    tile = fmt.cfg.tile
    n_tiles = -(-sk // tile)
    out = np.full((sq, n_tiles, tile), -1, np.int64)
    for j in range(n_tiles):
        ok = valid[:, j * tile:(j + 1) * tile]
        order = np.argsort(~ok, axis=1, kind="stable")  # valid keys first, index order kept
        taken = np.take_along_axis(ok, order, axis=1)
        out[:, j, :ok.shape[1]] = np.where(taken, order + j * tile, -1)
    return out


def selection_mask(sel, sk: int) -> np.ndarray:
    """Return the bool mask [Sq, Sk] of the keys named in a selection [Sq, n_tiles, k]."""
    sq = sel.shape[0]
    mask = np.zeros((sq, sk + 1), bool)  # column sk absorbs the -1 padding
    flat = sel.reshape(sq, -1)
    np.put_along_axis(mask, np.where(flat < 0, sk, flat), True, axis=1)
    return mask[:, :sk]


def true_max_last(sel, scores) -> np.ndarray:
    """Reorder each (row, tile) list by descending ``scores`` [Sq, Sk], but with its true max
    moved to the end (-1 padding stays last): an adversarial order for SU-FA's max assurance,
    whose fixed max then never includes the true max of a list of two or more keys."""
    sq = sel.shape[0]
    sc = np.take_along_axis(np.asarray(scores, np.int64), np.maximum(sel, 0).reshape(sq, -1),
                            axis=1).reshape(sel.shape)
    sc = np.where(sel >= 0, sc, np.iinfo(np.int64).min)
    rank = np.argsort(np.argsort(-sc, axis=2, kind="stable"), axis=2)   # 0 = true max
    key = np.where(sel >= 0, np.where(rank == 0, sel.shape[2], rank), sel.shape[2] + 1)
    return np.take_along_axis(sel, np.argsort(key, axis=2, kind="stable"), axis=2)
