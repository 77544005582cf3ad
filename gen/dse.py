"""``star dse``: Bayesian search of the tile size and per-layer top-k on real attention (Optuna).

SOFA/STAR choose each layer's tile Bc and top-k by Bayesian optimisation of accuracy loss +
sorting cost + tile-synchronisation cost. Here a *workload* is a folder of ``star eval`` npz files,
one per layer (in file-name order), and a trial is a design: the tile (a build parameter of the
core, shared by the layers: docs/decisions.md), optionally the query lanes T, and per layer the
keys kept per tile as a fraction of the tile (the runtime K_TILE register). A trial is scored
without simulation:

* error: the relative output error (Frobenius) of the bit-exact core (golden model) against float
  dense attention, averaged over the heads of a layer, then over the layers;
* cycles: the calibrated cycle model (``gen/cycle_model.py``) of every head of every layer, from
  the trial's own selections (union of selected keys per tile, SU-FA rescale events);
* area proxy: the core's Yosys cells relative to the base config, estimated per stage
  (``area_proxy``).

Objective (minimised, subject to error <= ``max_error``, Optuna's constraint):
``error + alpha · cycles / dense_cycles + beta · area``, with dense_cycles the dense
FlashAttention mode of the base config on the same workload and area relative to the base
config's.

The study lives in an Optuna RDB storage: a local SQLite file by default, or any URL such as
``postgresql://user@host/db`` shared by several machines; re-running continues it until it holds
``trials`` finished trials, its TPE sampler seeded with ``seed`` + the trials the study already
holds (so a rerun does not repeat the earlier trials' draws). Each run writes the Pareto front
(error vs cycles) of the whole study as Markdown, JSON and PNG, the uniform baseline (one tile,
one k for every layer, exhaustively) and the best design as a TOML that ``star generate -c``
accepts: the lowest objective within the error budget, or, when no trial is within it, the
lowest error, marked as outside the budget. ``timeout`` bounds the whole run: trials, then the
uniform baseline, which is marked partial when the time runs out during it. A uniform design the
study already holds as a finished trial is taken from it, not evaluated again (perplexity
studies: an error study's designs carry per-layer figures a trial does not keep). ``warm_start``
queues the uniform designs the study does not hold yet as its next trials (at most the trials
still to run), so the sampler starts from the region where one k for every layer meets the
budget instead of finding it by chance (a large per-layer space: 8^18 designs for Gemma 3).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from star.golden import core as gcore
from star.golden import dlzs, pipeline, reference, sads, sufa
from star.spec.config import ConfigError, StarConfig
from star.spec.formats import Formats

from . import cycle_model
from .evaluate import load_attention
from .progress import Progress

__all__ = ["DseError", "Workload", "Evaluator", "area_proxy", "run_study", "pareto",
           "parse_list", "DEFAULT_TILES", "DEFAULT_PERCENTS"]

DEFAULT_TILES = (16, 32, 64, 128)
DEFAULT_PERCENTS = tuple(range(5, 51, 5))        # the paper's top-k grid: 5 %, 10 %, ... 50 %


class DseError(ValueError):
    """A bad ``star dse`` input; the message is one line."""


def layer_files(folder) -> list[Path]:
    """The .npz files of a workload folder in natural order (layer 4 before layer 11)."""
    return sorted(Path(folder).glob("*.npz"), key=lambda p: [
        int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


class Workload:
    """The layers of a folder of attention npz files (``star eval`` format), one per layer."""

    def __init__(self, folder, cfg: StarConfig):
        folder = Path(folder)
        if not folder.is_dir():
            raise DseError(f"--data {folder}: no such folder (need a folder of .npz files, one "
                           "per layer)")
        self.files = layer_files(folder)
        self.names = [p.name for p in self.files]
        if not self.files:
            raise DseError(f"--data {folder}: no .npz files in the folder")
        try:        # any sequence length: hardware() sizes max_seq to the workload
            probe = replace(cfg, max_seq=65536 // cfg.tile * cfg.tile)
        except ConfigError:
            probe = cfg
        self.layers = []
        for path in self.files:
            q, k, v, causal, scale, window = load_attention(path, probe)
            group = q.shape[0] // k.shape[0]
            heads = [(q[h], k[h // group], v[h // group]) for h in range(q.shape[0])]
            self.layers.append({"name": path.name, "heads": heads, "causal": causal,
                                "window": window, "scale": scale, "q_len": q.shape[1],
                                "seq_len": k.shape[1]})
        self.seq_len = max(layer["seq_len"] for layer in self.layers)
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(path.name.encode() + path.read_bytes())
        self.digest = digest.hexdigest()[:16]


# Yosys generic cells per stage of the bench preset's star_core (lanes 8, tile 64, k_tile 16;
# docs/results/core_bench/report.md, `make bench-core`), with what each stage grows with
STAGE_CELLS = {"sufa": (125_249, "lanes"), "dlzs": (27_366, "lanes"),
               "sads": (38_342, "lanes*k_tile"), "masks": (23_448, "lanes*tile"),
               "control": (26_186, "1")}


def area_proxy(cfg: StarConfig, base: StarConfig) -> float:
    """Estimated Yosys cells of ``cfg``'s core relative to ``base``: the bench preset's cells
    per stage (STAGE_CELLS), each scaled by the ratio of what it grows with (SU-FA and DLZS by
    lanes, SADS by lanes x k_tile, the lane masks by lanes x tile, control and buffers fixed).
    1.0 = the base config. The shares are measured for d = 32, 8-bit data and assumed for
    other base configs."""
    def size(c, what):
        return {"lanes": c.lanes, "lanes*k_tile": c.lanes * c.k_tile,
                "lanes*tile": c.lanes * c.tile, "1": 1}[what]
    total = sum(cells for cells, _ in STAGE_CELLS.values())
    return sum(cells * size(cfg, what) / size(base, what)
               for cells, what in STAGE_CELLS.values()) / total


def hardware(cfg: StarConfig, tile: int, lanes: int, k_tile: int, seq_len: int) -> StarConfig:
    """The core a design needs: the base config with its tile, lanes and largest K_TILE."""
    max_seq = max(cfg.max_seq, seq_len)
    return replace(cfg, tile=tile, lanes=lanes, k_tile=k_tile,
                   max_seq=-(-max_seq // tile) * tile)


def k_of(percent: int, tile: int) -> int:
    """Keys kept per tile for a percentage of the tile (at least 1)."""
    return max(1, min(tile, round(tile * percent / 100)))


class Evaluator:
    """Scores (layer, tile, k, lanes) points of a workload; every result is cached."""

    #: a finished trial holds all a design's figures (no: design() adds per-layer ones)
    FROM_TRIAL = False

    def __init__(self, cfg: StarConfig, work: Workload):
        self.cfg, self.work = cfg, work
        self._prep, self._sel, self._layer = {}, {}, {}
        self.evaluations = 0

    def _prepared(self, i: int):
        """Per head of layer i: quantised inputs, DLZS scores, float dense output, probs."""
        if i not in self._prep:
            layer, fmt = self.work.layers[i], self.cfg.formats
            out = []
            for q, k, v in layer["heads"]:
                h = pipeline.prepare(fmt, q, k, v, causal=layer["causal"],
                                     softmax_scale=layer["scale"], window=layer["window"])
                probs = reference.softmax_probs(q, k, layer["scale"], h.valid)
                out.append((h, dlzs.predict(h.q, h.k, fmt), probs, probs @ v))
            self._prep[i] = out
        return self._prep[i]

    def _selected(self, i: int, tile: int, k: int | None):
        """Per head: (sel, sufa result, captured mass, output error); k None: dense mode."""
        key = (i, tile, k)
        if key not in self._sel:
            self.evaluations += 1
            layer = self.work.layers[i]
            fmt = Formats(hardware(self.cfg, tile, self.cfg.lanes, tile, layer["seq_len"]))
            out = []
            for h, pred, probs, ref in self._prepared(i):
                if k is None:
                    sel = sads.dense_order(h.valid, fmt)
                else:
                    sel = sads.select(pred, fmt, k_tile=k, radius=self.cfg.radius,
                                      valid=h.valid)
                res = sufa.attend(h.q, h.k, h.v, sel, h.mant, h.shift, fmt,
                                  exact_max=k is None)
                mask = sads.selection_mask(sel, h.k.shape[0])
                err = reference.rel_error(res.out * h.scale_v, ref)
                out.append((sel, res, float((probs * mask).sum(axis=1).mean()), err))
            self._sel[key] = out
        return self._sel[key]

    def layer(self, i: int, tile: int, k: int | None, lanes: int) -> dict:
        """Error, mass, modelled cycles and bytes of layer i (all heads) at one design point."""
        if (i, tile, k, lanes) not in self._layer:
            self._layer[i, tile, k, lanes] = self._layer_point(i, tile, k, lanes)
        return self._layer[i, tile, k, lanes]

    def _layer_point(self, i: int, tile: int, k: int | None, lanes: int) -> dict:
        layer = self.work.layers[i]
        hw = hardware(self.cfg, tile, lanes, tile, layer["seq_len"])
        cycles = bytes_read = bytes_written = 0
        for sel, res, _, _ in self._selected(i, tile, k):
            blocks = gcore.block_schedule(hw, sel, layer["q_len"], layer["seq_len"],
                                          layer["causal"])
            gcore.add_events(hw, blocks, res)
            m = cycle_model.job_cycles(hw, blocks, layer["seq_len"])
            cycles += m["cycles"]
            bytes_read += m["bytes_read"]
            bytes_written += m["bytes_written"]
        heads = self._selected(i, tile, k)
        return {"error": float(np.mean([h[3] for h in heads])),
                "mass": float(np.mean([h[2] for h in heads])),
                "cycles": cycles, "bytes_read": bytes_read, "bytes_written": bytes_written}

    def design(self, tile: int, lanes: int, percents: list[int]) -> dict:
        """The whole workload at one design: mean error, total cycles and bytes, area proxy."""
        ks = [k_of(p, tile) for p in percents]
        per = [self.layer(i, tile, k, lanes) for i, k in enumerate(ks)]
        hw = hardware(self.cfg, tile, lanes, max(ks), self.work.seq_len)
        return {"tile": tile, "lanes": lanes, "percents": list(percents), "k_tile": ks,
                "error": float(np.mean([p["error"] for p in per])),
                "mass": float(np.mean([p["mass"] for p in per])),
                "cycles": sum(p["cycles"] for p in per),
                "bytes_read": sum(p["bytes_read"] for p in per),
                "area": area_proxy(hw, self.cfg), "layers": per}

    def dense(self, tile: int, lanes: int) -> dict:
        """The dense FlashAttention mode of the same core on the whole workload."""
        per = [self.layer(i, tile, None, lanes) for i in range(len(self.work.layers))]
        return {"error": float(np.mean([p["error"] for p in per])),
                "cycles": sum(p["cycles"] for p in per),
                "bytes_read": sum(p["bytes_read"] for p in per)}


# ---- the study --------------------------------------------------------------------------------

def _objective(args) -> str:
    """``error`` (relative attention error per layer, npz workload) or ``perplexity``."""
    return getattr(args, "objective", "error")


def _settings(cfg, work, args) -> dict:
    """What defines a study: a rerun with other settings would mix incomparable trials."""
    model = {"objective": "perplexity", "tokens": args.tokens} \
        if _objective(args) == "perplexity" else {}      # error studies keep their old settings
    return {"config": cfg.to_dict(), "data": work.names, **model,
            "data_sha256": work.digest, "tiles": list(args.tiles), "lanes": list(args.lanes),
            "percents": list(args.percents), "alpha": args.alpha, "beta": args.beta,
            "max_error": args.max_error}


def _changed_settings(old: dict, new: dict) -> list[str]:
    """The settings in which two runs of a study differ. The config's name is not a setting:
    it changes with the way a config is given (-P overrides name it after their hash)."""
    def unnamed(settings):
        return {**settings, "config": {k: v for k, v in settings["config"].items()
                                       if k != "name"}}
    old, new = unnamed(old), unnamed(new)
    return sorted(k for k in new if old.get(k) != new[k])


def _storage(url: str):
    """Open an Optuna RDB storage; workers starting together may race to create its tables
    (the loser sees a duplicate table or key), so opening is retried a few times."""
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback
    from sqlalchemy.exc import IntegrityError, ProgrammingError
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(5):
        try:
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=20,
                              grace_period=60,
                              failed_trial_callback=RetryFailedTrialCallback(max_retry=2))
        except (IntegrityError, ProgrammingError) as e:    # e.g. "relation already exists"
            if attempt == 4:
                raise DseError(f"--storage {url}: could not create the study tables "
                               f"({str(e).splitlines()[0]})") from None
            time.sleep(1 + attempt)
        except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as e:
            raise DseError(f"--storage {url}: cannot open ({str(e).splitlines()[0]})") from None
        except Exception as e:    # sqlalchemy: an unreachable or unknown database
            raise DseError(f"--storage {url}: cannot open ({type(e).__name__}: "
                           f"{str(e).splitlines()[0]})") from None


def run_study(cfg: StarConfig, args, progress: Progress | None = None) -> Path:
    """Run (or continue) the study described by ``args`` within ``args.timeout`` seconds (None:
    no limit), each step on ``progress``; write the report; return its path."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    progress = progress or Progress("dse", cfg.name)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    if _objective(args) == "perplexity":
        from .quality_dse import evaluator
        ev = evaluator(cfg, args, progress)
        cfg = ev.cfg                      # the model's head_dim and window
    else:
        ev = Evaluator(cfg, Workload(args.data, cfg))
    work = ev.work
    for t in args.tiles:
        if t > work.seq_len:
            raise DseError(f"--tiles: {t} is longer than the workload's key sequence "
                           f"({work.seq_len})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    url = args.storage or f"sqlite:///{out / 'study.db'}"
    storage = _storage(url)
    settings = _settings(cfg, work, args)
    held = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(
        storage, include_best_trial=False)}.get(args.study, 0)
    sampler = optuna.samplers.TPESampler(
        seed=args.seed + held, n_startup_trials=min(10, args.trials), multivariate=True,
        constraints_func=lambda t: t.user_attrs.get("constraint", [1.0]))
    study = optuna.create_study(study_name=args.study, storage=storage, sampler=sampler,
                                direction="minimize", load_if_exists=True)
    old = study.user_attrs.get("settings")
    if old is None:
        study.set_user_attr("settings", settings)
    elif diff := _changed_settings(old, settings):
        raise DseError(f"--study {args.study}: the study in {url} was made with other "
                       f"settings ({', '.join(diff)}); use another --study name")
    with progress.step(f"dense baseline ({len(work.names)} layers)"):
        base = ev.dense(cfg.tile, cfg.lanes)
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    worker = f"{host}:{os.getpid()}"          # host hashed: reports name no machine

    def objective(trial):
        tile = trial.suggest_categorical("tile", list(args.tiles))
        lanes = trial.suggest_categorical("lanes", list(args.lanes))
        percents = [trial.suggest_categorical(f"k{i}", list(args.percents))
                    for i in range(len(work.names))]
        r = ev.design(tile, lanes, percents)
        value = r["error"] + args.alpha * r["cycles"] / base["cycles"] + args.beta * r["area"]
        for key in ("error", "mass", "cycles", "bytes_read", "area", "k_tile"):
            trial.set_user_attr(key, r[key])
        trial.set_user_attr("constraint", [r["error"] - args.max_error])
        trial.set_user_attr("worker", worker)
        return value

    def finished(st):
        return len(st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    done = finished(study)
    todo = max(0, args.trials - done)
    if getattr(args, "warm_start", False):
        queued = warm_start(study, args, len(work.names), cfg.lanes, todo)
        progress.note(f"--warm-start: {queued} uniform designs queued as the next trials")
    progress.note(f"study {args.study!r} in {url}: {done} finished trials, target "
                  f"{args.trials}; sampler seed {args.seed + held}; {len(work.names)} layers, "
                  f"dense baseline {base['cycles']:,} cycles")
    t0 = time.time()

    def report_trial(st, trial):
        if trial.state != TrialState.COMPLETE:
            return
        a = trial.user_attrs
        feas = "ok" if a["constraint"][0] <= 0 else "over budget"
        progress.note(f"trial {trial.number} [{finished(st)}/{args.trials}, "
                      f"{time.time() - t0:.0f} s]: tile {trial.params['tile']}, lanes "
                      f"{trial.params['lanes']}, k {a['k_tile']}: error {a['error']:.4f} "
                      f"({feas}), {a['cycles'] / base['cycles']:.3f}x dense cycles, objective "
                      f"{trial.value:.4f}")

    left = None if deadline is None else deadline - time.monotonic()
    if todo and (left is None or left > 0):
        study.optimize(objective, n_trials=todo, timeout=left,
                       callbacks=[MaxTrialsCallback(args.trials, states=(TrialState.COMPLETE,)),
                                  report_trial])
    return write_report(cfg, args, study, ev, base, url, progress, deadline)


# ---- results ----------------------------------------------------------------------------------

def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats in both error and cycles, by increasing cycles."""
    front, best = [], math.inf
    for p in sorted(points, key=lambda p: (p["cycles"], p["error"])):
        if p["error"] < best:
            front.append(p)
            best = p["error"]
    return front


def versus_uniform(points: list[dict], uniform: list[dict], budget: float) -> dict:
    """The study against the uniform baseline at equal error: at the error budget (the fastest
    design of each within it) and at every uniform Pareto point within the budget (the
    fastest study design with at most its error). ``cycles_ratio`` = uniform / study."""
    def fastest(pts, limit):
        ok = [p for p in pts if p["error"] <= limit]
        return min(ok, key=lambda p: (p["cycles"], p["error"])) if ok else None

    def pair(u, limit):
        st = fastest(points, limit)
        return None if st is None or u is None else {
            "uniform": u, "study": st, "cycles_ratio": u["cycles"] / st["cycles"],
            "bytes_ratio": u["bytes_read"] / st["bytes_read"]}
    return {"at_budget": pair(fastest(uniform, budget), budget),
            "matched": [m for m in (pair(u, u["error"]) for u in pareto(uniform)
                                    if u["error"] <= budget) if m]}


def warm_start(study, args, n_layers: int, lanes: int, todo: int) -> int:
    """Queue the uniform designs the study holds in no trial (finished, running or queued) as
    its next trials, at most ``todo``; return how many were queued. Not when the base lanes are
    outside the searched lanes (a uniform design would not be a point of the search space)."""
    if lanes not in args.lanes:
        return 0
    held = {(t.params.get("tile"), t.params.get("lanes"),
             tuple(t.params.get(f"k{i}") for i in range(n_layers)))
            for t in study.get_trials(deepcopy=False)}
    new = [(t, p) for t in args.tiles for p in args.percents
           if (t, lanes, (p,) * n_layers) not in held][:todo]
    for t, p in new:
        study.enqueue_trial({"tile": t, "lanes": lanes, **{f"k{i}": p for i in range(n_layers)}})
    return len(new)


def uniform_baseline(ev: Evaluator, args, progress: Progress, deadline: float | None = None,
                     held: list[dict] = ()) -> tuple[list[dict], bool]:
    """Every (tile, k) with the same k for every layer at the base lanes, one step per tile;
    a design among the study's finished trials ``held`` is taken from it (when the evaluator's
    designs hold nothing more: ``FROM_TRIAL``); stops at ``deadline`` (time.monotonic()).
    Returns the designs and whether that is all of them."""
    n = len(ev.work.names)
    known = {(p["tile"], p["lanes"], tuple(p["percents"])): p
             for p in held} if ev.FROM_TRIAL else {}
    out = []
    for t in args.tiles:
        with progress.step(f"uniform baseline, tile {t}: {len(args.percents)} designs"):
            for p in args.percents:
                trial = known.get((t, ev.cfg.lanes, (p,) * n))
                if trial is not None:
                    out.append({key: trial[key] for key in (
                        "tile", "lanes", "percents", "k_tile", "error", "mass", "cycles",
                        "bytes_read", "area")} | {"layers": []})
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    return out, False
                out.append(ev.design(t, ev.cfg.lanes, [p] * n))
    return out, True


def write_report(cfg, args, study, ev, base, url, progress: Progress,
                 deadline: float | None = None) -> Path:
    """Evaluate the uniform baseline (until ``deadline``) and write pareto.md/json/png and
    best.toml."""
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pts = []
    for t in trials:
        a = t.user_attrs
        pts.append({"trial": t.number, "tile": t.params["tile"], "lanes": t.params["lanes"],
                    "percents": [t.params[f"k{i}"] for i in range(len(ev.work.names))],
                    "k_tile": a["k_tile"], "error": a["error"], "mass": a["mass"],
                    "cycles": a["cycles"], "bytes_read": a["bytes_read"], "area": a["area"],
                    "objective": t.value, "feasible": a["constraint"][0] <= 0,
                    "worker": a["worker"]})
    feasible = [p for p in pts if p["feasible"]]
    if feasible:
        best = min(feasible, key=lambda p: p["objective"])
    else:      # nothing within the budget: the closest to it
        best = min(pts, key=lambda p: (p["error"], p["objective"])) if pts else None
    uni, complete = uniform_baseline(ev, args, progress, deadline, pts)
    planned = len(args.tiles) * len(args.percents)
    if not complete:
        progress.warn(f"--timeout {args.timeout:g} s reached: uniform baseline partial "
                      f"({len(uni)} of {planned} designs)")
    for u in uni:
        u["objective"] = (u["error"] + args.alpha * u["cycles"] / base["cycles"]
                          + args.beta * u["area"])
    compare = versus_uniform(pts, uni, args.max_error)
    out = Path(args.out)
    layers = ev.work.names
    report = {"study": args.study, "storage": url.split("@")[-1] if "@" in url else url,
              "settings": study.user_attrs["settings"], "layers": layers,
              "dense": base, "trials": pts,
              "pareto": pareto(pts), "uniform": uni, "uniform_complete": complete,
              "uniform_planned": planned, "uniform_pareto": pareto(uni),
              "best": best, "best_within_budget": bool(feasible), "versus_uniform": compare,
              "model_evaluations": ev.evaluations}
    (out / "pareto.json").write_text(json.dumps(report, indent=1) + "\n")
    _plot(report, out / "pareto.png", args.max_error, _objective(args))
    (out / "pareto.md").write_text(_markdown(report, args, cfg))
    if best:
        (out / "best.toml").write_text(_toml(cfg, best, layers, args, base,
                                             ev.work.seq_len, bool(feasible)))
        if not feasible:
            progress.warn(f"no trial within the error budget {args.max_error}: best.toml holds "
                          f"the lowest-error design (trial {best['trial']}, error "
                          f"{best['error']:.4f}), OUTSIDE the budget")
    else:
        progress.warn("no finished trial: no best.toml")
    progress.note(f"{len(pts)} finished trials, {len(feasible)} within the error budget; "
                  f"wrote {out}/pareto.md, pareto.json, pareto.png"
                  + (", best.toml" if best else ""))
    if compare["at_budget"]:
        c = compare["at_budget"]
        progress.note(f"fastest within error {args.max_error}: trial {c['study']['trial']} "
                      f"{c['study']['cycles']:,} cycles (error {c['study']['error']:.4f}); "
                      f"uniform: tile {c['uniform']['tile']}, k {c['uniform']['percents'][0]}%: "
                      f"{c['uniform']['cycles']:,} cycles (error {c['uniform']['error']:.4f}): "
                      f"{c['cycles_ratio']:.3f}x")
    return out / "pareto.md"


#: what a report's error column is, per objective
ERROR_TEXT = {
    "error": "Error: relative output error of the bit-exact core vs float dense attention "
             "(mean over heads and layers); mass: float softmax mass of the selected keys.",
    "perplexity": "Error: the model's Δ perplexity as a fraction (perplexity with the bit-exact "
                  "core in every attention layer / the model's own dense perplexity − 1, over "
                  "the text windows; gen/quality_dse.py); mass: not measured (nan).",
}


def _row(p, base) -> str:
    ks = ", ".join(f"{pc}%" for pc in p["percents"])
    return (f"| {p.get('trial', '-')} | {p['tile']} | {p['lanes']} | {ks} | {p['error']:.4f} | "
            f"{p['mass']:.4f} | {p['cycles']:,} | {p['cycles'] / base['cycles']:.3f} | "
            f"{p['bytes_read'] / base['bytes_read']:.3f} | {p['area']:.3f} |")


def _markdown(r, args, cfg) -> str:
    base = r["dense"]
    head = ["| trial | tile | lanes | k per layer | error | mass | cycles | vs dense | "
            "bytes vs dense | area vs base |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines = [f"# star dse: study `{r['study']}`", "",
             f"Command: `{' '.join(['star'] + args.argv)}`", "",
             f"Workload: {', '.join(r['layers'])} "
             f"({'one layer per file' if _objective(args) == 'error' else 'the model'}). "
             "Base config "
             f"`{cfg.name}`: d = {cfg.head_dim}, {cfg.data_bits}-bit, lanes {cfg.lanes}, tile "
             f"{cfg.tile}, AXI {cfg.axi_data_bits}-bit. Dense FlashAttention mode of the base "
             f"config: {base['cycles']:,} cycles, {base['bytes_read']:,} bytes read, error "
             f"{base['error']:.4f} (fixed point).", "",
             f"Objective: error + {args.alpha}·cycles/dense + {args.beta}·area (estimated Yosys "
             f"cells relative to the base config), error ≤ {args.max_error}. "
             + (ERROR_TEXT[_objective(args)]) + " Cycles: "
             "gen/cycle_model.py (calibrated against the RTL), summed over every head and "
             f"layer. {len(r['trials'])} finished trials.", ""]
    if r["best"] and r["best_within_budget"]:
        lines += ["## Best design (lowest objective within the error budget)", "", *head,
                  _row(r["best"], base), ""]
    elif r["best"]:
        lines += ["## No design within the error budget", "",
                  f"No trial has error ≤ {args.max_error}. The lowest-error design, OUTSIDE the "
                  "budget (best.toml holds it, marked so):", "", *head, _row(r["best"], base),
                  ""]
    evaluated = (f"All {len(r['uniform'])} uniform designs were evaluated." if
                 r["uniform_complete"] else
                 f"Only {len(r['uniform'])} of the {r['uniform_planned']} uniform designs were "
                 "evaluated (--timeout reached): the baseline is partial.")
    c = r["versus_uniform"]
    if c["at_budget"]:
        a = c["at_budget"]
        lines += ["## Against the uniform baseline (one tile, one k for every layer)", "",
                  f"{evaluated} At the error "
                  f"budget ({args.max_error}) the fastest uniform design (tile "
                  f"{a['uniform']['tile']}, k {a['uniform']['percents'][0]}%, error "
                  f"{a['uniform']['error']:.4f}) takes **{a['cycles_ratio']:.3f}×** the cycles "
                  f"and {a['bytes_ratio']:.3f}× the bytes of the study's fastest design within "
                  f"the budget (trial {a['study']['trial']}, error {a['study']['error']:.4f}).",
                  "", "At each uniform Pareto point within the budget, the study's fastest "
                  "design with at most its error:", "",
                  "| uniform tile, k | uniform error | uniform cycles | study trial | study "
                  "error | study cycles | uniform / study cycles |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {m['uniform']['tile']}, {m['uniform']['percents'][0]}% | "
                  f"{m['uniform']['error']:.4f} | {m['uniform']['cycles']:,} | "
                  f"{m['study']['trial']} | {m['study']['error']:.4f} | "
                  f"{m['study']['cycles']:,} | {m['cycles_ratio']:.3f} |" for m in c["matched"]]
        lines.append("")
    lines += ["## Pareto front of the study (error vs cycles)", "", *head,
              *(_row(p, base) for p in r["pareto"]), "",
              "## Pareto front of the uniform baseline", "",
              *([] if r["uniform_complete"] else [evaluated, ""]), *head,
              *(_row(p, base) for p in r["uniform_pareto"]), "", "![pareto](pareto.png)", ""]
    return "\n".join(lines)


def _plot(r, path: Path, budget: float, objective: str = "error") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    base = r["dense"]["cycles"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([p["cycles"] / base for p in r["trials"]], [p["error"] for p in r["trials"]],
               s=10, alpha=0.4, label="trials")
    for pts, style, label in ((r["pareto"], "o-", "study front"),
                              (r["uniform_pareto"], "s--", "uniform (tile, k) front")):
        ax.plot([p["cycles"] / base for p in pts], [p["error"] for p in pts], style,
                drawstyle="steps-post", label=label)
    if r["best"]:
        ax.plot(r["best"]["cycles"] / base, r["best"]["error"], "r*", ms=14,
                label="best" if r["best_within_budget"] else "lowest error (over budget)")
    ax.axhline(budget, color="gray", ls=":", label="error budget")
    ax.set_xlabel("cycles / dense FlashAttention cycles")
    ax.set_ylabel({"error": "output error vs float dense",
                   "perplexity": "Δ perplexity (fraction)"}[objective])
    ax.set_title(f"star dse: {r['study']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _toml(cfg, best, layers, args, base, seq_len, within: bool) -> str:
    """best.toml: the design's config, its per-layer K_TILE in comments; ``within`` False puts
    a first line saying the design is outside the error budget."""
    hw = hardware(cfg, best["tile"], best["lanes"], max(best["k_tile"]), seq_len)
    hw = replace(hw, name=f"dse_{args.study}".replace("-", "_"))
    lines = [] if within else [
        f"# OUTSIDE the error budget: error {best['error']:.4f} > budget {args.max_error} (no "
        "trial within it; the lowest-error design found)"]
    lines += [f"# star dse: study {args.study!r}, trial {best['trial']}: error "
             f"{best['error']:.4f} (budget {args.max_error}), {best['cycles']:,} cycles "
             f"({best['cycles'] / base['cycles']:.3f}x dense)",
             "# Build: star generate -c <this file>. Per layer, the runtime K_TILE register:"]
    lines += [f"#   {name}: K_TILE = {k} ({pc}% of tile {best['tile']})"
              for name, k, pc in zip(layers, best["k_tile"], best["percents"])]
    for key, value in hw.to_dict().items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def parse_list(text: str, flag: str, lo: int, hi: int, pow2: bool = False) -> tuple[int, ...]:
    """A comma-separated list of integers in [lo, hi] (powers of two with ``pow2``)."""
    try:
        vals = tuple(sorted({int(x) for x in text.split(",")}))
    except ValueError:
        raise DseError(f"{flag} must be comma-separated integers, not {text!r}") from None
    for v in vals:
        if not lo <= v <= hi or (pow2 and v & (v - 1)):
            kind = "powers of two" if pow2 else "integers"
            raise DseError(f"{flag} must be {kind} in [{lo}, {hi}], not {v}")
    return vals

