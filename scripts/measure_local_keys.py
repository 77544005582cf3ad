#!/usr/bin/env python3
"""What limits Δ perplexity: per-tile top-k with extra keys always kept (a candidate design).

    .venv/bin/python scripts/measure_local_keys.py [--tokens 2048]    # after make install-quality

Gemma 3 270M on the first ``--tokens`` tokens of GPL-3 (as ``make bench-quality``), every
attention layer's keys chosen by the exact per-tile top-k (SADS over the float scores, the
default preset's tile of 64), then, per variant, more keys OR-ed into each query row's mask
before exact float attention (selection mode):

    none        the per-tile top-k alone
    own tile    every visible key of the query's own (diagonal) tile
    last 16/32  the 16 / 32 most recent keys (i - R < j <= i)

for k = 16 (25 %) and 6 (~10 %). Reports Δ perplexity against the model's own attention and
the keys kept as a fraction of the keys visible (the work SU-FA would do). The core has none of
these variants: this measures what one would buy (docs/decisions.md, "Model quality").
Writes docs/results/quality/local_keys.md and local_keys.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from star.gen import kernel  # noqa: E402
from star.gen.lm import DEFAULT_MODEL, StarAttention, load, window_loss  # noqa: E402
from star.gen.machine import machine  # noqa: E402
from star.gen.progress import Progress  # noqa: E402
from star.gen.quality import core_config, read_text  # noqa: E402
from star.golden import reference, sads  # noqa: E402
from star.spec.config import preset  # noqa: E402

TEXT = Path("/usr/share/common-licenses/GPL-3")
OUT = ROOT / "docs" / "results" / "quality"
VARIANTS = ("none", "own tile", "last 16", "last 32")
KS = (16, 6)


def variant_head(variant: str, kept: list):
    """A kernel.head replacement: exact per-tile top-k plus the variant's keys (selection
    mode); appends (keys kept, keys visible) of each head to ``kept``."""
    def head(cfg, method, mode, k_tile, q, k, v, *, scale, causal, window=None, record=None):
        sq, sk = q.shape[0], k.shape[0]
        valid = reference.causal_mask(sq, sk, window) if causal else np.ones((sq, sk), bool)
        sel = sads.select(kernel.oracle_rank(q @ k.T, valid), cfg.formats, k_tile=k_tile,
                          radius=-1, valid=valid)
        mask = sads.selection_mask(sel, sk)
        i, j = np.arange(sq)[:, None] + (sk - sq), np.arange(sk)[None, :]
        if variant == "own tile":
            mask |= (j // cfg.tile == i // cfg.tile) & valid
        elif variant.startswith("last"):
            mask |= (j > i - int(variant.split()[1])) & valid
        kept.append((int(mask.sum()), int(valid.sum())))
        return reference.attention_head(q, k, v, scale, mask)
    return head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=2048, help="tokens of GPL-3 (default 2048)")
    args = ap.parse_args()
    progress = Progress("measure-local-keys")
    with progress.step(f"loading {DEFAULT_MODEL}"):
        tok, lm, sha = load(DEFAULT_MODEL, ROOT / "build" / "models")
    cfg = core_config(preset("default"), preset("default"), lm.config.head_dim, args.tokens, {})
    text = read_text(TEXT, tok, args.tokens, 1)
    ids = list(text.windows[0])
    base, n = window_loss(lm, ids)
    real, rows = kernel.head, []
    try:
        for k in KS:
            for variant in VARIANTS:
                kept = []
                kernel.head = variant_head(variant, kept)
                layers = {i: k for i in range(lm.config.num_hidden_layers)}
                with progress.step(f"k = {k}, {variant}"), \
                        StarAttention(cfg, "exact", "selection", layers):
                    loss, _ = window_loss(lm, ids)
                rows.append({"k": k, "variant": variant,
                             "delta_pct": 100 * (math.exp((loss - base) / n) - 1),
                             "kept": sum(a for a, _ in kept) / sum(b for _, b in kept)})
    finally:
        kernel.head = real
    rep = {"command": "python scripts/measure_local_keys.py"
           + (f" --tokens {args.tokens}" if args.tokens != 2048 else ""),
           "machine": machine(), "tokens": len(ids), "text_sha256": text.sha256,
           "gguf_sha256": sha, "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "local_keys.json").write_text(json.dumps(rep, indent=1) + "\n")
    lines = ["# Per-tile top-k with the most recent keys always kept (Gemma 3 270M)", "",
             f"Command: `{rep['command']}` · machine: {rep['machine']}", "",
             f"The first {rep['tokens']} tokens of GPL-3; every attention layer's keys chosen by "
             "the exact per-tile top-k (tile 64), plus each variant's keys, then exact float "
             "attention (selection mode). Keys kept: the fraction of the visible keys.", "",
             "| k per tile | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]
    for k in KS:
        cells = [next(r for r in rows if r["k"] == k and r["variant"] == v) for v in VARIANTS]
        lines.append(f"| {k} | " + " | ".join(f"{c['delta_pct']:+.2f} % ({c['kept']:.3f})"
                                              for c in cells) + " |")
    (OUT / "local_keys.md").write_text("\n".join(lines) + "\n")
    print(f"measure_local_keys: wrote {OUT / 'local_keys.md'}")


if __name__ == "__main__":
    main()
