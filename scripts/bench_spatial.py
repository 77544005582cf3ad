#!/usr/bin/env python3
"""Benchmark Spatial-STAR throughput scaling: 1 core (star_core), 2×2 and 4×4 arrays.

RTL simulation (Verilator + cocotb; every job checked bit-exact against golden.core /
golden.spatial, counters and per-channel traffic included): one job per sequence length S, Q_LEN
queries, non-causal, K_TILE = the built k_tile (25 % of a tile for the core used), random normal
data, no bus stalls, each core on its own memory channel at one beat per cycle.

* throughput = Q_LEN / CYCLES (queries per cycle, the job's whole run: start-up and merge-chain
  tail included); scaling efficiency = throughput / (N × the single core's throughput);
* NoC traffic per query: flits on the mesh (query relay + partial chain; exact, from the message
  sizes: every core but the last forwards each query row once, every core but the root sends one
  partial per query), against the alternative of moving K/V instead (the root fetches the other
  shards' K rows, which prediction needs, and their selected V rows over the network, from the
  job's measured counters).

With ``--area``: Yosys generic cells (``synth -flatten``) of the single core, of a 1×2 array and
of the array's own units (node core, merge, normalize, router), i.e. what the array adds.

Writes ``docs/results/spatial_bench/report.md`` (no timestamps), ``report.json`` (plus wall
times) and ``scaling.png``. Work files go to ``build/bench/spatial/``.

Usage (from the repository root, with the project venv's python)::

    python scripts/bench_spatial.py [--quick] [--area]

``--quick``: S = 1024 only, 16 queries (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from star.gen.machine import machine, tool_versions, tools
from star.hw.layouts import lane_row_layout
from star.hw.layouts import partial_layout
from star.hw.verilog import convert
from star.sim.runner import REPO_ROOT, run
from star.spec.spatial_config import SpatialConfig, bench_core

SCRIPT = "scripts/bench_spatial.py"
OUT = REPO_ROOT / "docs" / "results" / "spatial_bench"
WORK = REPO_ROOT / "build" / "bench" / "spatial"
CORE = bench_core()         # the long regression's arrays too: the Verilator builds are shared
MESHES = [(1, 1), (2, 2), (4, 4)]
FULL = {"lengths": [4096, 8192, 16384], "q_len": 64}
QUICK = {"lengths": [1024], "q_len": 16}


def log(msg: str) -> None:
    print(f"bench_spatial: {msg}", file=sys.stderr, flush=True)


def simulate(rows: int, cols: int, params: dict, seed: int) -> list[dict]:
    """Run the jobs on one array (1×1: the single core); return their records."""
    from star.hw.core import StarCore
    from star.hw.spatial import SpatialStar
    cases = [{"label": f"S={s}", "q_len": params["q_len"], "seq_len": s, "dense": False,
              "k_tile": CORE.k_tile} for s in params["lengths"]]
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"{rows}x{cols}.json"
    out.unlink(missing_ok=True)
    if rows * cols == 1:
        text, top, tb = convert(StarCore(CORE), name="star_core"), "star_core", "star.sim.bench_tb"
        config = {"cfg": CORE.to_dict(), "cases": [{**c, "data": "random", "head": 0}
                                                   for c in cases]}
    else:
        scfg = SpatialConfig(CORE, rows=rows, cols=cols)
        text, top, tb = convert(SpatialStar(scfg), name="star_spatial"), "star_spatial", \
            "star.sim.spatial_bench_tb"
        config = {"cfg": CORE.to_dict(), "rows": rows, "cols": cols, "flit_bits": scfg.flit_bits,
                  "cases": cases}
    run(text, top, tb, seed=seed, timeout_s=7200, config={**config, "out": str(out.resolve())})
    return json.loads(out.read_text())


def noc_flits(rows: int, cols: int, rec: dict) -> dict:
    """Flits per query on the mesh, and for the alternative of moving K/V to the root."""
    n = rows * cols
    scfg = SpatialConfig(CORE, rows=rows, cols=cols)
    fb, fmt = scfg.flit_bits, CORE.formats
    c, q = rec["counters"], rec["q_len"]
    q_flits = math.ceil(lane_row_layout(CORE).size / fb)
    p_flits = math.ceil(partial_layout(CORE).size / fb)
    relay = (n - 1) * (q_flits + p_flits)
    k_rows = c["BYTES_READ"] // fmt.row_bytes - q - c["KV_ROWS"]
    row_flits = math.ceil(8 * fmt.row_bytes / fb)
    move_kv = (n - 1) / n * (k_rows + c["KV_ROWS"]) * row_flits / q
    return {"q_flits": q_flits, "partial_flits": p_flits, "per_query": relay,
            "move_kv_per_query": round(move_kv, 1)}


def area() -> dict:
    """Generic cells and flip-flops of the single core, a 1×2 array and the array's units."""
    from star.gen.synth import yosys_stats
    from star.hw.core import StarCore
    from star.hw.merge import PartialMerge
    from star.hw.noc.router import Router
    from star.hw.normalize import Normalize
    from star.hw.spatial import SpatialStar
    scfg = SpatialConfig(CORE, rows=1, cols=2)
    units = {
        "star_core (single core)": StarCore(CORE),
        "node core (StarCore spatial mode)": StarCore(CORE, spatial=True),
        "PartialMerge": PartialMerge(CORE),
        "Normalize": Normalize(CORE),
        "Router (mesh, 2 per node)": Router(scfg.noc, 0, 0),
        "star_spatial 1x2 (whole array)": SpatialStar(scfg),
    }
    out = {}
    for name, comp in units.items():
        log(f"area: synthesizing {name}")
        st = yosys_stats(convert(comp, name="top"), "top", WORK / "synth" / name.split()[0])
        out[name] = {"cells": st["cells"], "flip_flops": st["flip_flops"],
                     "seconds": round(st["seconds"])}
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, rows in res["arrays"].items():
        if key == "1x1":
            continue
        a.plot([r["seq_len"] for r in rows], [r["efficiency"] for r in rows], "o-",
               label=f"{key} ({rows[0]['cores']} cores)")
    a.axhline(0.85, color="grey", ls="--", lw=1, label="goal 0.85")
    a.set(xscale="log", xlabel="sequence length S", ylabel="scaling efficiency",
          ylim=(0, 1.05), title="throughput / (N × single core)")
    a.legend()
    for key, rows in res["arrays"].items():
        b.plot([r["seq_len"] for r in rows], [1e3 * r["throughput"] for r in rows], "o-",
               label=key)
    b.set(xscale="log", yscale="log", xlabel="sequence length S",
          ylabel="queries per 1000 cycles", title="throughput")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res: dict) -> str:
    fmt = CORE.formats
    lines = [
        "# Spatial-STAR scaling benchmark", "",
        f"Generated by `python {SCRIPT}` (`make bench-spatial`); every figure is from RTL "
        "simulation (Verilator + cocotb), each job checked bit-exact against the golden model.",
        "",
        f"Machine: {res['machine']}  ",
        "Tools: " + tool_versions(res["tools"]), "",
        f"Core: `{CORE.name}` (the `tiny` preset with max_seq = {CORE.max_seq}): {CORE.lanes} "
        f"query lanes, d = {CORE.head_dim}, {CORE.data_bits}-bit data, tile {CORE.tile}, K_TILE "
        f"{CORE.k_tile} (25 %), AXI {CORE.axi_data_bits} bits ({fmt.row_bytes}-byte rows, "
        f"{fmt.row_bytes * 8 // CORE.axi_data_bits} beats each). Arrays: flit {res['flit_bits']} "
        f"bits, FIFO depth 4; each core has its own memory channel (cocotbext-axi RAM, one beat "
        f"per cycle, no stalls). Job: Q_LEN = {res['q_len']} queries, non-causal, random normal "
        "data, seed " + str(res["seed"]) + ".", "",
        "Throughput = Q_LEN / CYCLES (whole job: start-up and merge-chain tail included). "
        "Efficiency = throughput / (N × single-core throughput).", "",
        "| array | cores | S | CYCLES | queries / 1000 cycles | speed-up | efficiency | "
        "NoC flits / query | moving K/V instead: flits / query |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, rows in res["arrays"].items():
        for r in rows:
            noc = r["noc"]
            flits = f"{noc['per_query']}" if noc else "-"
            move = f"{noc['move_kv_per_query']:,}" if noc else "-"
            lines.append(
                f"| {key} | {r['cores']} | {r['seq_len']} | {r['cycles']:,} | "
                f"{1e3 * r['throughput']:.3f} | {r['speedup']:.2f}× | {r['efficiency']:.3f} | "
                f"{flits} | {move} |")
    lines += ["", "Efficiency grows with S at 16 cores: each core's work per block grows with its "
              "shard while the fixed costs do not (the merge-chain tail after the last block, "
              "about N × (d + 6 + message flits) cycles, and each block's start: query relay "
              "and pipeline drain). Memory traffic is unchanged by sharding: the cores read "
              "together exactly the bytes one core reads (checked per job).", "",
              "![scaling](scaling.png)", ""]
    if res.get("area"):
        a = res["area"]
        single = a["star_core (single core)"]["cells"]
        whole = a["star_spatial 1x2 (whole array)"]["cells"]
        lines += ["## Area (`--area`)", "",
                  f"Yosys `synth -flatten`, generic cells, core `{CORE.name}`; the array adds "
                  f"{whole / (2 * single) - 1:+.1%} cells over two single cores (1×2: network, "
                  "merge, normalisation, node-core changes: no reciprocal per lane, partial "
                  "output).", "",
                  "| unit | cells | flip-flops |", "|---|---|---|"]
        lines += [f"| {n} | {v['cells']:,} | {v['flip_flops']:,} |" for n, v in a.items()]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="S = 1024, 16 queries (smoke run)")
    ap.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    ap.add_argument("--area", action="store_true", help="also synthesize the units (Yosys)")
    args = ap.parse_args()
    params = QUICK if args.quick else FULL
    res = {"machine": machine(), "tools": tools(("amaranth", "verilator", "cocotb")),
           "seed": args.seed, "q_len": params["q_len"], "flit_bits": SpatialConfig(CORE).flit_bits,
           "arrays": {}, "seconds": {}}
    single = {}
    for rows, cols in MESHES:
        key, n = f"{rows}x{cols}", rows * cols
        log(f"{key}: simulating S = {params['lengths']} (the first build takes minutes)")
        t0 = time.time()
        recs = simulate(rows, cols, params, args.seed)
        res["seconds"][key] = round(time.time() - t0)
        out = []
        for rec in recs:
            cycles = rec["counters"]["CYCLES"]
            tput = rec["q_len"] / cycles
            if n == 1:
                single[rec["seq_len"]] = tput
            base = single[rec["seq_len"]]
            out.append({"seq_len": rec["seq_len"], "cores": n, "cycles": cycles,
                        "throughput": tput, "speedup": tput / base,
                        "efficiency": tput / (n * base), "counters": rec["counters"],
                        "noc": noc_flits(rows, cols, rec) if n > 1 else None})
            log(f"{key} S={rec['seq_len']}: {cycles} cycles, efficiency {tput / (n * base):.3f}")
        res["arrays"][key] = out
    if args.area:
        res["area"] = area()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(res, indent=1) + "\n")
    (OUT / "report.md").write_text(report(res))
    plot(res, OUT / "scaling.png")
    log(f"wrote {OUT.relative_to(REPO_ROOT)}/report.md, report.json, scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
