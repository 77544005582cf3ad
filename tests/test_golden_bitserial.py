"""The bit-serial guard filter's golden model (golden/bitserial.py) against brute force: the
interval table bounds every partial score, the bounds nest round by round, the survivors are
exactly the keys within the guard offset of their tile's maximum (so a dropped key never
reaches the threshold), nothing is dropped with alpha = 1 and a huge radius, survivors' scores
are q·k exactly, the tile-local threshold keeps a superset of a carried one, and the cap keeps
the best survivors."""

import numpy as np
import pytest

from star.golden import bitserial
from star.golden.intops import int_matmul
from star.golden.quant import quantize_keys_per_channel
from star.spec.formats import ALPHA_FRAC_BITS

ONE = 1 << ALPHA_FRAC_BITS          # alpha = 1.0


def rand_qk(rng, bits, sq, sk, d):
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    return rng.integers(lo, hi, (sq, d)), rng.integers(lo, hi, (sk, d))


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_interval_table_bounds_every_partial_and_nests(bits, seed):
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, bits, 6, 40, 16)
    exact = int_matmul(q, k.T)
    lo, hi = bitserial.interval_table(q, bits)
    prev_lo = prev_hi = None
    for r in range(1, bits + 1):
        s = int_matmul(q, bitserial.known_part(k, bits, r).T)
        low, high = s + lo[:, r - 1:r], s + hi[:, r - 1:r]
        assert (low <= exact).all() and (exact <= high).all(), f"round {r}"
        if prev_lo is not None:                     # a lower bound rises, an upper one falls
            assert (low >= prev_lo).all() and (high <= prev_hi).all(), f"round {r}"
        prev_lo, prev_hi = low, high
    assert (prev_lo == exact).all() and (prev_hi == exact).all()


def test_known_part_is_the_leading_planes():
    # 8-bit -100 = 0b10011100: after 1 plane (the sign) -128, after 4 -112, after 8 itself
    assert [int(bitserial.known_part(-100, 8, r)) for r in (1, 4, 8)] == [-128, -112, -100]
    assert [int(bitserial.known_part(100, 8, r)) for r in (1, 2, 8)] == [0, 64, 100]


@pytest.mark.parametrize("bits,alpha,radius", [(8, ONE // 2, 2000), (8, ONE, 300),
                                               (16, 154, 1 << 20), (8, 0, 5000)])
def test_survivors_are_the_keys_within_the_guard_of_the_tile_max(bits, alpha, radius, seed):
    rng = np.random.default_rng(seed)
    tile, sq, sk, d = 16, 5, 70, 16
    q, k = rand_qk(rng, bits, sq, sk, d)
    valid = rng.random((sq, sk)) < 0.85
    off = bitserial.guard_offset(alpha, radius)
    exact = int_matmul(q, k.T)
    sel, planes = bitserial.select(q, k, bits, tile, off, valid)
    mask = np.zeros((sq, sk), bool)
    for i, j, e in zip(*np.nonzero(sel >= 0)):
        mask[i, sel[i, j, e]] = True
    for j in range(-(-sk // tile)):
        cols = slice(j * tile, (j + 1) * tile)
        ex, ok = exact[:, cols], valid[:, cols]
        top = np.where(ok, ex, np.iinfo(np.int64).min).max(axis=1, keepdims=True)
        want = ok & (ex >= top - off)
        assert (mask[:, cols] == want).all(), f"tile {j}"
        # a dropped key never reaches its tile's final threshold (the max minus off)
        assert (ex[ok & ~want] < (top - off).repeat(ok.shape[1], 1)[ok & ~want]).all()
    assert (planes[mask] == bits).all()               # a survivor read every plane
    assert (planes[~valid] == 0).all()                # an invalid key read none
    assert ((planes >= 1) | ~valid).all()
    # visit order: descending exact score, ties to the lower index
    for i, j in zip(*np.nonzero((sel >= 0).sum(axis=2) > 1)):
        keys = sel[i, j][sel[i, j] >= 0]
        pairs = list(zip(-exact[i, keys], keys))
        assert pairs == sorted(pairs)


def test_alpha_one_and_a_huge_radius_drop_nothing(seed):
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, 8, 4, 48, 32)
    off = bitserial.guard_offset(ONE, 1 << 40)
    live, scores, planes, _ = bitserial.filter_tile(q, k, 8, off)
    assert live.all() and (planes == 8).all()
    assert (scores == int_matmul(q, k.T)).all()       # survivors' scores are q·k exactly


def test_a_tight_guard_drops_keys_early(seed):
    # off = 0 on random 8-bit data: most keys leave after a few planes (the bytes the front
    # saves), the tile's maxima read all eight
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, 8, 8, 64, 64)
    live, scores, planes, m = bitserial.filter_tile(q, k, 8, 0)
    exact = int_matmul(q, k.T)
    assert (m == exact.max(axis=1)).all()
    assert (live == (exact == exact.max(axis=1, keepdims=True))).all()
    assert planes.mean() < 6


def test_tile_local_threshold_keeps_a_superset_of_a_carried_one(seed):
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, 8, 6, 96, 16)
    off = bitserial.guard_offset(ONE // 2, 3000)
    local, p_local = bitserial.select(q, k, 8, 16, off)
    carried, p_carried = bitserial.select(q, k, 8, 16, off, carry=True)
    for i in range(q.shape[0]):
        assert set(carried[i][carried[i] >= 0]) <= set(local[i][local[i] >= 0])
    assert (p_carried <= p_local).all()


def test_cap_keeps_the_best_survivors(seed):
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, 8, 5, 64, 16)
    off = bitserial.guard_offset(ONE, 4000)
    full, _ = bitserial.select(q, k, 8, 16, off)
    capped, _ = bitserial.select(q, k, 8, 16, off, cap=3)
    assert capped.shape[2] == 3
    assert (capped == full[:, :, :3]).all()


@pytest.mark.parametrize("alpha,radius", [(-1, 5), (ONE + 1, 5), (3, -1)])
def test_guard_offset_refuses_bad_values(alpha, radius):
    with pytest.raises(ValueError, match="alpha|radius"):
        bitserial.guard_offset(alpha, radius)


def test_a_given_table_replaces_the_sound_one(seed):
    # the sound table passed explicitly changes nothing; a zero-width table at the interval's
    # centre (speculative: no survivor guarantee, a tile may even lose every key) reads fewer
    # planes
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, 8, 8, 64, 64)
    off = bitserial.guard_offset(ONE // 4, 2000)
    sound = bitserial.select(q, k, 8, 16, off)
    given = bitserial.select(q, k, 8, 16, off, table=bitserial.interval_table(q, 8))
    assert all((a == b).all() for a, b in zip(sound, given))
    lo, hi = bitserial.interval_table(q, 8)
    mid = (lo + hi) // 2
    _, planes = bitserial.select(q, k, 8, 16, off, table=(mid, mid))
    assert planes.sum() < sound[1].sum()


def test_per_channel_keys_keep_the_scores_and_fill_each_channel(seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(5, 16))
    k = rng.normal(size=(40, 16)) * rng.uniform(0.01, 10, 16)     # channels of unequal range
    for bits in (8, 16):
        qi, scale_q, ki = quantize_keys_per_channel(q, k, bits)
        top = (1 << (bits - 1)) - 1
        assert (np.abs(ki).max(axis=0) == top).all()               # every channel full range
        # rounding q' = q·s to scale_q and k/s to 1 each errs by at most half a step
        s = np.abs(k).max(axis=0) / top
        bound = (scale_q / 2 * np.abs(ki).sum(axis=1)[None, :]
                 + (np.abs(q) * s).sum(axis=1)[:, None] / 2)
        assert (np.abs(scale_q * int_matmul(qi, ki.T) - q @ k.T) <= bound + 1e-9).all()


@pytest.mark.parametrize("share", [0.1, 0.25, 0.6])
def test_offset_keeping_keeps_that_share(share, seed):
    rng = np.random.default_rng(seed)
    q, k = rand_qk(rng, 8, 6, 200, 16)
    valid = rng.random((6, 200)) < 0.9
    off = bitserial.offset_keeping(int_matmul(q, k.T), valid, 16, share)
    sel, _ = bitserial.select(q, k, 8, 16, off, valid)
    kept = (sel >= 0).sum() / valid.sum()
    assert abs(kept - share) < 0.02, kept
