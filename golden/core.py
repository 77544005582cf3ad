"""Bit-exact job model of the STAR core (``hw/core.py``, described in docs/core.md).

One job = one attention head, set up by the job registers of ``spec/regmap.py``:

* :func:`check_registers` is the core's start check: the first failing :class:`ErrorCode` in
  increasing code order (``NONE`` when the job may run);
* :func:`run_job` gives the O rows the core writes and the exact values of its data counters
  (BYTES_READ, BYTES_WRITTEN, KV_ROWS, KEYS_SELECTED, TILES, RESCALES, MERGES).

Register values are 32-bit (taken modulo 2**32, as the bus would). The schedule behind the
counters: queries in blocks of ``lanes`` rows (the last block partial); per block the Q rows are
read once, then the key tiles up to the largest causal limit of the block's active lanes (later
tiles are skipped); per processed tile every K row of the tile is read, and the V rows of the
union of the active lanes' selections (dense: every valid key).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from star.spec.formats import SCALE_SHIFT_MAX
from star.spec.regmap import RADIUS_OFF_VALUE, ErrorCode, by_name
from star.spec.tiling import key_limit, tiles_to

from . import dlzs, sads, sufa
from .reference import causal_mask

__all__ = ["MODE_CAUSAL", "MODE_DENSE", "COUNTERS", "JobResult", "check_registers",
           "packed_layout", "tensor_span", "block_schedule", "add_events", "run_job"]

MODE_CAUSAL = 1
MODE_DENSE = 2
COUNTERS = ("BYTES_READ", "BYTES_WRITTEN", "KV_ROWS", "KEYS_SELECTED", "TILES", "RESCALES",
            "MERGES")
_MASK32 = 0xFFFF_FFFF


@dataclass
class JobResult:
    """What a job leaves behind: O [Q_LEN, d] (data_bits integers) and the counters by name."""

    out: np.ndarray
    counters: dict = field(default_factory=dict)
    sel: np.ndarray | None = None      # the selection SU-FA used [Q_LEN, n_tiles, K] (-1 pads)
    blocks: list | None = None         # block_schedule() of the job, with add_events()


def _regs(cfg, regs: dict) -> dict:
    """Register values by name: the reset values of ``star.spec.regmap`` overridden by ``regs``."""
    full = {name: r.reset for name, r in by_name(cfg).items()}
    unknown = set(regs) - set(full)
    if unknown:
        raise KeyError(f"unknown registers: {', '.join(sorted(unknown))}")
    full.update({k: int(v) & _MASK32 for k, v in regs.items()})
    return full


def packed_layout(cfg, q_len: int, seq_len: int, base: int = 0) -> dict:
    """Address registers for Q, K, V, O packed one after another from ``base``, stride = row."""
    rb = cfg.formats.row_bytes
    out, at = {}, base
    for name, n in (("Q", q_len), ("K", seq_len), ("V", seq_len), ("O", q_len)):
        out[f"{name}_BASE"], out[f"{name}_STRIDE"] = at, rb
        at += n * rb
    return out


def tensor_span(cfg, regs: dict, name: str, kv_rows: int | None = None) -> tuple[int, int]:
    """Return [start, end) bytes of tensor ``name`` (Q, K, V or O) under the registers; K and V
    have ``kv_rows`` rows (default SEQ_LEN)."""
    rb = cfg.formats.row_bytes
    n = regs["Q_LEN"] if name in ("Q", "O") else regs["SEQ_LEN"] if kv_rows is None else kv_rows
    base = regs[f"{name}_BASE"]
    return base, base + (n - 1) * regs[f"{name}_STRIDE"] + rb


def check_registers(cfg, regs: dict, kv_rows: int | None = None) -> ErrorCode:
    """Return the core's start check for ``regs`` (missing registers hold their reset value);
    ``kv_rows``: rows of K and V in memory (default SEQ_LEN; a Spatial-STAR shard's)."""
    fmt = cfg.formats
    r = _regs(cfg, regs)
    mode = r["MODE"]
    causal, dense = bool(mode & MODE_CAUSAL), bool(mode & MODE_DENSE)
    rb = fmt.row_align
    if not 1 <= r["SEQ_LEN"] <= cfg.max_seq:
        return ErrorCode.SEQ_LEN
    if not 1 <= r["Q_LEN"] <= cfg.max_seq:
        return ErrorCode.Q_LEN
    if not dense and not 1 <= r["K_TILE"] <= cfg.k_tile:
        return ErrorCode.K_TILE
    if r["RADIUS"] != RADIUS_OFF_VALUE and r["RADIUS"] > fmt.radius_max:
        return ErrorCode.RADIUS
    if not (1 <= r["SCALE_MANT"] < 1 << fmt.scale_bits
            and fmt.exp_frac_bits <= r["SCALE_SHIFT"] <= SCALE_SHIFT_MAX):
        return ErrorCode.SCALE
    if mode & ~(MODE_CAUSAL | MODE_DENSE):
        return ErrorCode.MODE
    if causal and r["Q_LEN"] > r["SEQ_LEN"]:
        return ErrorCode.CAUSAL_LEN
    names = ("Q", "K", "V", "O")
    if any(r[f"{n}_BASE"] % rb for n in names) \
            or any(r[f"{n}_STRIDE"] == 0 or r[f"{n}_STRIDE"] % rb for n in names):
        return ErrorCode.ALIGN
    spans = {n: tensor_span(cfg, r, n, kv_rows) for n in names}
    if any(end > 1 << 32 for _, end in spans.values()):
        return ErrorCode.RANGE
    o_lo, o_hi = spans["O"]
    if any(lo < o_hi and o_lo < hi for lo, hi in (spans[n] for n in ("Q", "K", "V"))):
        return ErrorCode.OVERLAP
    return ErrorCode.NONE


def block_schedule(cfg, sel, q_len: int, seq_len: int, causal: bool) -> list[dict]:
    """The core's work per query block: ``{"rows": active lanes, "union": [keys of tile j that
    some active lane selected, per processed tile], "counts": [[keys each lane walks in tile j,
    T entries, 0 for idle lanes] per tile], "keys": (query, key) pairs selected}``.

    ``sel`` [Q_LEN, n_tiles, K]: the selection SU-FA uses (-1 pads; JobResult.sel). Tiles past
    the block's largest causal limit are skipped, as the core does."""
    T, tile = cfg.lanes, cfg.tile
    sel = np.asarray(sel)
    n_b, n_tiles = -(-q_len // T), sel.shape[1]
    # per (block, tile): the keys any lane selected, as a bit per key of the tile; per (row,
    # tile): the keys the lane walks (a list never names a key twice)
    ok = sel >= 0
    own = np.arange(n_tiles)[None, :, None] * tile
    if np.any(ok & ((sel < own) | (sel >= own + tile))):
        raise ValueError("a selection names a key outside its tile")
    hit = np.zeros((n_b, n_tiles, tile), bool)
    r, j, e = np.nonzero(ok)
    hit[r // T, j, sel[r, j, e] - j * tile] = True
    union_all = hit.sum(axis=2)
    walk = np.zeros((n_b * T, n_tiles), np.int64)
    walk[:q_len] = ok.sum(axis=2)
    walk = walk.reshape(n_b, T, n_tiles)
    out = []
    for b in range(n_b):
        rows = range(b * T, min(q_len, b * T + T))
        n_t = tiles_to(key_limit(rows[-1], seq_len - q_len, seq_len, causal),
                       cfg.formats.log2_tile)
        counts = walk[b, :, :n_t].T
        out.append({"rows": len(rows), "union": union_all[b, :n_t].tolist(),
                    "counts": counts.tolist(), "keys": int(counts.sum())})
    return out


def add_events(cfg, blocks: list[dict], res) -> None:
    """Add to each block of :func:`block_schedule` the SU-FA rescale events of ``res`` (a
    golden.sufa.Result): ``"events"`` [per tile: [per lane: tile merges (0/1) + max-assurance
    rescales]]. Each lane rescales on its own (the others go on)."""
    T, tile = cfg.lanes, cfg.tile
    over = {}
    for row, key in res.over:
        k = (int(row), int(key) // tile)
        over[k] = over.get(k, 0) + 1
    for n, b in enumerate(blocks):
        b["events"] = [[int(res.grew[n * T + t, j]) + over.get((n * T + t, j), 0)
                        if t < b["rows"] else 0 for t in range(T)]
                       for j in range(len(b["union"]))]


def run_job(cfg, q, k, v, regs: dict) -> JobResult:
    """Run one job on int q [Q_LEN, d], k/v [SEQ_LEN, d]; return O and the exact counters.

    ``regs`` needs Q_LEN, SEQ_LEN (matching the arrays), SCALE_MANT, SCALE_SHIFT; K_TILE, RADIUS
    and MODE default to their reset values, and the address registers to a packed layout (they
    only matter to the start check, which must pass: ValueError otherwise).
    """
    fmt = cfg.formats
    q, k, v = (np.asarray(x, np.int64) for x in (q, k, v))
    given = {kk: int(vv) & _MASK32 for kk, vv in regs.items()}
    r = _regs(cfg, {**packed_layout(cfg, given.get("Q_LEN", 1), given.get("SEQ_LEN", 1)),
                    **given})
    err = check_registers(cfg, r)
    if err != ErrorCode.NONE:
        raise ValueError(f"the core would not start this job: error {err.name}")
    sq, sk = r["Q_LEN"], r["SEQ_LEN"]
    if q.shape != (sq, cfg.head_dim) or k.shape != (sk, cfg.head_dim) or v.shape != k.shape:
        raise ValueError(f"q {q.shape}, k {k.shape}, v {v.shape} do not match Q_LEN={sq}, "
                         f"SEQ_LEN={sk}, head_dim={cfg.head_dim}")
    causal, dense = bool(r["MODE"] & MODE_CAUSAL), bool(r["MODE"] & MODE_DENSE)
    valid = causal_mask(sq, sk) if causal else np.ones((sq, sk), bool)
    if dense:
        sel = sads.dense_order(valid, fmt)
    else:
        radius = -1 if r["RADIUS"] == RADIUS_OFF_VALUE else r["RADIUS"]
        sel = sads.select(dlzs.predict(q, k, fmt), fmt, k_tile=r["K_TILE"], radius=radius,
                          valid=valid)
    res = sufa.attend(q, k, v, sel, r["SCALE_MANT"], r["SCALE_SHIFT"], fmt, exact_max=dense)

    blocks = block_schedule(cfg, sel, sq, sk, causal)
    add_events(cfg, blocks, res)
    k_rows = sum(min(cfg.tile, sk - j * cfg.tile) for b in blocks for j in range(len(b["union"])))
    kv_rows = sum(sum(b["union"]) for b in blocks)
    keys = sum(b["keys"] for b in blocks)
    tiles = sum(len(b["union"]) for b in blocks)
    counters = {
        "BYTES_READ": fmt.row_bytes * (sq + k_rows + kv_rows),
        "BYTES_WRITTEN": fmt.row_bytes * sq,
        "KV_ROWS": kv_rows,
        "KEYS_SELECTED": keys,
        "TILES": tiles,
        "RESCALES": int(res.rescales.sum()),
        "MERGES": int(res.merges.sum()),
    }
    return JobResult(res.out, counters, sel, blocks)
