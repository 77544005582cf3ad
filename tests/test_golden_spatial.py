"""golden.spatial: the sharded job with its merge, against the single-core job model and float
attention over the same selection."""

import numpy as np
import pytest

from star.golden import pipeline, sads
from star.golden.core import MODE_CAUSAL, MODE_DENSE, packed_layout, run_job
from star.golden.core import check_registers as check_core
from star.golden.reference import attention_head
from star.spec.config import preset
from star.golden.spatial import (Partial, check_registers, merge, partial_state, run_sharded,
                                 shard_keys, shard_tiles)
from star.spec.regmap import ErrorCode

CFG = preset("tiny")
FMT = CFG.formats


def job(sq, sk, causal, dense, seed):
    rng = np.random.default_rng(seed)
    d = CFG.head_dim
    q, k, v = (2.0 * rng.standard_normal((n, d)) for n in (sq, sk, sk))
    h = pipeline.prepare(FMT, q, k, v, causal=causal, softmax_scale=d ** -0.5)
    regs = {"Q_LEN": sq, "SEQ_LEN": sk, "K_TILE": 4, "SCALE_MANT": h.mant,
            "SCALE_SHIFT": h.shift, "MODE": MODE_CAUSAL * causal | MODE_DENSE * dense}
    return h, regs


def test_shards_cover_every_tile_once():
    for n_tiles in (1, 3, 16, 17):
        for cores in (1, 2, 4, 16):
            tiles = [t for r in shard_tiles(n_tiles, cores) for t in r]
            sizes = [len(r) for r in shard_tiles(n_tiles, cores)]
            assert tiles == list(range(n_tiles)) and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("causal,dense", [(True, False), (False, False), (True, True)])
def test_one_core_is_the_single_core_model(causal, dense):
    h, regs = job(9, 70, causal, dense, seed=1)
    one = run_sharded(CFG, h.q, h.k, h.v, regs, cores=1)
    assert np.array_equal(one.out, run_job(CFG, h.q, h.k, h.v, regs).out)


def test_merge_is_commutative_and_has_an_identity():
    h, regs = job(6, 64, False, False, seed=2)
    sel = run_job(CFG, h.q, h.k, h.v, regs).sel
    a = partial_state(h.q, h.k, h.v, np.where(np.arange(sel.shape[1])[None, :, None] < 2, sel, -1),
                      h.mant, h.shift, FMT, exact_max=False)
    b = partial_state(h.q, h.k, h.v, np.where(np.arange(sel.shape[1])[None, :, None] >= 2, sel, -1),
                      h.mant, h.shift, FMT, exact_max=False)
    ab, ba = merge(a, b, h.mant, h.shift, FMT), merge(b, a, h.mant, h.shift, FMT)
    for x, y in zip((ab.has, ab.m, ab.l, ab.o), (ba.has, ba.m, ba.l, ba.o)):
        assert np.array_equal(x, y)
    empty = Partial(np.zeros(6, bool), np.zeros(6, np.int64), np.zeros(6, np.int64),
                    np.zeros((6, CFG.head_dim), np.int64))
    ae = merge(a, empty, h.mant, h.shift, FMT)
    assert np.array_equal(ae.l, a.l) and np.array_equal(ae.o, a.o) and np.array_equal(ae.m, a.m)


@pytest.mark.parametrize("cores", [2, 4, 16])
@pytest.mark.parametrize("causal", [True, False])
def test_sharded_result_near_single_core_and_float(cores, causal, seed):
    """Sharding changes only the rounding of the state rescales: O within 2 LSB of the
    single-core O, and as close to float attention over the same selection."""
    sq, sk = (128, 256) if causal else (12, 256)      # causal: row 0 sees keys 0..128 only
    h, regs = job(sq, sk, causal, False, seed=seed)
    single = run_job(CFG, h.q, h.k, h.v, regs)
    many = run_sharded(CFG, h.q, h.k, h.v, regs, cores=cores)
    assert np.abs(many.out - single.out).max() <= 2
    mask = sads.selection_mask(single.sel, h.k.shape[0])
    ref = attention_head(h.q * h.scale_q, h.k * h.scale_k, h.v * h.scale_v, CFG.head_dim ** -0.5,
                         mask) / h.scale_v
    err_single = np.abs(single.out - ref).max()
    err_many = np.abs(many.out - ref).max()
    assert err_many <= err_single + 2
    # causal: the cores owning keys past 128 own no key of query row 0 (an empty partial)
    if causal and cores > 1:
        shards = shard_keys(CFG, sk, cores)
        assert all(len(r) for r in shards)
        for c, r in enumerate(shards):
            assert bool(many.parts[c].has[0]) == (r.start <= 128)
            assert many.parts[c].has[-1]


def test_array_start_check():
    """The core's checks with the largest shard's K/V spans, then SHARD (fewer tiles than
    cores); run_sharded refuses such a job."""
    h, regs = job(4, 3 * CFG.tile, False, False, seed=4)
    assert check_registers(CFG, {**regs, **packed_layout(CFG, 4, 3 * CFG.tile)}, 3) \
        == ErrorCode.NONE
    assert check_registers(CFG, {**regs, **packed_layout(CFG, 4, 3 * CFG.tile)}, 4) \
        == ErrorCode.SHARD
    with pytest.raises(ValueError, match="error SHARD"):
        run_sharded(CFG, h.q, h.k, h.v, regs, cores=4)
    # O right after the largest shard's V rows: fine for the array, an overlap for one core
    lay = packed_layout(CFG, 4, CFG.tile)          # Q, K, V of one tile, then O
    assert check_registers(CFG, {**regs, **lay}, 3) == ErrorCode.NONE
    assert check_core(CFG, {**regs, **lay}) == ErrorCode.OVERLAP
    assert check_registers(CFG, {**regs, **lay, "K_TILE": 0}, 3) == ErrorCode.K_TILE
