"""Spatial-STAR: one attention job on N cores, the key sequence sharded by whole tiles, the
partial softmax states merged in a fixed order (model of the multi-core array, bit-exact).

* Sharding: core c of N owns tiles [c·n/N, (c+1)·n/N) of the n key tiles (contiguous, balanced
  to one tile). SADS selects per tile, so every core selects exactly what one core would.
* Each core runs SU-FA over its own tiles and keeps the partial state per query row: (has, m, l,
  o), o not yet divided by l (``has`` is false when the row selected nothing in the shard, e.g.
  every key of the shard is past its causal limit).
* Merge (:func:`merge`): the tile-merge rule of SU-FA applied to two states: m = max(ma, mb),
  l = rs(la, w(m - ma)) + rs(lb, w(m - mb)), o likewise (w(0) = 1.0 exactly, so the state with
  the larger max is not rounded); a state without ``has`` is the identity.
* Order (:func:`merge_chain`): a chain from the last core to core 0, acc = merge(p_c, acc) for
  c = N-2 .. 0; rounding makes the merge commutative but not associative, so the order is part
  of the model. Then O = normalize(o, l) once, as one core would.

Equal to the single-core result (:func:`golden.core.run_job`) for N = 1 and whenever no shard's
state needs rescaling in the merge; otherwise it differs by the rounding of the merge rescales:
measured on the tiny preset (20 seeds, 2/4/16 cores, causal and not), at most 1 LSB of O in
0.6-1.3 % of the elements; tests/test_golden_spatial.py allows 2 LSB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen.formats import Formats

from . import sufa
from .core import MODE_DENSE, run_job
from .exp2 import weight
from .recip import normalize

__all__ = ["Partial", "shard_tiles", "partial_state", "merge", "merge_chain", "run_sharded"]


@dataclass
class Partial:
    """Partial softmax state per query row: has [rows], m [rows], l [rows], o [rows, d]."""

    has: np.ndarray
    m: np.ndarray
    l: np.ndarray
    o: np.ndarray


def shard_tiles(n_tiles: int, cores: int) -> list[range]:
    """The tiles core c owns: [c·n/N, (c+1)·n/N) (some may be empty when n < N)."""
    return [range(c * n_tiles // cores, (c + 1) * n_tiles // cores) for c in range(cores)]


def partial_state(q, k, v, sel, mant: int, shift: int, fmt, *, exact_max: bool) -> Partial:
    """SU-FA over the selections ``sel`` [rows, tiles, K] (absolute key indices, -1 pads)."""
    rows, d = q.shape[0], q.shape[1]
    has = (sel >= 0).any(axis=(1, 2))
    p = Partial(has, np.zeros(rows, np.int64), np.zeros(rows, np.int64),
                np.zeros((rows, d), np.int64))
    if has.any():
        res = sufa.attend(q[has], k, v, sel[has], mant, shift, fmt, exact_max=exact_max)
        p.m[has], p.l[has], p.o[has] = res.m, res.l, res.o
    return p


def merge(a: Partial, b: Partial, mant: int, shift: int, fmt) -> Partial:
    """The merge of two partial states (commutative, exact where one max is the larger)."""
    both = a.has & b.has
    m = np.where(both, np.maximum(a.m, b.m), np.where(a.has, a.m, b.m))
    fa = np.where(a.has, weight(np.where(a.has, m - a.m, 0), mant, shift, fmt), 0)
    fb = np.where(b.has, weight(np.where(b.has, m - b.m, 0), mant, shift, fmt), 0)
    l = sufa.rescale(a.l, fa, fmt) + sufa.rescale(b.l, fb, fmt)
    o = sufa.rescale(a.o, fa[:, None], fmt) + sufa.rescale(b.o, fb[:, None], fmt)
    return Partial(a.has | b.has, m, l, o)


def merge_chain(parts: list[Partial], mant: int, shift: int, fmt) -> Partial:
    """acc = p_{N-1}; acc = merge(p_c, acc) for c = N-2 .. 0 (the array's merge order)."""
    acc = parts[-1]
    for p in reversed(parts[:-1]):
        acc = merge(p, acc, mant, shift, fmt)
    return acc


@dataclass
class ShardedResult:
    out: np.ndarray              # O [Q_LEN, d], data_bits integers
    parts: list                  # the Partial of every core, core 0 first
    merged: Partial


def run_sharded(cfg, q, k, v, regs: dict, cores: int) -> ShardedResult:
    """Run one job (registers as for :func:`golden.core.run_job`) on ``cores`` cores."""
    if not 1 <= cores <= 64:
        raise ValueError(f"cores must be in [1, 64], not {cores}")
    fmt = Formats(cfg)
    single = run_job(cfg, q, k, v, regs)         # start checks and the per-tile selections
    sel = single.sel
    mant, shift = int(regs["SCALE_MANT"]), int(regs["SCALE_SHIFT"])
    exact_max = bool(int(regs.get("MODE", 0)) & MODE_DENSE)
    q, k, v = (np.asarray(x, np.int64) for x in (q, k, v))
    parts = []
    for tiles in shard_tiles(sel.shape[1], cores):
        shard = np.full_like(sel, -1)
        shard[:, tiles.start:tiles.stop] = sel[:, tiles.start:tiles.stop]
        parts.append(partial_state(q, k, v, shard, mant, shift, fmt, exact_max=exact_max))
    merged = merge_chain(parts, mant, shift, fmt)
    return ShardedResult(normalize(merged.o, merged.l, fmt), parts, merged)
