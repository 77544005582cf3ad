"""Golden SU-FA, dense baseline and whole-pipeline behaviour against float attention.

Stated tolerances (checked here):
* fixed-point dense vs float attention on the same (de)quantised inputs: every output within
  0.5 + 4·δ·qmax LSB of V, δ = 2**(2**-(E+1)) - 1 the exp2 exponent-rounding error;
* fixed-point dense vs float attention on the original float inputs, random data, d = 64,
  S = 1024, causal: relative Frobenius error <= 1e-3 at 16 bits, <= 6e-2 at 8 bits (8-bit output
  rounding of near-uniform attention dominates).
"""

import numpy as np
import pytest

from star.golden import pipeline, reference, sads, sufa
from star.golden.exp2 import weight
from star.golden.intops import int_matmul
from star.spec.config import StarConfig, preset
from star.spec.formats import Formats


def fmt_of(name, **kw):
    return Formats(StarConfig(**{**preset(name).to_dict(), **kw}))


def lsb_bound(fmt):
    delta = 2.0 ** (2.0 ** -(fmt.exp_frac_bits + 1)) - 1
    return 0.5 + 4 * delta * fmt.qmax


def head(fmt, rng, sq, sk, causal=True, gain=2.0):
    d = fmt.cfg.head_dim
    q, k, v = (gain * rng.standard_normal((n, d)) for n in (sq, sk, sk))
    return pipeline.prepare(fmt, q, k, v, causal=causal, softmax_scale=d ** -0.5), (q, k, v)


def float_on_quantised(h, fmt):
    d = fmt.cfg.head_dim
    return reference.attention_head(h.q * h.scale_q, h.k * h.scale_k, h.v, d ** -0.5, h.valid)


def reorder(sel, key):
    """Reorder each (row, tile) list by ``key`` (ascending) keeping -1 padding last."""
    k = np.where(sel >= 0, key, np.inf)
    out = np.take_along_axis(sel, np.argsort(k, axis=2, kind="stable"), axis=2)
    return out


@pytest.mark.parametrize("name", ["tiny", "default", "int8"])
def test_sufa_in_true_order_equals_dense_bit_for_bit(name, seed):
    fmt = fmt_of(name)
    h, _ = head(fmt, np.random.default_rng(seed), 40, 75)
    dense, sel_all = pipeline.run(h, fmt, dense=True)
    s = int_matmul(h.q, h.k.T)
    # every key, visited in descending exact score: the fixed max is right, nothing is rescaled
    sel = reorder(sel_all, -np.take_along_axis(s, np.maximum(sel_all, 0).reshape(40, -1),
                                               axis=1).reshape(sel_all.shape))
    res = sufa.attend(h.q, h.k, h.v, sel, h.mant, h.shift, fmt)
    assert res.rescales.sum() == 0
    assert np.array_equal(res.out, dense.out)
    assert np.array_equal(res.l, dense.l) and np.array_equal(res.o, dense.o)


def scalar_sufa(q, k, v, sel, mant, shift, fmt, exact_max=False):
    """Independent per-row scalar model of the SU-FA rules (Python ints)."""
    P = fmt.exp_out_bits

    def w(t):
        return int(weight(np.array([t]), mant, shift, fmt)[0])

    def rs(x, f):
        return (x * f + (1 << (P - 1))) >> P

    outs, resc = [], []
    for r in range(q.shape[0]):
        m, l, o, has, n_resc = 0, 0, [0] * k.shape[1], False, 0
        for j in range(sel.shape[1]):
            keys = [int(x) for x in sel[r, j] if x >= 0]
            if not keys:
                continue
            s = {x: int(np.dot(q[r], k[x])) for x in keys}
            mt = max(s.values()) if exact_max else max(s[x] for x in keys[:2])
            if has and mt > m:
                f = w(mt - m)
                l, o = rs(l, f), [rs(x, f) for x in o]
            if not has or mt > m:
                m = mt
            has = True
            for x in keys:                # each row walks its own list in list order
                if s[x] > m:
                    f = w(s[x] - m)
                    l, o, m, n_resc = rs(l, f), [rs(y, f) for y in o], s[x], n_resc + 1
                p = w(m - s[x])
                l += p
                o = [a + p * int(b) for a, b in zip(o, v[x])]
        outs.append((l, o))
        resc.append(n_resc)
    return outs, resc


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_attend_equals_scalar_model_with_rescales(name, seed):
    """Random selections in random order (the predicted top-2 is usually wrong): every rescale
    and merge rounding matches an independent scalar model; the result stays near float."""
    fmt = fmt_of(name)
    rng = np.random.default_rng(seed)
    sq, sk = 12, 40
    h, _ = head(fmt, rng, sq, sk, causal=True)
    sel = sads.select(rng.integers(0, 1000, (sq, sk)), fmt, k_tile=5, radius=-1, valid=h.valid)
    res = sufa.attend(h.q, h.k, h.v, sel, h.mant, h.shift, fmt)
    outs, resc = scalar_sufa(h.q, h.k, h.v, sel, h.mant, h.shift, fmt)
    assert [int(x) for x in res.l] == [l for l, _ in outs]
    assert res.o.tolist() == [o for _, o in outs]
    assert res.rescales.tolist() == resc and sum(resc) > 0
    mask = sads.selection_mask(sel, sk)
    ref = reference.attention_head(h.q * h.scale_q, h.k * h.scale_k, h.v, fmt.cfg.head_dim ** -0.5,
                                   mask)
    assert np.abs(res.out - ref).max() <= 2 * lsb_bound(fmt)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_true_max_outside_predicted_top2_is_rescaled(name, seed):
    """Every tile's predicted top-2 excludes its true max: max assurance fires, O stays right."""
    fmt = fmt_of(name)
    sq, sk = 32, 64
    h, _ = head(fmt, np.random.default_rng(seed), sq, sk, causal=False)
    dense, sel_all = pipeline.run(h, fmt, dense=True)
    sel = sads.true_max_last(sel_all, int_matmul(h.q, h.k.T))
    res = sufa.attend(h.q, h.k, h.v, sel, h.mant, h.shift, fmt)
    _, resc = scalar_sufa(h.q, h.k, h.v, sel, h.mant, h.shift, fmt)
    assert res.rescales.tolist() == resc and min(resc) >= 1
    ref = float_on_quantised(h, fmt)
    assert np.abs(res.out - ref).max() <= lsb_bound(fmt)
    assert np.abs(res.out - dense.out).max() <= 2 * lsb_bound(fmt)


@pytest.mark.parametrize("name", ["tiny", "default", "int8"])
def test_extreme_values(name):
    fmt = fmt_of(name)
    d, lo, hi = fmt.cfg.head_dim, fmt.qmin, fmt.qmax
    mant, shift = 1 << (fmt.scale_bits - 1), fmt.scale_bits - 1 + 8   # c = 2**-8: steep softmax
    q = np.array([[lo] * d, [0] * d, [hi] * d, [lo] * d])
    k = np.array([[lo] * d, [hi] * d, [0] * d, [lo] * d, [hi] * d, [1] * d])
    v = np.array([[lo] * d, [hi] * d, [7] * d, [-3] * d, [0] * d, [hi] * d])
    sel = sads.dense_order(np.ones((4, 6), bool), fmt)
    res = sufa.attend(q, k, v, sel, mant, shift, fmt, exact_max=True)
    s = (q.astype(float) @ k.T.astype(float)) * 2.0 ** -8 * np.log(2)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    ref = (p / p.sum(axis=1, keepdims=True)) @ v
    assert np.abs(res.out - ref).max() <= lsb_bound(fmt)
    # row 1 (q = 0): every score equal, O is the plain mean of v
    assert np.array_equal(res.out[1], np.rint(v.mean(axis=0) + 1e-9).astype(int).clip(lo, hi))
    # row 0: keys 0 and 3 (score +2**(2b-2)·d) dominate, every other weight underflows to 0:
    # O is the mean of v[0] and v[3], rounded half up
    assert np.all(res.out[0] == np.floor((lo - 3) / 2 + 0.5))


@pytest.mark.parametrize("name, rel_bound", [("default", 1e-3), ("int8", 6e-2)])
def test_dense_fixed_point_vs_float_d64_s1024(name, rel_bound, seed):
    fmt = fmt_of(name)
    assert fmt.cfg.head_dim == 64
    h, (q, k, v) = head(fmt, np.random.default_rng(seed), 1024, 1024)
    res, _ = pipeline.run(h, fmt, dense=True)
    assert np.abs(res.out - float_on_quantised(h, fmt)).max() <= lsb_bound(fmt)
    ref = reference.attention_head(q, k, v, 64 ** -0.5, h.valid)
    out = res.out * h.scale_v
    rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    print(f"{name}: relative Frobenius error vs float {rel:.3g} (bound {rel_bound})")
    assert rel <= rel_bound


@pytest.mark.parametrize("predictor", ["dlzs", "mac4"])
def test_pipeline_with_every_key_selected_matches_dense(predictor, seed):
    """k = tile and no radius: the predictor only orders the keys; max assurance keeps O right."""
    fmt = fmt_of("tiny")
    h, _ = head(fmt, np.random.default_rng(seed), 48, 48)
    dense, _ = pipeline.run(h, fmt, dense=True)
    res, sel = pipeline.run(h, fmt, predictor=predictor, k_tile=fmt.cfg.tile, radius=-1)
    assert np.array_equal(sads.selection_mask(sel, 48), h.valid)
    assert np.abs(res.out - dense.out).max() <= 2 * lsb_bound(fmt)


def test_star_selection_is_sparse_and_bounded(seed):
    fmt = fmt_of("tiny")
    h, _ = head(fmt, np.random.default_rng(seed), 64, 64)
    res, sel = pipeline.run(h, fmt)
    counts = sads.selection_mask(sel, 64).sum(axis=1)
    assert counts.max() <= 4 * fmt.cfg.k_tile and counts.min() >= 1
    assert np.all(np.abs(res.out) <= fmt.qmax)


def test_reference_grouped_query_heads(seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((4, 5, 8))
    k, v = rng.standard_normal((2, 2, 7, 8))
    out = reference.attention(q, k, v, causal=True)
    for hq in range(4):
        kv = hq // 2
        s = q[hq] @ k[kv].T / np.sqrt(8)
        s[np.arange(7)[None] > np.arange(5)[:, None] + 2] = -np.inf
        p = np.exp(s - s.max(1, keepdims=True))
        assert np.allclose(out[hq], (p / p.sum(1, keepdims=True)) @ v[kv])
