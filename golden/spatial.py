"""Spatial-STAR: one attention job on N cores, the key sequence sharded by whole tiles, the
partial softmax states merged in a fixed order (model of the multi-core array, bit-exact).

* Sharding (:func:`shard_tiles`): with n key tiles and q, r = divmod(n, N), core c owns the
  q + (c < r) tiles from c·q + min(c, r) (contiguous, balanced to one tile; every core owns at
  least one tile when n >= N, which the array requires: ``ErrorCode.SHARD``). SADS selects per
  tile, so every core selects exactly what one core would.
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

from star.spec.regmap import ErrorCode

from . import sufa

from .core import MODE_DENSE, JobResult, _regs, packed_layout, run_job
from .core import check_registers as check_core
from .exp2 import weight
from .recip import normalize
from .rules import rescale

__all__ = ["Partial", "shard_tiles", "shard_keys", "check_registers", "partial_state", "merge",
           "merge_chain", "run_sharded"]


@dataclass
class Partial:
    """Partial softmax state per query row: has [rows], m [rows], l [rows], o [rows, d]."""

    has: np.ndarray
    m: np.ndarray
    l: np.ndarray
    o: np.ndarray


def shard_tiles(n_tiles: int, cores: int) -> list[range]:
    """The tiles core c owns: q + (c < r) tiles from c·q + min(c, r), q, r = divmod(n, N)
    (empty for c >= n when n < N)."""
    q, r = divmod(n_tiles, cores)
    return [range(c * q + min(c, r), (c + 1) * q + min(c + 1, r)) for c in range(cores)]


def shard_keys(cfg, seq_len: int, cores: int) -> list[range]:
    """The keys (rows of K and V) core c owns: its tiles' keys, the last shard cut at seq_len."""
    return [range(t.start * cfg.tile, min(t.stop * cfg.tile, seq_len))
            for t in shard_tiles(-(-seq_len // cfg.tile), cores)]


def check_registers(cfg, regs: dict, cores: int) -> ErrorCode:
    """The array's start check: the core's (:func:`golden.core.check_registers`) with the K and V
    spans of the largest shard (core 0's, on the root channel beside Q and O), then SHARD when
    SEQ_LEN has fewer tiles than the array has cores. Missing registers hold their reset value."""
    r = _regs(cfg, regs)
    shards = shard_keys(cfg, r["SEQ_LEN"], cores) if 1 <= r["SEQ_LEN"] <= cfg.max_seq else None
    err = check_core(cfg, r, kv_rows=len(shards[0]) if shards else None)
    if err == ErrorCode.NONE and -(-r["SEQ_LEN"] // cfg.tile) < cores:
        err = ErrorCode.SHARD
    return err


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
    P = fmt.exp_out_bits
    l = rescale(a.l, fa, P) + rescale(b.l, fb, P)
    o = rescale(a.o, fa[:, None], P) + rescale(b.o, fb[:, None], P)
    return Partial(a.has | b.has, m, l, o)


def merge_chain(parts: list[Partial], mant: int, shift: int, fmt) -> Partial:
    """acc = p_{N-1}; acc = merge(p_c, acc) for c = N-2 .. 0 (the array's merge order)."""
    acc = parts[-1]
    for p in reversed(parts[:-1]):
        acc = merge(p, acc, mant, shift, fmt)
    return acc


def _job_registers(regs: dict) -> dict:
    """``regs`` without the address registers: what :func:`golden.core.run_job` needs to model
    the same job on one core (the array's shard layout is checked by :func:`check_registers`)."""
    return {n: x for n, x in regs.items() if not n.endswith(("_BASE", "_STRIDE"))}


@dataclass
class ShardedResult:
    out: np.ndarray              # O [Q_LEN, d], data_bits integers
    parts: list                  # the Partial of every core, core 0 first
    merged: Partial
    single: JobResult            # the same job on one core (its selections, O and counters)


def run_sharded(cfg, q, k, v, regs: dict, cores: int) -> ShardedResult:
    """Run one job (registers as for :func:`golden.core.run_job`; the address registers default
    to a packed layout of channel 0: Q, the largest shard's K and V, O) on ``cores`` cores."""
    if not 1 <= cores <= 64:
        raise ValueError(f"cores must be in [1, 64], not {cores}")
    fmt = cfg.formats
    given = {n: int(x) for n, x in regs.items()}
    sq, sk = given.get("Q_LEN", 1), given.get("SEQ_LEN", 1)
    kv_rows = len(shard_keys(cfg, sk, cores)[0]) if 1 <= sk <= cfg.max_seq else sk
    err = check_registers(cfg, {**packed_layout(cfg, sq, kv_rows), **given}, cores)
    if err != ErrorCode.NONE:
        raise ValueError(f"the array would not start this job: error {err.name}")
    single = run_job(cfg, q, k, v, _job_registers(regs))     # the per-tile selections
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
    return ShardedResult(normalize(merged.o, merged.l, fmt), parts, merged, single)
