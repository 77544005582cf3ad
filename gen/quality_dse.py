"""``star dse --objective perplexity``: the design-space search scored on the model itself.

SOFA's DSE picks each layer's top-k to keep the model's loss; ``star dse``'s default objective
uses a per-layer stand-in (relative attention error). Here a trial runs the model: the texts'
token windows with STAR (bit-exact, the config's DLZS predictor) in every attention layer at
the trial's tile and per-layer k, and scores

* error: Δ perplexity as a fraction (perplexity / the model's own dense perplexity − 1);
* cycles and bytes: the calibrated cycle model (gen/cycle_model.py) of every head of every layer
  of every window, from that same run's selections and SU-FA events (golden.core
  block_schedule + add_events), one core job per head as the core runs them (causal; a
  sliding layer's window narrows the selection only).

:class:`ModelEvaluator` has the interface of ``gen.dse.Evaluator`` (``design``, ``dense``,
``work``, ``evaluations``), so the study, its uniform baseline and its report are the same
code. Every design is cached in the evaluator (a rerun of the study starts anew).
"""

from __future__ import annotations

import hashlib
import math
import threading

from star.golden import core as gcore

from . import cycle_model
from .dse import area_proxy, hardware, k_of
from .lm import StarAttention
from .quality import open_model, windows_loss

__all__ = ["ModelWorkload", "ModelEvaluator", "evaluator"]


class ModelWorkload:
    """The layers of a model and the token windows it runs on (what gen.dse.Workload is for
    npz files): ``names`` per layer, ``seq_len`` (the longest window), ``digest``."""

    def __init__(self, lm, texts, model_sha: str):
        kinds = getattr(lm.config, "layer_types", None) or \
            ["full_attention"] * lm.config.num_hidden_layers
        self.names = [f"layer {i} ({kind.replace('_attention', '')})"
                      for i, kind in enumerate(kinds)]
        self.windows = [list(w) for t in texts for w in t.windows]
        self.seq_len = max(len(w) for w in self.windows)
        self.digest = hashlib.sha256((model_sha + "".join(t.sha256 for t in texts)).encode()
                                     + repr([len(w) for w in self.windows]).encode()
                                     ).hexdigest()[:16]


class ModelEvaluator:
    """Scores designs (tile, lanes, per-layer percentages) by running the model."""

    #: a finished trial holds all a design's figures (gen.dse.uniform_baseline reuses it)
    FROM_TRIAL = True

    def __init__(self, cfg, lm, texts, model_sha: str, progress):
        self.cfg, self.lm, self.progress = cfg, lm, progress
        self.work = ModelWorkload(lm, texts, model_sha)
        self.evaluations = 0
        self._cache = {}
        with progress.step(f"model's own dense attention ({len(self.work.windows)} windows)"):
            self._base = windows_loss(lm, self.work.windows)

    def _run(self, tile: int, lanes: int, ks: tuple[int, ...] | None) -> dict:
        """Δ perplexity, cycles and bytes with STAR in every layer (ks None: dense mode)."""
        key = (tile, lanes, ks)
        if key in self._cache:
            return self._cache[key]
        self.evaluations += 1
        hw = hardware(self.cfg, tile, lanes, max(ks) if ks else tile, self.work.seq_len)
        totals = {"cycles": 0, "bytes_read": 0, "bytes_written": 0}
        lock = threading.Lock()          # a layer's heads run in threads (gen.kernel.layer)

        def record(layer, causal, res, sel):
            q_len = seq_len = sel.shape[0]
            blocks = gcore.block_schedule(hw, sel, q_len, seq_len, causal)
            gcore.add_events(hw, blocks, res)
            m = cycle_model.job_cycles(hw, blocks, seq_len, dense=ks is None)
            with lock:
                for name in totals:
                    totals[name] += m[name]
        n_layers = len(self.work.names)
        layers = {i: (tile if ks is None else ks[i]) for i in range(n_layers)}
        method = "dense" if ks is None else f"dlzs{self.cfg.dlzs_terms}"
        nll, n = windows_loss(self.lm, self.work.windows,
                              StarAttention(hw, method, "bitexact", layers, record=record))
        base_nll, base_n = self._base
        out = {"error": math.exp(nll / n - base_nll / base_n) - 1.0, **totals}
        self._cache[key] = out
        return out

    def design(self, tile: int, lanes: int, percents: list[int]) -> dict:
        """The whole model at one design (the keys of gen.dse.Evaluator.design)."""
        ks = tuple(k_of(p, tile) for p in percents)
        r = self._run(tile, lanes, ks)
        hw = hardware(self.cfg, tile, lanes, max(ks), self.work.seq_len)
        return {"tile": tile, "lanes": lanes, "percents": list(percents), "k_tile": list(ks),
                "error": r["error"], "mass": math.nan, "cycles": r["cycles"],
                "bytes_read": r["bytes_read"], "area": area_proxy(hw, self.cfg),
                "layers": []}

    def dense(self, tile: int, lanes: int) -> dict:
        """The core's dense FlashAttention mode in every layer (its numerics' Δ perplexity)."""
        r = self._run(tile, lanes, None)
        return {"error": r["error"], "cycles": r["cycles"], "bytes_read": r["bytes_read"]}


def evaluator(cfg, args, progress) -> ModelEvaluator:
    """Load ``--model`` and the ``--text`` windows of a ``star dse --objective perplexity`` run;
    the config follows the model's head_dim and the window (gen.quality.open_model)."""
    model, sha, used, texts = open_model(args, cfg, cfg, {}, progress)
    return ModelEvaluator(used, model, texts, sha, progress)
