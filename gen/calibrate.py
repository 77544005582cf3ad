"""The cycle model (``gen/cycle_model.py``) against the core's RTL, and its paper-scale projection.

``POINTS``: the (config, jobs) points the model is checked on. Each job runs on ``star_core``
under Verilator through the bench testbench (``sim/bench_tb.py``: O bit-exact against
golden.core first); :func:`compare` puts the model's cycles and bytes beside the RTL counters.
tests/test_cycle_model.py runs the ``fast`` points in ``make test``; ``make bench-model``
(scripts/bench_model.py) runs them all and writes docs/results/cycle_model/.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from star.spec.config import StarConfig, preset

from . import cycle_model

__all__ = ["POINTS", "point_config", "point_cases", "run_point", "compare", "projection"]

ROOT = Path(__file__).resolve().parents[1]
MINILM = ROOT / "data" / "minilm"


def _random(specs) -> list[dict]:
    """Random-data jobs: (seq_len, q_len, causal, dense, k_tile)."""
    return [{"label": f"S={s} q={q}{' causal' if c else ''} " + ("dense" if dn else f"k={k}"),
             "data": "random", "head": 0, "seq_len": s, "q_len": q, "causal": c, "dense": dn,
             "k_tile": k, "frac": 0} for s, q, c, dn, k in specs]


def _minilm(tile: int) -> list[dict]:
    """MiniLM jobs (256 queries x 256 keys): layer 5 heads 0/6 dense, 10 % and 25 % of the
    tile; layer 0 head 3, causal over its last 200 queries, 25 %."""
    out = []
    for head in (0, 6):
        for dn, f in ((True, 1.0), (False, 0.10), (False, 0.25)):
            k = max(1, round(f * tile))
            out.append({"label": f"MiniLM L5 h{head} " + ("dense" if dn else f"k={k}"),
                        "data": str(MINILM / "minilm_l5.npz"), "head": head, "seq_len": 256,
                        "q_len": 256, "causal": False, "dense": dn, "k_tile": k, "frac": f})
    out.append({"label": "MiniLM L0 h3 causal k=25%", "data": str(MINILM / "minilm_l0.npz"),
                "head": 3, "seq_len": 256, "q_len": 200, "causal": True, "dense": False,
                "k_tile": max(1, tile // 4), "frac": 0.25})
    return out


_SMALL = ((16, 4, False, True, 4), (16, 4, False, False, 1), (48, 13, False, True, 4),
          (48, 13, False, False, 4), (128, 4, False, True, 4), (128, 4, False, False, 1),
          (256, 32, False, True, 4), (256, 32, False, False, 1), (256, 32, False, False, 4),
          (200, 64, True, True, 4), (200, 64, True, False, 4), (64, 64, True, False, 1))

# name: (base preset, overrides, jobs, in make test)
POINTS = {
    "tiny": ("tiny", {}, _random(_SMALL), True),
    "wide": ("tiny", {"lanes": 8, "axi_data_bits": 128}, _random(_SMALL), True),
    "row8": ("tiny", {"head_dim": 32, "data_bits": 16, "lanes": 2, "tile": 32, "k_tile": 8,
                      "max_seq": 512},
             _random(((64, 8, False, True, 8), (64, 8, False, False, 1),
                      (256, 32, False, True, 8), (256, 32, False, False, 8),
                      (160, 40, True, False, 1), (160, 40, True, False, 8))), False),
    "lanes16": ("tiny", {"head_dim": 8, "lanes": 16, "tile": 8, "k_tile": 4},
                _random(((64, 8, False, False, 1), (256, 32, False, True, 4),
                         (256, 32, False, False, 4), (160, 40, True, True, 4),
                         (160, 40, True, False, 1))), False),
    "bench_t16": ("bench", {"tile": 16, "k_tile": 16, "max_seq": 256}, _minilm(16), False),
    "bench_t64": ("bench", {"max_seq": 256}, _minilm(64), False),
}


def point_config(name: str) -> StarConfig:
    base, over, _, _ = POINTS[name]
    return replace(preset(base), name=f"calib_{name}", **over)


def point_cases(name: str) -> list[dict]:
    return POINTS[name][2]


def run_point(name: str, seed: int) -> list[dict]:
    """Simulate a point's jobs (bit-exact checked, progress on stderr); return bench results
    with counters."""
    from .bench import run_bench
    return run_bench(point_config(name), point_cases(name),
                     ROOT / "build" / "calibrate" / name, seed)


def compare(cfg: StarConfig, results: list[dict]) -> list[dict]:
    """Per job: the RTL counters beside the model's figures and the cycle error."""
    rows = []
    for r in results:
        c = r["counters"]
        m = cycle_model.job_cycles(cfg, r["blocks"], r["seq_len"], dense=r["dense"])
        rows.append({"label": r["label"], "rtl_cycles": c["CYCLES"], "model_cycles": m["cycles"],
                     "error": (m["cycles"] - c["CYCLES"]) / c["CYCLES"],
                     "rtl": {k: c[k] for k in ("BYTES_READ", "BYTES_WRITTEN", "KV_ROWS",
                                               "TILES")},
                     "model": {"BYTES_READ": m["bytes_read"],
                               "BYTES_WRITTEN": m["bytes_written"], "KV_ROWS": m["kv_rows"],
                               "TILES": m["tiles"]}})
    return rows


def projection(cfg: StarConfig, seqs, rates: dict) -> list[dict]:
    """Paper-scale projection: prefill (Q_LEN = SEQ_LEN, non-causal) of one head per S, dense
    and sparse. ``rates``: {"dense"/"sparse": {"union": fraction of each tile's keys some lane
    selected, "events": rescale events per lane and tile, "frac": fraction of a tile each lane
    walks}} (measured on real attention)."""
    out = []
    for s in seqs:
        row = {"seq_len": s}
        for mode in ("dense", "sparse"):
            r = rates[mode]
            union = 1.0 if mode == "dense" else r["union"]
            blocks = cycle_model.uniform_blocks(cfg, s, s, union, r["events"],
                                                frac=r.get("frac", 1.0))
            row[mode] = cycle_model.job_cycles(cfg, blocks, s, dense=mode == "dense")
        out.append(row)
    return out
