"""golden.core: the job model agrees with golden.pipeline, its counters with an independent
recount (vectorised, from the selection masks), and its start checks with docs/core.md."""

import numpy as np
import pytest

from star.golden import pipeline, sads
from star.golden.core import MODE_CAUSAL, MODE_DENSE, check_registers, packed_layout, run_job
from star.spec.config import StarConfig, preset
from star.spec.regmap import RADIUS_OFF_VALUE, ErrorCode

TINY = preset("tiny")
LANES3 = StarConfig(**{**TINY.to_dict(), "lanes": 3, "tile": 8})

# (cfg, q_len, seq_len, causal, dense, k_tile, radius)
SHAPES = [
    (TINY, 8, 40, True, False, 4, -1),
    (TINY, 5, 37, False, False, 2, -1),
    (TINY, 7, 21, True, True, 4, -1),
    (LANES3, 7, 19, True, False, 3, 40),
    (LANES3, 10, 10, True, False, 1, -1),
    (LANES3, 4, 9, False, True, 8, -1),
]


def head(cfg, sq, sk, causal, seed):
    rng = np.random.default_rng(seed)
    d = cfg.head_dim
    q, k, v = (2.0 * rng.standard_normal((n, d)) for n in (sq, sk, sk))
    return pipeline.prepare(cfg.formats, q, k, v, causal=causal, softmax_scale=d ** -0.5)


def recount(cfg, sel, sq, sk, causal):
    """Counters from the selection mask, block by block, without the model's loop."""
    fmt, T, tile = cfg.formats, cfg.lanes, cfg.tile
    mask = sads.selection_mask(sel, sk)                       # [sq, sk]
    n_tiles = -(-sk // tile)
    tile_of = np.arange(sk) // tile
    k_rows = kv = tiles = 0
    for b0 in range(0, sq, T):
        last_row = min(sq, b0 + T) - 1
        # the last active lane reaches furthest
        reach = min(sk - 1, last_row + sk - sq) if causal else sk - 1
        n_t = tile_of[reach] + 1
        tiles += n_t
        k_rows += min(sk, n_t * tile)
        union = mask[b0:last_row + 1].any(axis=0)
        kv += int(union.sum())                                   # tiles partition the keys
        assert not union[tile_of >= n_t].any()
    assert n_tiles >= 1
    return {"BYTES_READ": fmt.row_bytes * (sq + k_rows + kv), "BYTES_WRITTEN": fmt.row_bytes * sq,
            "KV_ROWS": kv, "KEYS_SELECTED": int(mask.sum()), "TILES": tiles}


@pytest.mark.parametrize("n", range(len(SHAPES)))
def test_run_job_matches_pipeline(n):
    cfg, sq, sk, causal, dense, k_tile, radius = SHAPES[n]
    fmt = cfg.formats
    h = head(cfg, sq, sk, causal, seed=n)
    regs = {"Q_LEN": sq, "SEQ_LEN": sk, "K_TILE": k_tile, "SCALE_MANT": h.mant,
            "SCALE_SHIFT": h.shift, "RADIUS": RADIUS_OFF_VALUE if radius < 0 else radius,
            "MODE": MODE_CAUSAL * causal | MODE_DENSE * dense}
    job = run_job(cfg, h.q, h.k, h.v, regs)
    res, sel = pipeline.run(h, fmt, dense=dense, k_tile=k_tile, radius=radius)
    assert np.array_equal(job.out, res.out)
    assert np.array_equal(job.sel, sel)
    want = recount(cfg, sel, sq, sk, causal)
    assert {k: job.counters[k] for k in want} == want
    assert job.counters["RESCALES"] == int(res.rescales.sum())
    assert job.counters["MERGES"] == int(res.merges.sum())
    if dense:
        assert job.counters["RESCALES"] == 0
        assert job.counters["KEYS_SELECTED"] == int(h.valid.sum())
    if dense and not causal:      # FlashAttention: K and V read once per block
        blocks = -(-sq // cfg.lanes)
        assert job.counters["KV_ROWS"] == blocks * sk


def test_run_job_rejects_bad_registers():
    h = head(TINY, 4, 8, False, 0)
    with pytest.raises(ValueError, match="K_TILE"):
        run_job(TINY, h.q, h.k, h.v, {"Q_LEN": 4, "SEQ_LEN": 8, "K_TILE": 0,
                                      "SCALE_MANT": h.mant, "SCALE_SHIFT": h.shift})


def test_check_registers():
    cfg, fmt = TINY, TINY.formats
    rb = fmt.row_bytes
    good = {"Q_LEN": 8, "SEQ_LEN": 40, "K_TILE": 4, "RADIUS": RADIUS_OFF_VALUE,
            "SCALE_MANT": 100, "SCALE_SHIFT": 20, "MODE": MODE_CAUSAL,
            **packed_layout(cfg, 8, 40, base=16 * rb)}
    E = ErrorCode
    cases = [
        ({}, E.NONE),
        ({"SEQ_LEN": 0}, E.SEQ_LEN), ({"SEQ_LEN": cfg.max_seq + 1}, E.SEQ_LEN),
        ({"Q_LEN": 0}, E.Q_LEN), ({"Q_LEN": cfg.max_seq + 1, "MODE": 0}, E.Q_LEN),
        ({"K_TILE": 0}, E.K_TILE), ({"K_TILE": cfg.k_tile + 1}, E.K_TILE),
        ({"K_TILE": 0, "MODE": MODE_DENSE}, E.NONE),
        ({"RADIUS": fmt.radius_max}, E.NONE), ({"RADIUS": fmt.radius_max + 1}, E.RADIUS),
        ({"SCALE_MANT": 0}, E.SCALE), ({"SCALE_MANT": 1 << fmt.scale_bits}, E.SCALE),
        ({"SCALE_SHIFT": fmt.exp_frac_bits - 1}, E.SCALE), ({"SCALE_SHIFT": 64}, E.SCALE),
        ({"SCALE_SHIFT": 63, "SCALE_MANT": (1 << fmt.scale_bits) - 1}, E.NONE),
        ({"MODE": 4}, E.MODE), ({"MODE": 3}, E.NONE),
        ({"Q_LEN": 41}, E.CAUSAL_LEN), ({"Q_LEN": 41, "MODE": 0}, E.NONE),
        ({"K_BASE": good["K_BASE"] + rb // 2}, E.ALIGN), ({"V_STRIDE": 0}, E.ALIGN),
        ({"O_STRIDE": rb + 1}, E.ALIGN), ({"Q_STRIDE": 3 * rb}, E.NONE),
        ({"K_BASE": (1 << 32) - rb}, E.RANGE), ({"O_BASE": (1 << 32) - 8 * rb}, E.NONE),
        ({"O_BASE": (1 << 32) - 7 * rb}, E.RANGE),
        ({"O_BASE": good["Q_BASE"] + 7 * rb}, E.OVERLAP), ({"O_BASE": good["V_BASE"]}, E.OVERLAP),
        ({"O_BASE": good["Q_BASE"] - 8 * rb}, E.NONE),      # ends where Q starts
        ({"SEQ_LEN": 0, "MODE": 4, "V_STRIDE": 0}, E.SEQ_LEN),   # the lowest code wins
        ({"MODE": 4, "V_STRIDE": 0}, E.MODE),
    ]
    for change, want in cases:
        assert check_registers(cfg, {**good, **change}) == want, change
