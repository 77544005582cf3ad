"""Pairs of partial softmax states to test the merge unit (``hw/merge.py``), and their merges.

Two sources, each a *batch* (one score scale, a list of (a, b) pairs of ``partial_layout`` dicts):

* :func:`job_batch`: the real thing. A random small job (``golden.pipeline``), its key tiles
  sharded over 2-4 cores at random cuts (a shard may own no tile, and causal rows own no key of
  the later shards: states without ``has``), ``golden.spatial.partial_state`` per core, and the
  pairs of the merge chain (p_c, acc) exactly as ``golden.spatial.merge_chain`` forms them.
* :func:`random_batch`: draws within the widths: every has combination (including neither),
  equal maxima, max differences from 1 to the full score range (factors from ~1.0 down to 0),
  maxima at the ends of the score range, l and o elements up to the ends of their widths, and
  junk m/l/o on sides without ``has`` (the model ignores them, except m when neither has one).
  Every third pair gets rounding ties: where the smaller-max side's factor f is strictly
  between 0 and 1.0, its l and every other o element are set to values x with x·f exactly
  halfway between two multiples of 2**P (the only place round half up differs from half down).
  Elements whose merged value would not fit the width are halved on both sides until it does.

:func:`golden_merge` returns the model's merged states; :func:`check_fits` asserts they fit the
port widths (so the RTL is never asked to wrap).
"""

from __future__ import annotations

import numpy as np

from star.golden import pipeline, sads
from star.golden.exp2 import weight
from star.golden.spatial import Partial, merge, partial_state, shard_tiles
from star.spec.formats import SCALE_SHIFT_MAX

__all__ = ["job_batch", "random_batch", "golden_merge", "check_fits", "to_partial",
           "factor_classes"]


def to_partial(states) -> Partial:
    """Stack a list of state dicts {has, m, l, o} into a golden ``Partial`` (one row each)."""
    return Partial(np.array([bool(s["has"]) for s in states]),
                   np.array([s["m"] for s in states], np.int64),
                   np.array([s["l"] for s in states], np.int64),
                   np.array([s["o"] for s in states], np.int64).reshape(len(states), -1))


def _rows(p: Partial) -> list[dict]:
    return [{"has": int(p.has[i]), "m": int(p.m[i]), "l": int(p.l[i]),
             "o": [int(x) for x in p.o[i]]} for i in range(len(p.has))]


def golden_merge(pairs, mant: int, shift: int, fmt) -> list[dict]:
    """The model's merge of every (a, b) pair, as state dicts."""
    a = to_partial([x for x, _ in pairs])
    b = to_partial([y for _, y in pairs])
    return _rows(merge(a, b, mant, shift, fmt))


def _fits(s: dict, fmt) -> tuple[bool, np.ndarray]:
    """Whether l fits and which o elements fit the port widths."""
    lo, hi = -(1 << (fmt.o_bits - 1)), (1 << (fmt.o_bits - 1)) - 1
    o = np.array(s["o"], np.int64)
    return 0 <= s["l"] < (1 << fmt.l_bits), (o >= lo) & (o <= hi)


def check_fits(states, fmt) -> None:
    """Assert every state (inputs or merged results) fits ``partial_layout``'s widths."""
    for i, s in enumerate(states):
        l_ok, o_ok = _fits(s, fmt)
        m_ok = -(1 << (fmt.score_bits - 1)) <= s["m"] < (1 << (fmt.score_bits - 1))
        assert l_ok and o_ok.all() and m_ok, f"state {i} does not fit the widths: {s}"


def job_batch(cfg, rng, *, rows: int = 6) -> tuple[int, int, list]:
    """Return (mant, shift, pairs) from a random small job sharded over 2-4 cores."""
    fmt = cfg.formats
    d, tile = cfg.head_dim, cfg.tile
    sk = tile * int(rng.integers(2, 5)) - int(rng.integers(0, tile // 2))
    causal = bool(rng.integers(0, 2))
    dense = bool(rng.integers(0, 4) == 0)
    sq = sk if causal else rows           # square causal: early rows see no key of later shards
    spread = float(rng.choice([0.5, 2.0, 6.0]))           # a peaky softmax has large max gaps
    qf, kf, vf = (spread * rng.standard_normal((n, d)) for n in (sq, sk, sk))
    h = pipeline.prepare(fmt, qf, kf, vf, causal=causal, softmax_scale=d ** -0.5)
    sel = (sads.dense_order(h.valid, fmt) if dense else
           sads.select(pipeline.predicted_scores(h, fmt, "dlzs"), fmt, k_tile=cfg.k_tile,
                       radius=-1, valid=h.valid))
    n_tiles = sel.shape[1]
    cores = int(rng.integers(2, 5))
    if rng.integers(0, 2):
        shards = shard_tiles(n_tiles, cores)
    else:           # random contiguous cuts (some shards empty)
        cuts = np.sort(rng.integers(0, n_tiles + 1, cores - 1))
        edges = [0, *cuts.tolist(), n_tiles]
        shards = [range(edges[c], edges[c + 1]) for c in range(cores)]
    parts = []
    for tiles in shards:
        shard = np.full_like(sel, -1)
        shard[:, tiles.start:tiles.stop] = sel[:, tiles.start:tiles.stop]
        parts.append(partial_state(h.q, h.k, h.v, shard, h.mant, h.shift, fmt, exact_max=dense))
    keep = np.sort(rng.choice(sq, min(rows, sq), replace=False))
    if causal:
        keep[0] = 0                         # row 0 sees key 0 only
    pairs = []
    acc = parts[-1]
    for p in reversed(parts[:-1]):          # the merge chain's pairs (p_c, acc)
        pairs += [(x, y) for i, (x, y) in enumerate(zip(_rows(p), _rows(acc))) if i in keep]
        acc = merge(p, acc, h.mant, h.shift, fmt)
    return h.mant, h.shift, pairs


def random_batch(cfg, rng, n: int, *, steep: bool = False) -> tuple[int, int, list]:
    """Return (mant, shift, pairs): n random pairs within the widths (see the module doc)."""
    fmt = cfg.formats
    d, sb, E = cfg.head_dim, fmt.score_bits, fmt.exp_frac_bits
    mant = int(rng.integers(1 << (fmt.scale_bits - 1), 1 << fmt.scale_bits))
    # score scale c = mant·2**-shift: ordinary, c < 2**(1-E) (a score difference below ~2**(E+4)
    # keeps a factor above 0); steep, from shift = E (c up to 2**scale_bits: most factors underflow)
    lo_shift = E if steep else min(SCALE_SHIFT_MAX, fmt.scale_bits - 1 + E)
    shift = int(rng.integers(lo_shift, min(SCALE_SHIFT_MAX, lo_shift + sb // 2) + 1))
    m_lo, m_hi = -(1 << (sb - 1)), (1 << (sb - 1)) - 1
    l_max, o_max = (1 << fmt.l_bits) - 1, (1 << (fmt.o_bits - 1)) - 1

    def draw_l(kind):
        if kind == 0:
            return int(rng.integers(0, 1 << (fmt.l_bits - 1)))
        if kind == 1:
            return l_max
        return int(rng.integers(0, 1 << fmt.p_bits))      # small, a few keys

    def draw_o(kind):
        if kind == 0:
            return rng.integers(-(o_max >> 1), (o_max >> 1) + 1, d)
        if kind == 1:
            return rng.choice(np.array([-o_max - 1, -o_max, o_max, 0, 1, -1]), d)
        few = 1 << (fmt.p_bits + fmt.data_bits)          # a few keys' worth
        return rng.integers(-few, few, d)

    pairs = []
    for _ in range(n):
        has = [(1, 1), (1, 1), (1, 1), (1, 0), (0, 1), (0, 0)][int(rng.integers(0, 6))]
        kind = int(rng.integers(0, 5))
        if kind == 0:                                   # equal maxima
            ma = mb = int(rng.integers(m_lo, m_hi + 1))
        elif kind == 1:                                 # the two ends of the score range
            ma, mb = m_lo, m_hi
        else:                                           # log-uniform difference 1 .. 2**sb - 1
            diff = min(int(2.0 ** rng.uniform(0, sb)), m_hi - m_lo)
            base = int(rng.integers(m_lo, m_hi - diff + 1))
            ma, mb = base, base + diff
        if rng.integers(0, 2):
            ma, mb = mb, ma
        lk, ok = rng.integers(0, 3, 2), rng.integers(0, 3, 2)
        a = {"has": has[0], "m": ma, "l": draw_l(lk[0]), "o": draw_o(ok[0]).tolist()}
        b = {"has": has[1], "m": mb, "l": draw_l(lk[1]), "o": draw_o(ok[1]).tolist()}
        pairs.append((a, b))
    for a, b in pairs[::3]:
        _make_ties(a, b, mant, shift, fmt, rng)
    # halve both sides of any element whose merged value would not fit, until all do
    for _ in range(2 * max(fmt.o_bits, fmt.l_bits)):
        out = golden_merge(pairs, mant, shift, fmt)
        bad = False
        for (a, b), r in zip(pairs, out):
            l_ok, o_ok = _fits(r, fmt)
            if not l_ok:
                a["l"], b["l"], bad = a["l"] // 2, b["l"] // 2, True
            for e in np.flatnonzero(~o_ok):
                a["o"][e], b["o"][e], bad = a["o"][e] // 2, b["o"][e] // 2, True
        if not bad:
            break
    return mant, shift, pairs


def _make_ties(a, b, mant, shift, fmt, rng) -> None:
    """Where the side with the smaller max has a factor strictly between 0 and 1.0, set its l
    and half of its o elements to values x with x·f exactly halfway between two multiples of
    2**P (where round half up and half down differ)."""
    if not (a["has"] and b["has"]) or a["m"] == b["m"]:
        return
    small = a if a["m"] < b["m"] else b
    f = int(weight(abs(a["m"] - b["m"]), mant, shift, fmt))
    if f in (0, fmt.p_one):
        return
    k = (f & -f).bit_length() - 1                 # f = 2**k · odd, k < P
    mod = 1 << (fmt.exp_out_bits - k)
    base = ((1 << (fmt.exp_out_bits - 1 - k)) * pow(f >> k, -1, mod)) % mod
    span = max(1, (1 << (fmt.l_bits - 2)) // mod)

    def tie(signed):
        x = base + mod * int(rng.integers(-span if signed else 0, span))
        assert (x * f) % fmt.p_one == fmt.p_one // 2
        return x

    small["l"] = tie(False)
    for e in range(0, len(small["o"]), 2):
        small["o"][e] = tie(True)


def factor_classes(pairs, mant: int, shift: int, fmt) -> dict:
    """Count the pairs by the factor of the side with the smaller max: 'one' (equal maxima),
    'between', 'zero' (underflow); the has combinations 'ab', 'a', 'b', 'none'; and 'ties', the
    rescaled elements x·f exactly halfway between two multiples of 2**P."""
    counts = dict.fromkeys(["one", "between", "zero", "ab", "a", "b", "none", "ties"], 0)
    for a, b in pairs:
        key = {(1, 1): "ab", (1, 0): "a", (0, 1): "b", (0, 0): "none"}[(a["has"], b["has"])]
        counts[key] += 1
        if key == "ab":
            w = int(weight(abs(a["m"] - b["m"]), mant, shift, fmt))
            counts["one" if w == fmt.p_one else "zero" if w == 0 else "between"] += 1
            small = a if a["m"] < b["m"] else b
            counts["ties"] += sum((x * w) % fmt.p_one == fmt.p_one // 2
                                  for x in [small["l"], *small["o"]])
    return counts
