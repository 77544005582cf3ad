"""STAR vs the dense FlashAttention baseline on the core RTL: cycles, bytes read, utilization.

Runs the emitted Verilog of the bench configuration under Verilator (cocotb testbench
``sim/bench_tb.py``; every job is also checked bit-exact against golden.core) and writes
docs/results/core_bench.md and .json. Run from the repository root:

    make bench-core            (= .venv/bin/python scripts/bench_core.py)

Cases: one block of ``lanes`` queries over S keys (non-causal) for S in {256, 1024, 4096}, random
normal Q/K/V, k = 10 % and 25 % of each tile, and the dense baseline; plus real attention
(MiniLM layer 5, two heads, all 256 queries). Utilization = stage lower bound / CYCLES, the bound
being the busiest resource: AXI read beats (BYTES_READ / bus bytes), keys predicted (PRED_BUSY,
one per cycle) or SU-FA beats (SUFA_BUSY, one per cycle).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gen.config import preset, replace  # noqa: E402
from gen.formats import Formats  # noqa: E402
from gen.verilog import convert  # noqa: E402
from hw.core import StarCore  # noqa: E402
from sim.runner import run  # noqa: E402

CFG = replace(preset("int8"), name="bench", head_dim=32, lanes=8, tile=64, k_tile=16,
              axi_data_bits=128, max_seq=4096)
FRACTIONS = (0.10, 0.25)


def cases(seqs, fractions, minilm: bool) -> list[dict]:
    out = []
    for s in seqs:
        out.append({"label": f"random S={s} dense", "data": "random", "head": 0, "seq_len": s,
                    "q_len": CFG.lanes, "dense": True, "k_tile": CFG.k_tile, "frac": 1.0})
        for f in fractions:
            out.append({"label": f"random S={s} k={f:.0%}", "data": "random", "head": 0,
                        "seq_len": s, "q_len": CFG.lanes, "dense": False,
                        "k_tile": max(1, round(f * CFG.tile)), "frac": f})
    if minilm:
        for head in (0, 6):
            base = {"data": str(ROOT / "data/minilm_l5.npz"), "head": head, "seq_len": 256,
                    "q_len": 256}
            out.append({**base, "label": f"MiniLM L5 h{head} dense", "dense": True,
                        "k_tile": CFG.k_tile, "frac": 1.0})
            for f in fractions:
                out.append({**base, "label": f"MiniLM L5 h{head} k={f:.0%}", "dense": False,
                            "k_tile": max(1, round(f * CFG.tile)), "frac": f})
    return out


def utilization(c: dict, fmt) -> tuple[float, str]:
    bounds = {"memory": c["BYTES_READ"] // fmt.bus_bytes, "predictor": c["PRED_BUSY"],
              "SU-FA": c["SUFA_BUSY"]}
    which = max(bounds, key=bounds.get)
    return bounds[which] / c["CYCLES"], which


def report(results: list[dict], seconds: float, cmd: str) -> str:
    fmt = Formats(CFG)
    lines = [
        "# STAR core vs dense FlashAttention (RTL cycle counts)", "",
        f"Command: `{cmd}` · machine: {platform.machine()} {platform.system()}, 2 cores, "
        f"Python {platform.python_version()} · wall time {seconds:.0f} s", "",
        f"Config `{CFG.name}`: int8, d = {CFG.head_dim}, lanes (queries per block) = {CFG.lanes}, "
        f"tile = {CFG.tile} keys, AXI {CFG.axi_data_bits}-bit ({fmt.row_beats} beats per row), "
        "AxiRam model (cocotbext-axi) without stalls. Every job was checked bit-exact against "
        "golden.core, counters included.", "",
        "Union = KV_ROWS / (TILES × tile): the fraction of each tile's keys that at least one "
        "query of the block selected (SU-FA beats and V rows read). Bound = the busiest resource "
        "(AXI read beats, keys predicted, SU-FA beats); utilization = bound / cycles.", "",
        "| case | cycles | vs dense | bytes read | vs dense | union | bound | utilization |",
        "|---|---|---|---|---|---|---|---|"]
    dense = {}
    for r in results:
        key = (r["data"], r["head"], r["seq_len"])
        c = r["counters"]
        if r["dense"]:
            dense[key] = c
        d = dense.get(key)
        util, which = utilization(c, fmt)
        union = c["KV_ROWS"] / (c["TILES"] * CFG.tile)
        sp = "1" if r["dense"] else f"{d['CYCLES'] / c['CYCLES']:.2f}× fewer"
        by = "1" if r["dense"] else f"{d['BYTES_READ'] / c['BYTES_READ']:.2f}× fewer"
        lines.append(f"| {r['label']} | {c['CYCLES']:,} | {sp} | {c['BYTES_READ']:,} | {by} | "
                     f"{union:.2f} | {which} | {util:.1%} |")
    lines += [
        "", "## What limits it", "",
        "The core is memory-bound: K is read in full for prediction (once per tile, reused by "
        "SU-FA from the on-chip tile store), so STAR reads K + union·V where dense reads K + V: "
        "at most 2× fewer bytes, 2/(1 + union) in general, and the cycles follow the bytes. The "
        f"union over the {CFG.lanes} queries of a block is far above k on random data "
        "(independent queries) and lower on real attention. Utilization is lowest on short "
        "sequences (S = 256): the first K tile is read and predicted before SU-FA has work, and "
        "SU-FA's normalisation and the O writes follow the last read; blocks overlap, so many "
        "blocks (MiniLM: 32 blocks of 8 queries) do not pay this per block. The goals (≥ 3× fewer cycles, ≥ 2.5× fewer bytes "
        "at k = 25 %, S = 1024) need the predictor to read a compact key copy (SOFA keeps "
        "4-bit predictor keys in DRAM: K/4 at 16-bit data) and a small query block, so that "
        "bytes = K/4 + union·(K + V); see docs/decisions.md.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqs", default="256,1024,4096", help="key sequence lengths (default: %(default)s)")
    ap.add_argument("--no-minilm", action="store_true", help="skip the real-attention cases")
    ap.add_argument("--seed", type=int, default=1, help="random data seed (default: %(default)s)")
    ap.add_argument("--out", default="docs/results/core_bench", help="report path without suffix "
                    "(default: %(default)s)")
    args = ap.parse_args(argv)
    seqs = [int(s) for s in args.seqs.split(",")]
    todo = cases(seqs, FRACTIONS, not args.no_minilm)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = ROOT / "build/bench/core_bench_raw.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"bench: {len(todo)} jobs on {CFG.name} (Verilator build first, a few minutes)",
          flush=True)
    run(convert(StarCore(CFG), name="star_core"), "star_core", "sim.bench_tb", seed=args.seed,
        timeout_s=7200, config={"cfg": CFG.to_dict(), "cases": todo, "out": str(raw)})
    results = json.loads(raw.read_text())
    cmd = "make bench-core" if argv is None and len(sys.argv) == 1 else \
        "python scripts/bench_core.py " + " ".join(sys.argv[1:])
    out.with_suffix(".json").write_text(json.dumps(
        {"config": CFG.to_dict(), "results": results}, indent=1) + "\n")
    text = report(results, time.time() - t0, cmd)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
