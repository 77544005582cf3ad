"""Golden-model units against independent brute-force or float references."""

import math

import numpy as np
import pytest

from star.golden import dlzs, exp2, mac4, quant, recip, sads
from star.golden.intops import bit_length, int_matmul
from star.spec.config import StarConfig, preset
from star.spec.formats import Formats, encode_score_scale


def fmt_of(name="tiny", **kw):
    return Formats(StarConfig(**{**preset(name).to_dict(), **kw}))


def all_pairs(bits):
    x = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    return np.meshgrid(x, x, indexing="ij")


# ---- DLZS -------------------------------------------------------------------------------------

def lone_term(q, k, fmt):
    """The DLZS estimate of each product q·k, each q taken as a one-element row."""
    w, base = dlzs.query_weight(np.asarray(q)[..., None], fmt)
    return (w[..., 0] << base) * dlzs.key_operand(k, fmt)


@pytest.mark.parametrize("bits", [8, 16])
def test_dlzs_floor_term_sign_and_bounds(bits):
    """Full-precision floor DLZS: each term has the product's sign and |est| in [|xy|/2, |xy|]."""
    fmt = fmt_of("tiny", data_bits=bits, dlzs_k_bits=bits, dlzs_shift_bits=bits.bit_length() - 1)
    if bits == 8:
        q, k = all_pairs(8)                       # exhaustive: 65536 pairs
    else:
        rng = np.random.default_rng(5)
        q, k = rng.integers(-(1 << 15), 1 << 15, (2, 200000))
        q[:3], k[:3] = [-(1 << 15), 0, 1], [-(1 << 15), 7, -1]
    est = lone_term(q, k, fmt)
    exact = q.astype(np.int64) * k
    assert np.array_equal(np.sign(est), np.sign(exact))
    assert np.all(2 * np.abs(est) >= np.abs(exact)) and np.all(np.abs(est) <= np.abs(exact))


@pytest.mark.parametrize("terms, rounding, lo, hi", [(1, "nearest", 2 / 3, 4 / 3),
                                                     (2, "floor", 3 / 4, 1),
                                                     (2, "nearest", 6 / 7, 8 / 7)])
def test_dlzs_term_bounds(terms, rounding, lo, hi):
    """Exhaustive 8-bit: |est| in [lo, hi]·|xy| (one term nearest: worst cases 0b1011.. and
    0b11..; two terms floor: 0b111..; two terms nearest: 0b1101.. and 0b1001..)."""
    fmt = fmt_of("tiny", dlzs_terms=terms, dlzs_rounding=rounding, dlzs_k_bits=8,
                 dlzs_shift_bits=3)
    q, k = all_pairs(8)
    est = lone_term(q, k, fmt)
    exact = q * k
    nz = exact != 0
    ratio = est[nz] / exact[nz]
    assert ratio.min() >= lo and ratio.max() <= hi
    assert np.all(est[~nz] == 0)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("rounding", ["floor", "nearest"])
def test_dlzs_two_terms_exhaustive(bits, rounding):
    """Every query value: two terms = leading one + leading one of the residual (rounded last),
    never above 2**(bits-1) (the bound pred_bits assumes), never worse than one term."""
    one, two = (fmt_of("tiny", data_bits=bits, dlzs_k_bits=bits, dlzs_terms=t,
                       dlzs_rounding=rounding, dlzs_shift_bits=3 if bits == 8 else 4)
                for t in (1, 2))
    q = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    w2, base2 = dlzs.query_weight(q[:, None], two)
    w1, base1 = dlzs.query_weight(q[:, None], one)
    est2, est1 = w2[:, 0] << base2, w1[:, 0] << base1
    want = []
    for v in q.tolist():
        mag, total = abs(v), 0
        p1 = mag.bit_length() - 1
        if mag:
            total = 1 << p1
            r = mag - total
            if r:
                p2 = r.bit_length() - 1
                if rounding == "nearest" and p2 >= 1:
                    p2 += (r >> (p2 - 1)) & 1
                total += 1 << p2
        want.append(-total if v < 0 else total)
    assert np.array_equal(est2, want)
    assert np.abs(est2).max() <= 1 << (bits - 1)
    assert np.all(np.abs(est2 - q) <= np.abs(est1 - q))


def test_lz_encode_positions():
    fmt = fmt_of("tiny")
    neg, zero, pos = dlzs.lz_encode(np.array([0, 1, -1, 2, 3, 127, -128, 64, -65]), fmt)
    assert list(pos[:, 0]) == [0, 0, 0, 1, 1, 6, 7, 6, 6]
    assert list(zero[:, 0]) == [True] + [False] * 8
    assert list(neg) == [False, False, True, False, False, False, True, False, True]
    fmt_n = fmt_of("tiny", dlzs_rounding="nearest")
    got = dlzs.lz_encode(np.array([3, 5, 6, 127, -128, 96]), fmt_n)[2][:, 0]
    assert list(got) == [2, 2, 3, 7, 7, 7]
    # two terms: the residual's leading one; rounding on the second term only
    fmt_2 = fmt_of("tiny", dlzs_terms=2, dlzs_rounding="nearest")
    neg, zero, pos = dlzs.lz_encode(np.array([0, 1, 3, 7, 13, 127, -128, -96]), fmt_2)
    assert zero.tolist() == [[True, True], [False, True]] + [[False, False]] * 4 + \
        [[False, True], [False, False]]
    assert pos.tolist() == [[0, 0], [0, 0], [1, 0], [2, 2], [3, 2], [6, 6], [7, 0], [6, 5]]


def test_dlzs_key_truncation_keeps_top_bits():
    fmt = fmt_of("tiny", dlzs_k_bits=4)           # data 8 bits: drop 4 low magnitude bits
    k = np.array([0, 15, 16, -17, 127, -128, -1])
    assert list(dlzs.key_operand(k, fmt)) == [0, 0, 1, -1, 7, -8, 0]


def test_row_window_keeps_top_positions():
    fmt = fmt_of("tiny", dlzs_shift_bits=2)       # 4 positions below the row's top
    q = np.array([[100, -40, 9, 8, 7, 0, 1, -128], [3, 1, 0, 0, 0, 0, 0, 2]])
    neg, dropped, shift, base = dlzs.query_code(q, fmt)
    assert list(base) == [4, 0]                   # top pos 7 -> base 4; top pos 1 -> base 0
    assert list(dropped[0, :, 0]) == [False, False, True, True, True, True, True, False]
    assert list(shift[0, [0, 1, 7], 0]) == [2, 1, 3] and list(shift[1, [0, 1, 7], 0]) == [1, 0, 1]
    # second terms (of 100 and -40: 36 and 8): kept only when at or above the base
    neg, dropped, shift, base = dlzs.query_code(q, fmt_of("tiny", dlzs_shift_bits=2,
                                                          dlzs_terms=2))
    assert list(base) == [4, 0]
    assert list(dropped[0, :, 1]) == [False, True, True, True, True, True, True, True]
    assert list(shift[0, [0], 1]) == [1] and list(dropped[1, [0, 1, 7], 1]) == [False, True, True]


def brute_terms(a: int, terms: int, rounding: str) -> list[int]:
    """Positions of the powers of two of |a| (Python ints): leading ones, last one rounded."""
    mag, out = abs(a), []
    for t in range(terms):
        if not mag:
            break
        p = mag.bit_length() - 1
        if t == terms - 1 and rounding == "nearest" and p >= 1:
            p += (mag >> (p - 1)) & 1
        out.append(p)
        mag -= 1 << p
    return out


@pytest.mark.parametrize("name, over", [("tiny", {}), ("default", {}),
                                        ("default", {"dlzs_shift_bits": 4, "dlzs_k_bits": 16}),
                                        ("tiny", {"dlzs_rounding": "nearest"}),
                                        ("tiny", {"dlzs_terms": 2}),
                                        ("default", {"dlzs_terms": 2, "dlzs_rounding": "nearest",
                                                     "dlzs_shift_bits": 3})])
def test_dlzs_predict_equals_elementwise_sum(name, over, seed):
    fmt = fmt_of(name, **over)
    rng = np.random.default_rng(seed)
    lim = 1 << (fmt.data_bits - 1)
    q = rng.integers(-lim, lim, (7, fmt.cfg.head_dim))
    k = rng.integers(-lim, lim, (9, fmt.cfg.head_dim))
    q[0] = -lim
    q[1, :3] = [lim - 1, -(lim - 1), 3]
    k[0] = 0
    want = np.zeros((7, 9), np.int64)
    for i in range(7):
        pos = [brute_terms(int(a), fmt.cfg.dlzs_terms, fmt.cfg.dlzs_rounding) for a in q[i]]
        base = max(max(p[0] for p in pos if p) - (fmt.dlzs_window - 1), 0)
        for j in range(9):
            for d in range(fmt.cfg.head_dim):
                a, b = int(q[i, d]), int(k[j, d])
                for p in pos[d]:
                    if p >= base:
                        term = (abs(b) >> fmt.dlzs_k_shift) << p
                        want[i, j] += term if (a < 0) == (b < 0) else -term
    got = dlzs.predict(q, k, fmt)
    assert np.array_equal(got, want)
    assert np.abs(got).max() < 1 << (fmt.pred_bits - 1)



@pytest.mark.parametrize("fields", [
    {"data_bits": 16, "dlzs_k_bits": 10, "dlzs_shift_bits": 3, "dlzs_terms": 1},
    {"data_bits": 16, "dlzs_k_bits": 16, "dlzs_shift_bits": 3, "dlzs_terms": 2,
     "dlzs_rounding": "nearest"},
    {"data_bits": 16, "dlzs_k_bits": 12, "dlzs_shift_bits": 4, "dlzs_terms": 2},
    {"data_bits": 8, "dlzs_k_bits": 8, "dlzs_shift_bits": 2, "dlzs_terms": 2,
     "dlzs_rounding": "nearest"},
])
def test_predicted_sum_and_shift_fit(fields):
    """The predictor's two parts, the sum before the row base shift and the base, fit
    pred_sum_bits and pred_shift_max for the most extreme rows (every element of q and k at
    the format's minimum or maximum, and rows whose largest element sets each base)."""
    cfg = StarConfig(**{**preset("default").to_dict(), **fields})
    fmt = cfg.formats
    d = cfg.head_dim
    rows = [np.full(d, v) for v in (fmt.qmin, fmt.qmax)]
    rows += [np.r_[np.full(d - 1, fmt.qmax >> s), fmt.qmin] for s in range(cfg.data_bits)]
    rows += [np.r_[np.full(d - 1, 3), 1 << p] for p in range(cfg.data_bits - 1)]
    q = np.array(rows)
    k = np.array([np.full(d, fmt.qmin), np.full(d, fmt.qmax)])
    w, base = dlzs.query_weight(q, fmt)
    sums = int_matmul(w, dlzs.key_operand(k, fmt).T)
    lim = 1 << (fmt.pred_sum_bits - 1)
    assert sums.min() >= -lim and sums.max() < lim
    assert abs(sums).max() >= lim // 4          # the width is not loose by more than a bit
    assert base.max() <= fmt.pred_shift_max
    assert (fmt.pred_shift_max == 0) == (fmt.pred_shift_bits == 0)
    if fmt.pred_shift_max:
        assert base.max() == fmt.pred_shift_max and fmt.pred_shift_max < 1 << fmt.pred_shift_bits
    assert np.array_equal(sums << base[:, None], dlzs.predict(q, k, fmt))


def test_mac4_operands():
    fmt = fmt_of("tiny")                          # shift 4, round half up, saturate [-8, 7]
    x = np.array([0, 7, 8, 23, 24, 127, -128, -9, -8, -7])
    assert list(mac4.to_int4(x, fmt)) == [0, 0, 1, 1, 2, 7, -8, -1, 0, 0]


# ---- SADS -------------------------------------------------------------------------------------

def sads_brute(scores, valid, tile, k, r):
    """Independent per-row, per-tile reference with Python sorting."""
    sq, sk = scores.shape
    rows = []
    for i in range(sq):
        tiles = []
        for j0 in range(0, sk, tile):
            cand = [(int(scores[i, j]), j) for j in range(j0, min(j0 + tile, sk)) if valid[i, j]]
            if cand:
                m = max(s for s, _ in cand)
                cand = [(s, j) for s, j in cand if r < 0 or s >= m - r]
            best = sorted(cand, key=lambda t: (-t[0], t[1]))[:k]
            tiles.append([j for _, j in best] + [-1] * (k - len(best)))
        rows.append(tiles)
    return np.array(rows)


@pytest.mark.parametrize("k, r, causal, sk", [(4, -1, False, 64), (4, 5, True, 64),
                                               (1, 0, False, 40), (16, 3, True, 37),
                                               (3, 1000, False, 50)])
def test_sads_equals_brute_force(k, r, causal, sk, seed):
    fmt = fmt_of("tiny")                          # tile 16
    rng = np.random.default_rng(seed)
    sq = 12 if not causal else sk
    scores = rng.integers(-12, 12, (sq, sk))      # narrow range: many ties
    scores[0] = 5                                 # a row of equal scores
    scores[1, :] = -(1 << 15)                     # most negative predicted value
    valid = (np.arange(sk)[None] <= np.arange(sq)[:, None]) if causal else np.ones((sq, sk), bool)
    got = sads.select(scores, fmt, k_tile=k, radius=r, valid=valid)
    assert np.array_equal(got, sads_brute(scores, valid, 16, k, r))


def test_sads_radius_zero_keeps_only_maxima_and_off_keeps_k():
    fmt = fmt_of("tiny")
    scores = np.array([[3, 9, 1, 9, 2, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]])
    assert list(sads.select(scores, fmt, k_tile=4, radius=0)[0, 0]) == [1, 3, 6, -1]
    assert list(sads.select(scores, fmt, k_tile=4, radius=-1)[0, 0]) == [1, 3, 6, 7]
    assert list(sads.select(scores, fmt, k_tile=4, radius=1)[0, 0]) == [1, 3, 6, 7]


def test_selection_mask_and_dense_order():
    fmt = fmt_of("tiny")
    valid = np.arange(20)[None] <= np.arange(20)[:, None]
    order = sads.dense_order(valid, fmt)
    assert order.shape == (20, 2, 16)
    assert list(order[3, 0, :5]) == [0, 1, 2, 3, -1] and np.all(order[3, 1] == -1)
    assert list(order[19, 1, :5]) == [16, 17, 18, 19, -1]
    assert np.array_equal(sads.selection_mask(order, 20), valid)


# ---- exp2, reciprocal, score scale, quantisation ----------------------------------------------

@pytest.mark.parametrize("name", ["tiny", "default"])
def test_exp2_within_three_quarter_lsb_exhaustive(name):
    fmt = fmt_of(name)
    u = np.arange(fmt.u_max + 1)
    p = exp2.exp2_neg(u, fmt)
    exact = 2.0 ** (fmt.exp_out_bits - u / (1 << fmt.exp_frac_bits))
    assert np.all(np.abs(p - exact) <= 0.75)
    assert p[0] == fmt.p_one and p[-1] == 0 and np.all(np.diff(p) <= 0)
    assert p.max() < 1 << fmt.p_bits


def test_exponent_rounds_and_saturates():
    fmt = fmt_of("tiny")                          # E = 6
    mant, shift = 3 << 10, 12 + 6                 # c = 3·2**-8
    t = np.array([0, 1, 85, 86, 10**9])
    u = exp2.exponent(t, mant, shift, fmt)
    want = [min(math.floor(x * 3 / 4 + 0.5), fmt.u_max) for x in [0, 1, 85, 86, 10**9]]
    assert list(u) == want
    with pytest.raises(ValueError):
        exp2.exponent(np.array([-1]), mant, shift, fmt)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_reciprocal_is_floor_of_exact(name):
    fmt = fmt_of(name)
    l = np.concatenate([np.arange(1, 1 << 16), (1 << np.arange(16, fmt.l_bits)) - 1,
                        1 << np.arange(16, fmt.l_bits)])
    r, shift = recip.reciprocal(l, fmt)
    num = np.int64(1) << shift
    assert np.all(r * l <= num) and np.all((r + 1) * l > num)
    assert np.all(r >= 1 << (fmt.recip_bits - 1)) and np.all(r <= 1 << fmt.recip_bits)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_normalize_error_bound(name, seed):
    fmt = fmt_of(name)
    rng = np.random.default_rng(seed)
    l = rng.integers(1, 1 << (fmt.l_bits - 1), 5000)
    o = (rng.uniform(-1, 1, (5000, 1)) * l[:, None] * fmt.qmax).astype(np.int64)
    out = recip.normalize(o, l, fmt)
    exact = o / l[:, None]
    bound = 0.5 + np.abs(exact) * 2.0 ** (1 - fmt.recip_bits) + 1e-9
    assert np.all(np.abs(out - exact) <= bound)
    assert recip.normalize(np.array([[10**12]]), np.array([1]), fmt)[0, 0] == fmt.qmax  # saturates


@pytest.mark.parametrize("c", [1e-12, 3.3e-6, 0.0123, 1.0, 7.9])
def test_score_scale_encoding(c):
    mant, shift = encode_score_scale(c, 16, 8)
    assert 1 << 15 <= mant < 1 << 16 and 8 <= shift <= 63
    assert abs(mant * 2.0 ** -shift / c - 1) <= 2.0 ** -16


@pytest.mark.parametrize("c", [0.0, -1.0, float("nan"), 300.0, 1e-30])
def test_score_scale_out_of_range(c):
    with pytest.raises(ValueError, match="score scale must be"):
        encode_score_scale(c, 16, 8)


def test_quantize_symmetric():
    xq, s = quant.quantize(np.array([-2.0, 0.5, 1.0, 0.0]), 8)
    assert s == 2.0 / 127 and list(xq) == [-127, 32, 64, 0]
    assert quant.quantize(np.zeros(3), 8)[1] == 1.0
    with pytest.raises(ValueError, match="NaN"):
        quant.quantize(np.array([np.nan]), 8)


def test_intops_exactness_guard():
    assert list(bit_length(np.array([0, 1, 2, 3, 4, 2**40]))) == [0, 1, 2, 2, 3, 41]
    big = np.full((1, 4), 1 << 26)
    with pytest.raises(ValueError, match="too wide"):
        int_matmul(big, big.T)
