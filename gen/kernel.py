"""The attention kernel ``star quality`` puts in a model's layers: one layer of grouped-query
attention under a selection method and a numerics mode, computed by the golden models.

Methods (how each query row's keys are chosen, per tile of ``cfg.tile`` keys):

    dense   every visible key (no selection)
    exact   the exact per-tile top-k: the float scores' k best (the oracle selection)
    dlzs1   the DLZS predictor with one term per query element + SADS
    dlzs2   the same with two terms (``dlzs_terms = 2``)
    mac4    a 4-bit multiply predictor (Sanger-style) + the same SADS

Modes (what is computed over the chosen keys):

    selection  exact float64 softmax attention restricted to the chosen keys: what the selection
               alone costs (the predictors see the config's fixed-point Q/K, as on the core)
    bitexact   the core's integer numerics end to end (``golden.pipeline.run``: Q/K/V quantised
               per head, predictor, SADS, SU-FA with exp2, max assurance and the reciprocal),
               dequantised: what the generated hardware outputs. ``exact`` ranks the keys by
               the integer q·k of the quantised data (the exact top-k of what the core sees)

Masks: causal (or not) as the model's layer says, with the layer's sliding window as the keys'
valid mask (golden.reference.causal_mask). The core's MODE register has causal masking only; a
sliding layer's window is applied here as the valid mask of SADS and SU-FA (docs/decisions.md).
The radius is the config's (``radius``, predicted-score LSBs).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from star.golden import pipeline, reference, sads
from star.spec.config import StarConfig
from star.spec.formats import Formats

__all__ = ["METHODS", "SELECTORS", "MODES", "LABELS", "method_formats", "oracle_rank",
           "predicted", "selection", "head", "layer"]

SELECTORS = ("exact", "dlzs1", "dlzs2", "mac4")
METHODS = ("dense",) + SELECTORS
MODES = ("selection", "bitexact")
HEAD_THREADS = 2      # heads of a layer computed at once
LABELS = {"dense": "dense", "exact": "exact per-tile top-k", "dlzs1": "DLZS, 1 term",
          "dlzs2": "DLZS, 2 terms", "mac4": "4-bit multiply"}


def method_formats(cfg: StarConfig, method: str) -> Formats:
    """The formats a method's predictor runs in: the config's, with ``dlzs_terms`` set by
    ``dlzs1`` / ``dlzs2``."""
    if method in ("dlzs1", "dlzs2"):
        return Formats(dataclasses.replace(cfg, dlzs_terms=int(method[-1])))
    return cfg.formats


def oracle_rank(s, valid) -> np.ndarray:
    """Each key's rank among its row's visible float scores ``s`` (higher score, higher rank;
    ties to the lower index): scores SADS selects the exact per-tile top-k from."""
    order = np.argsort(np.where(valid, s, -np.inf), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
    return rank


def predicted(h: pipeline.HeadInputs, cfg: StarConfig, method: str, s=None) -> np.ndarray:
    """The integer scores SADS ranks keys by under ``method`` (a SELECTORS entry) for a prepared
    head; ``exact`` needs the float scores ``s`` [Sq, Sk]."""
    if method == "exact":
        return oracle_rank(s, h.valid)
    predictor = "mac4" if method == "mac4" else "dlzs"
    return pipeline.predicted_scores(h, method_formats(cfg, method), predictor)


def selection(scores, cfg: StarConfig, method: str, valid, k_tile: int) -> np.ndarray:
    """The SADS selection [Sq, n_tiles, k_tile] of a method's ``scores``: the config's radius
    for the predictors, none for ``exact`` (its scores are ranks)."""
    radius = -1 if method == "exact" else cfg.radius
    return sads.select(scores, cfg.formats, k_tile=k_tile, radius=radius, valid=valid)


def head(cfg: StarConfig, method: str, mode: str, k_tile: int, q, k, v, *, scale: float,
         causal: bool, window: int | None = None, record=None) -> np.ndarray:
    """One head's attention output [Sq, d] (float64) for float q [Sq, d], k/v [Sk, d].
    ``record``: in bitexact mode, called with (golden.sufa.Result, selection) of the head (what
    the cycle model needs; from a worker thread when :func:`layer` runs the head)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    fmt = cfg.formats
    h = pipeline.prepare(fmt, q, k, v, causal=causal, softmax_scale=scale, window=window)
    if mode == "bitexact":
        if method == "dense":
            res, sel = pipeline.run(h, fmt, dense=True)
        else:
            mfmt = method_formats(cfg, method)
            predictor = {"exact": "exact", "mac4": "mac4"}.get(method, "dlzs")
            res, sel = pipeline.run(h, mfmt, predictor=predictor, k_tile=k_tile)
        if record is not None:
            record(res, sel)
        return res.out * h.scale_v
    if method == "dense":
        return reference.attention_head(q, k, v, scale, h.valid)
    s = np.asarray(q, np.float64) @ np.asarray(k, np.float64).T if method == "exact" else None
    sel = selection(predicted(h, cfg, method, s), cfg, method, h.valid, k_tile)
    return reference.attention_head(q, k, v, scale, sads.selection_mask(sel, h.k.shape[0]))


def layer(cfg: StarConfig, method: str, mode: str, k_tile: int, q, k, v, *, scale: float,
          causal: bool, window: int | None = None, record=None) -> np.ndarray:
    """Grouped-query attention of one layer: q [Hq, Sq, d], k/v [Hkv, Sk, d] (query head h
    reads kv head h // (Hq / Hkv)); returns [Hq, Sq, d] float64 (``record``: see head)."""
    group = q.shape[0] // k.shape[0]

    def one(i):
        return head(cfg, method, mode, k_tile, q[i], k[i // group], v[i // group], scale=scale,
                    causal=causal, window=window, record=record)
    # heads are independent and numpy releases the GIL in its array work: two at a time
    # (1.2-1.45x on 2 cores); the results are the same arrays in head order
    with ThreadPoolExecutor(min(HEAD_THREADS, q.shape[0])) as pool:
        return np.stack(list(pool.map(one, range(q.shape[0]))))
