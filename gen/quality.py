"""``star quality``: what STAR's selection and numerics cost a whole model, as next-token
perplexity against the same model with its own dense attention.

A run is one way of computing every replaced layer's attention (:class:`Run`: a
``star.gen.kernel`` method and mode, keys per tile, which layers). Each run goes over the same
token windows of every text (``gen.lm.token_windows``: teacher forcing, windows of up to
``--tokens``, each starting with <bos>); its perplexity is exp(mean next-token cross-entropy
over all predicted tokens of all texts), and Δ perplexity is relative to the model's own dense
attention (the ``model`` run: transformers' sdpa in float32, nothing replaced).

The core config: the model fixes head_dim, and a window needs max_seq >= its tokens; a config
that differs is adapted (-P head_dim / max_seq; the report's config is the one used) unless
those fields were set with -P, which must then fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from star.spec.config import StarConfig, from_overrides, override_name

from . import kernel, lm
from .dse import k_of
from .lm import QualityError, StarAttention, read_input, token_windows, window_loss

__all__ = ["Run", "Text", "read_text", "core_config", "open_model", "windows_loss", "measure",
           "report", "format_table",
           "PERCENTS", "GOALS", "k_of", "rows_by_run", "delta_table", "goal_rows"]

#: the keys kept per tile `make bench-quality` measures, % of the tile
PERCENTS = (5, 10, 15, 25)
#: issue 34's goals: Δ perplexity (%) of bit-exact DLZS with one term at k = 25 % and 10 %;
#: the selection-mode gap to exact top-k (percentage points); seconds per bit-exact window
GOALS = {25: 1.0, 10: 3.0}
GAP_PP = 0.5
WINDOW_SECONDS = 600


@dataclass(frozen=True)
class Run:
    """One way of computing the model's attention: ``method`` (``model``: the model's own
    sdpa, nothing replaced; else a kernel METHODS entry) in ``mode`` with ``k`` keys per tile,
    in ``layers`` (None: every layer)."""

    method: str
    mode: str = "selection"
    k: int | None = None
    layers: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        if self.method == "model":
            return "model (dense, sdpa float32)"
        where = "" if self.layers is None else f", layers {','.join(map(str, self.layers))}"
        k = "" if self.method == "dense" else f", k={self.k}"
        return f"{kernel.LABELS[self.method]}, {self.mode}{k}{where}"


@dataclass(frozen=True)
class Text:
    """A text file as evaluated: its name in the report, sha256 and token windows."""

    name: str
    sha256: str
    windows: tuple[tuple[int, ...], ...]


def read_text(path, tok, tokens: int, windows: int | None, name: str | None = None) -> Text:
    """Read and tokenise a text file (UTF-8); one-line QualityError if unusable."""
    path = Path(path)
    data = read_input(path, "--text", "a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise QualityError(f"--text {path}: not UTF-8 text (byte {e.start})") from None
    wins = token_windows(tok, text, tokens, windows)
    if not wins:
        raise QualityError(f"--text {path}: no tokens to predict (empty text)")
    return Text(name or path.name, hashlib.sha256(data).hexdigest(),
                tuple(tuple(w) for w in wins))


def core_config(cfg: StarConfig, base: StarConfig, head_dim: int, tokens: int,
                given: dict) -> StarConfig:
    """The core config for a model of ``head_dim`` and windows of ``tokens``: head_dim set to
    the model's (the AXI bus narrowed to one row if it was wider) and max_seq raised to the
    window, unless -P set them (``given``), then they must fit (one-line error)."""
    if "head_dim" in given and cfg.head_dim != head_dim:
        raise QualityError(f"-P head_dim={cfg.head_dim}: the model's head_dim is {head_dim}")
    if "max_seq" in given and cfg.max_seq < tokens:
        raise QualityError(f"-P max_seq={cfg.max_seq}: the windows have up to {tokens} tokens "
                           "(lower --tokens or raise max_seq)")
    change = {}
    if cfg.head_dim != head_dim:
        change["head_dim"] = head_dim
        row_bits = head_dim * cfg.data_bits
        if cfg.axi_data_bits > row_bits:      # the bus may not be wider than a row
            change["axi_data_bits"] = row_bits
    if cfg.max_seq < tokens:
        change["max_seq"] = 1 << (tokens - 1).bit_length()
    if not change:
        return cfg
    out = from_overrides(cfg, change, where="the model's shape: ")
    return out if "name" in given else override_name(dataclasses.replace(out, name=cfg.name),
                                                     base)


def open_model(args, cfg: StarConfig, base: StarConfig, given: dict, progress):
    """Load ``--model`` and read the ``--text`` windows (``--tokens``, ``--windows``); the core
    config follows the model (:func:`core_config`, noted when it changes). Returns (model,
    sha256 of its GGUF, the config used, texts)."""
    with progress.step(f"loading {args.model}"):
        tok, model, sha = lm.load(args.model, Path(args.models_dir), args.threads)
    head_dim = getattr(model.config, "head_dim", None) or \
        model.config.hidden_size // model.config.num_attention_heads
    used = core_config(cfg, base, head_dim, args.tokens, given)
    if used != cfg:
        progress.note(f"core config {used.name}: head_dim={used.head_dim}, "
                      f"max_seq={used.max_seq} (the model's shape)")
    windows = None if args.windows == "all" else int(args.windows)
    return model, sha, used, [read_text(p, tok, args.tokens, windows) for p in args.text]


def windows_loss(model, windows, star: StarAttention | None = None, progress=None,
                 label: str = "") -> tuple[float, int]:
    """Summed next-token cross-entropy and token count over ``windows``, each run with ``star``
    entered (None: the model's own attention); a layer given to ``star`` that never called
    the sdpa entry is a QualityError. ``progress``: one step per window, named by ``label``."""
    total, count = 0.0, 0
    for w, ids in enumerate(windows):
        what = f"{label} window {w + 1}/{len(windows)} ({len(ids)} tokens)"
        with progress.step(what) if progress else contextlib.nullcontext(), \
                star if star else contextlib.nullcontext():
            loss, n = window_loss(model, list(ids))
        if star and (missing := set(star.layers) - set(star.calls)):
            raise QualityError(f"layers {sorted(missing)} never called the sdpa "
                               "attention entry: this model cannot be patched")
        total, count = total + loss, count + n
    return total, count


def _layers(run: Run, n_layers: int) -> dict[int, int]:
    if run.method == "model":
        return {}
    layers = range(n_layers) if run.layers is None else run.layers
    return {li: run.k for li in layers}


def measure(model, cfg: StarConfig, texts: list[Text], runs: list[Run], progress) -> list[dict]:
    """Run every run over every window; return per run its label, fields, per-text summed
    cross-entropy and tokens, perplexity and wall time."""
    n_layers = model.config.num_hidden_layers
    out = []
    for run in runs:
        star = StarAttention(cfg, run.method, run.mode, _layers(run, n_layers))
        nll, count, start = {}, {}, time.monotonic()
        for text in texts:
            nll[text.name], count[text.name] = windows_loss(
                model, text.windows, star, progress, f"{run.label}: {text.name}")
        total = sum(count.values())
        out.append({"label": run.label, **dataclasses.asdict(run), "nll": nll, "tokens": count,
                    "ppl": math.exp(sum(nll.values()) / total),
                    "seconds": round(time.monotonic() - start, 1)})
    return out


def report(cfg: StarConfig, model: dict, texts: list[Text], results: list[dict],
           tokens: int, cmd: str, machine: str) -> dict:
    """A JSON-ready report; Δ perplexity (%) of each run against the ``model`` run if any."""
    base = next((r["ppl"] for r in results if r["method"] == "model"), None)
    for r in results:
        r["delta_ppl_pct"] = None if base is None else 100.0 * (r["ppl"] / base - 1.0)
    return {"command": cmd, "machine": machine, "model": model, "config": cfg.to_dict(),
            "tokens_per_window": tokens,
            "texts": [{"name": t.name, "sha256": t.sha256, "windows": len(t.windows),
                       "tokens": sum(len(w) for w in t.windows)} for t in texts],
            "results": results}


def format_table(rep: dict) -> str:
    """The report's results as a Markdown table."""
    lines = ["| run | perplexity | Δ perplexity | time |", "|---|---|---|---|"]
    for r in rep["results"]:
        delta = "" if r["delta_ppl_pct"] is None else f"{r['delta_ppl_pct']:+.2f} %"
        lines.append(f"| {r['label']} | {r['ppl']:.4f} | {delta} | {r['seconds']:.0f} s |")
    return "\n".join(lines)


class _Missing(dict):
    """Results by run; a run without a result (an interrupted bench) reads as NaN."""

    def __missing__(self, key):
        return {"delta_pct": math.nan, "seconds_per_window": math.nan, "ppl": math.nan,
                "ppl_text": {}}


def rows_by_run(rows: list[dict]) -> dict:
    """Summary rows of a bench report by (method, mode, k, layers tuple or None)."""
    return _Missing({(r["method"], r["mode"], r["k"],
                      tuple(r["layers"]) if r["layers"] else None): r for r in rows})


def pct(x: float, fmt: str = "+.2f", unit: str = " %") -> str:
    """A figure, or 'not run' for NaN."""
    return "not run" if math.isnan(x) else f"{x:{fmt}}{unit}"


def delta_table(rows: list[dict], tile: int) -> list[str]:
    """Markdown: Δ perplexity per selection method and mode (rows) and k (columns)."""
    by = rows_by_run(rows)
    ks = [k_of(p, tile) for p in PERCENTS]
    lines = ["| method | mode | " + " | ".join(f"k = {p} % ({k})" for p, k in
                                              zip(PERCENTS, ks)) + " |",
             "|---|---|" + "---|" * len(ks)]
    for mode in kernel.MODES:
        for m in kernel.SELECTORS:
            lines.append(f"| {kernel.LABELS[m]} | {mode} | "
                         + " | ".join(pct(by[m, mode, k, None]["delta_pct"]) for k in ks) + " |")
    return lines


def goal_rows(rows: list[dict], tile: int, tokens: int) -> list[str]:
    """Markdown rows (goal | measured | verdict) of issue 34's goals."""
    by = rows_by_run(rows)
    out = []
    for p, goal in GOALS.items():
        d = by["dlzs1", "bitexact", k_of(p, tile), None]["delta_pct"]
        verdict = "not run" if math.isnan(d) else "met" if d <= goal else \
            f"missed by {d - goal:.2f} pp"
        out.append(f"| bit-exact DLZS 1 term, k = {p} %: Δ ≤ {goal:g} % | {pct(d)} | {verdict} |")
    for p in sorted(GOALS):
        k = k_of(p, tile)
        gap = by["dlzs1", "selection", k, None]["delta_pct"] - \
            by["exact", "selection", k, None]["delta_pct"]
        verdict = "not run" if math.isnan(gap) else "met" if gap <= GAP_PP else \
            f"missed by {gap - GAP_PP:.2f} pp"
        out.append(f"| selection DLZS 1 term within {GAP_PP} pp of exact top-k, k = {p} % | "
                   f"{pct(gap, unit=' pp')} | {verdict} |")
    sec = by["dlzs1", "bitexact", k_of(25, tile), None]["seconds_per_window"]
    verdict = "not run" if math.isnan(sec) else "met" if sec <= WINDOW_SECONDS else "missed"
    out.append(f"| a {tokens}-token window bit-exact in ≤ {WINDOW_SECONDS // 60} min (DLZS, "
               f"k = 25 %, 2 cores) | {pct(sec, '.0f', ' s')} | {verdict} |")
    return out
