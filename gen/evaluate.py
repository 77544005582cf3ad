"""``star eval``: selection quality and output error of the predictors on real attention tensors.

Input: an ``.npz`` with float arrays ``q`` [Hq, S, d], ``k`` and ``v`` [Hkv, S_k, d] (grouped-query:
query head h reads kv head h // (Hq / Hkv)) and an optional JSON string ``meta`` with ``causal``
(bool, default false), ``scale`` (float, default 1/sqrt(d)) and ``sliding_window`` (null or
the number of most recent keys a causal query sees, as in Gemma's local layers).

Per head and per k (keys kept per tile), for each selection method:
    exact   per-tile top-k of the float scores (the oracle selection)
    dlzs1   the DLZS predictor with one term per query element (the paper) + SADS (bit-exact
            golden; radius from the config or --radius)
    dlzs2   the same with two terms (``dlzs_terms = 2``)
    mac4    a 4-bit multiply predictor (Sanger-style) + the same per-tile top-k
it reports the float softmax mass the selected keys capture, the recall of the oracle selection and
the relative Frobenius error of float attention restricted to the selected keys. Two fixed-point
rows compare the bit-exact core output (STAR with the config's ``dlzs_terms``, and the dense
baseline) with float dense attention.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from star.golden import pipeline, reference, sads
from star.spec.config import StarConfig

from .kernel import LABELS, predicted
from .kernel import SELECTORS as METHODS

__all__ = ["EvalError", "load_attention", "parse_k", "evaluate", "format_table"]

class EvalError(ValueError):
    """The attention file or an eval option is unusable; the message is one line."""


def load_attention(path: str | Path, cfg: StarConfig):
    """Load and check an attention npz; return (q, k, v, causal, scale, window), the arrays as
    float64 (``window``: the causal sliding window from meta, None for none)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {name: f[name] for name in f.files}
    except FileNotFoundError:
        raise EvalError(f"{path}: no such file") from None
    except Exception as e:  # numpy raises several types for a file that is not an npz
        raise EvalError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    arrays = []
    for name in ("q", "k", "v"):
        if name not in data:
            raise EvalError(f"{path}: missing array {name!r} (need q, k, v)")
        a = data[name]
        if a.ndim != 3:
            raise EvalError(f"{path}: array {name!r} must have rank 3 [heads, seq, head_dim], "
                            f"not shape {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise EvalError(f"{path}: array {name!r} must be floating point, not {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise EvalError(f"{path}: array {name!r} holds NaN or infinity")
        arrays.append(a.astype(np.float64))
    q, k, v = arrays
    hq, sq, d = q.shape
    if k.shape != v.shape:
        raise EvalError(f"{path}: k {k.shape} and v {v.shape} must have the same shape")
    hkv, sk, dk = k.shape
    if dk != d:
        raise EvalError(f"{path}: head_dim of q ({d}) and k/v ({dk}) differ")
    if hkv == 0 or hq % hkv:
        raise EvalError(f"{path}: query heads ({hq}) must be a multiple of kv heads ({hkv})")
    if d != cfg.head_dim:
        raise EvalError(f"{path}: head_dim {d} does not match the config's head_dim="
                        f"{cfg.head_dim} (pass -P head_dim={d})")
    if not 1 <= sk <= cfg.max_seq or sq < 1:
        raise EvalError(f"{path}: key sequence length must be in [1, max_seq={cfg.max_seq}], "
                        f"not {sk}")
    meta = {}
    if "meta" in data:
        try:
            meta = json.loads(str(data["meta"]))
            assert isinstance(meta, dict)
        except (ValueError, AssertionError):
            raise EvalError(f"{path}: 'meta' must be a JSON object string") from None
    causal = meta.get("causal", False)
    scale = meta.get("scale", 1.0 / math.sqrt(d))
    if not isinstance(causal, bool):
        raise EvalError(f"{path}: meta 'causal' must be true or false, not {causal!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise EvalError(f"{path}: meta 'scale' must be a positive number, not {scale!r}")
    if causal and sk < sq:
        raise EvalError(f"{path}: causal attention needs at least as many keys ({sk}) as "
                        f"queries ({sq})")
    window = meta.get("sliding_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 1 or not causal):
        raise EvalError(f"{path}: meta 'sliding_window' must be null or a positive integer "
                        f"with causal true, not {window!r}")
    return q, k, v, causal, float(scale), window


def parse_k(text: str, tile: int) -> int:
    """Parse a k value: an integer in [1, tile] or a percentage of the tile such as ``25%``."""
    try:
        k = round(tile * float(text[:-1]) / 100) if text.endswith("%") else int(text)
    except ValueError:
        raise EvalError(f"--k must be an integer or a percentage like 25%, not {text!r}") from None
    if not 1 <= k <= tile:
        raise EvalError(f"--k must be in [1, tile={tile}] keys (or 1-100%), not {text!r}")
    return k


def _radius_lsb(radius_nats: float | None, h, scale: float, unit: float, cfg) -> int:
    """Convert a radius in logit (nat) units to predicted-score LSBs (None: the config's)."""
    if radius_nats is None:
        return cfg.radius
    return min(math.ceil(radius_nats / (h.scale_q * h.scale_k * scale * unit)),
               cfg.formats.radius_max)


#: query rows per block for which ``star eval`` reports the union of the selections
UNION_ROWS = (1, 8, 16, 128)


def union_fraction(mask, valid, rows: int, tile: int) -> float:
    """Mean over (block of ``rows`` queries, tile of keys) of the keys any query of the block
    selected / the keys of the tile visible to any of them: the V rows a core with ``rows``
    lanes reads per tile, as a share of what dense attention reads. Blocks and tiles that
    see no key are left out."""
    sq, sk = mask.shape
    nb, nt = -(-sq // rows), -(-sk // tile)

    def per_tile(a):
        a = np.pad(a, ((0, nb * rows - sq), (0, nt * tile - sk)))
        return a.reshape(nb, rows, nt, tile).any(axis=1).sum(axis=2)
    sel, vis = per_tile(mask), per_tile(valid)
    return float((sel[vis > 0] / vis[vis > 0]).mean())


def evaluate_head(cfg, q, k, v, causal, scale, ks, radius_nats=None,
                  window=None, fixed=True) -> list[dict]:
    """Evaluate one head for every k in ``ks``; return one result dict per k (``fixed``: add
    the bit-exact fixed-point rows, the slow part)."""
    fmt = cfg.formats
    h = pipeline.prepare(fmt, q, k, v, causal=causal, softmax_scale=scale, window=window)
    probs = reference.softmax_probs(q, k, scale, h.valid)
    dense_ref = probs @ v
    s = q @ k.T
    pred = {method: predicted(h, cfg, method, s) for method in METHODS}
    dlzs_radius = _radius_lsb(radius_nats, h, scale, 1.0, cfg)
    radius = {"exact": -1, "dlzs1": dlzs_radius, "dlzs2": dlzs_radius,
              "mac4": _radius_lsb(radius_nats, h, scale, 4.0 ** fmt.mac4_shift, cfg)}
    dense_fx = pipeline.run(h, fmt, dense=True)[0] if fixed else None
    rows = []
    for kt in ks:
        masks = {method: sads.selection_mask(sads.select(
            pred[method], fmt, k_tile=kt, radius=radius[method], valid=h.valid), s.shape[1])
            for method in METHODS}
        exact_mask = masks["exact"]
        result = {"k_tile": kt}
        for method in METHODS:
            mask = masks[method]
            out = reference.attention_head(q, k, v, scale, mask)
            result[method] = {
                "mass": float((probs * mask).sum(axis=1).mean()),
                "recall": float(((mask & exact_mask).sum(axis=1) / exact_mask.sum(axis=1)).mean()),
                "keys": float(mask.sum(axis=1).mean()),
                "rel_err": reference.rel_error(out, dense_ref),
                **{f"union_{r}": union_fraction(mask, h.valid, r, cfg.tile) for r in UNION_ROWS},
            }
        if not fixed:
            rows.append(result)
            continue
        star_fx, _ = pipeline.run(h, fmt, k_tile=kt, radius=dlzs_radius)
        result["fixed_star_rel_err"] = reference.rel_error(star_fx.out * h.scale_v, dense_ref)
        result["fixed_dense_rel_err"] = reference.rel_error(dense_fx.out * h.scale_v, dense_ref)
        result["rescales_per_row"] = float(star_fx.rescales.mean())
        rows.append(result)
    return rows


def evaluate(cfg: StarConfig, path, ks_text=None, radius_nats=None, fixed=True) -> dict:
    """Evaluate every head of an attention file; return a JSON-ready report (``fixed=False``:
    selection quality only, without the bit-exact fixed-point rows)."""
    q, k, v, causal, scale, window = load_attention(path, cfg)
    ks = sorted({parse_k(t, cfg.tile) for t in (ks_text or [str(cfg.k_tile)])})
    if radius_nats is not None and not radius_nats >= 0:
        raise EvalError(f"--radius must be a non-negative number of nats, not {radius_nats}")
    group = q.shape[0] // k.shape[0]
    heads = [evaluate_head(cfg, q[hh], k[hh // group], v[hh // group], causal, scale, ks,
                           radius_nats, window, fixed) for hh in range(q.shape[0])]
    mean = []
    for i, kt in enumerate(ks):
        per = [hd[i] for hd in heads]
        row = {"k_tile": kt}
        for method in METHODS:
            row[method] = {m: float(np.mean([p[method][m] for p in per]))
                           for m in per[0][method]}
        for m in ("fixed_star_rel_err", "fixed_dense_rel_err", "rescales_per_row"):
            if fixed:
                row[m] = float(np.mean([p[m] for p in per]))
        mean.append(row)
    return {"data": Path(path).name, "config": cfg.to_dict(), "causal": causal, "scale": scale,
            "sliding_window": window,
            "shape": {"q": list(q.shape), "k": list(k.shape)},
            "radius": "config" if radius_nats is None else radius_nats,
            "k_tile": ks, "heads": heads, "mean": mean}


def format_table(report: dict) -> str:
    """Render the mean rows of a report as a Markdown table (with mass and error relative to
    the exact per-tile top-k)."""
    cfg = report["config"]
    window = report.get("sliding_window")
    lines = [f"{report['data']}: q {report['shape']['q']}, k {report['shape']['k']}, "
             f"causal={report['causal']}"
             + (f", sliding window {window}" if window else "")
             + f", tile={cfg['tile']}, data_bits={cfg['data_bits']}, "
             f"radius={report['radius']} (mean over heads)", "",
             "| k/tile | method | keys/row | mass | mass / exact | recall | out rel. err | "
             "err / exact |",
             "|---|---|---|---|---|---|---|---|"]
    for row in report["mean"]:
        ex = row["exact"]
        for method in METHODS:
            r = row[method]
            lines.append(f"| {row['k_tile']} | {LABELS[method]} | {r['keys']:.1f} | "
                         f"{r['mass']:.4f} | {r['mass'] / ex['mass']:.4f} | {r['recall']:.4f} | "
                         f"{r['rel_err']:.4f} | {r['rel_err'] / ex['rel_err']:.3f} |")
        if "fixed_star_rel_err" in row:
            lines.append(f"| {row['k_tile']} | fixed-point STAR ({cfg['dlzs_terms']}-term DLZS) "
                         f"vs float dense | | | | | {row['fixed_star_rel_err']:.4f} | |")
            lines.append(f"| {row['k_tile']} | fixed-point dense vs float dense | | | | | "
                         f"{row['fixed_dense_rel_err']:.4f} | |")
    lines += ["", "Union of the selections per tile (the V rows a core with that many lanes "
              "reads, as a share of the tile's visible keys):", "",
              "| k/tile | method | " + " | ".join(f"{r} rows" for r in UNION_ROWS) + " |",
              "|---|---|" + "---|" * len(UNION_ROWS)]
    for row in report["mean"]:
        for method in METHODS:
            lines.append(f"| {row['k_tile']} | {LABELS[method]} | " + " | ".join(
                f"{row[method][f'union_{r}']:.3f}" for r in UNION_ROWS) + " |")
    return "\n".join(lines)
