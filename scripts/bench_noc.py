#!/usr/bin/env python3
"""Benchmark the mesh NoC (hw.noc) on the default 4×4 NocConfig.

* RTL simulation (Verilator + cocotb, :mod:`sim.noc_bench_tb`; all traffic checked against
  golden.noc): average packet latency vs offered load and saturation throughput for the five
  traffic patterns, with the channel-load bound of each (golden.noc.channel_load), and zero-load
  latency per hop;
* area: Yosys generic cells and flip-flops of one router (the centre one, all five ports) and of
  the whole 4×4 mesh (gen.synth.yosys_stats);
* fmax: out-of-context ECP5 place and route (gen.synth.ecp5_fmax) of the router and of a 3×3 mesh,
  whose router-to-router paths are the real per-hop critical path.

Writes ``docs/results/noc_bench/report.md`` (no timestamps, no run times), ``report.json`` (the same
figures plus wall-clock seconds) and ``latency.png``. Work files go to ``build/bench/noc/``.

Usage (from the repository root, with the project venv's python)::

    python scripts/bench_noc.py [--quick] [--no-fmax]

``--quick``: shorter windows, coarser rate steps, no fmax (a smoke run, ~1 min once built);
``--no-fmax``: skip place and route (the only step that needs ``make install-synth``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from star.gen.machine import machine, tool_versions, tools
from star.gen.synth import SynthError, ToolMissing, ecp5_fmax, yosys_stats
from star.golden.noc import PATTERNS, channel_load
from star.hw.noc import Mesh, Router
from star.hw.verilog import convert
from star.sim.noc_bench_tb import BISECT, SAT_FACTOR
from star.sim.noc_traffic import BUILD_ARGS
from star.sim.runner import REPO_ROOT, run
from star.spec.noc_config import NocConfig

SCRIPT = "scripts/bench_noc.py"
OUT = REPO_ROOT / "docs" / "results" / "noc_bench"
WORK = REPO_ROOT / "build" / "bench" / "noc"
CFG = NocConfig()                  # the tests' 4×4 configuration: the Verilator build is shared
WORDS = 4                          # words (flits) per packet
FULL = {"warmup": 500, "measure": 2000, "rates": [round(0.05 * i, 2) for i in range(1, 21)]}
QUICK = {"warmup": 200, "measure": 600, "rates": [round(0.1 * i, 1) for i in range(1, 11)]}


def log(msg: str) -> None:
    print(f"bench_noc: {msg}", file=sys.stderr, flush=True)


def simulate(params: dict) -> dict:
    """Run the three cocotb benchmarks; return their JSON results."""
    out = WORK / "sim"
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.json"):
        f.unlink()
    start = time.monotonic()
    run(convert(Mesh(CFG), name="noc_mesh"), "noc_mesh", "star.sim.noc_bench_tb", seed=1,
        build_args=BUILD_ARGS, timeout_s=3600,
        config={"noc": CFG.to_dict(), "patterns": list(PATTERNS), "words": WORDS,
                "warmup": params["warmup"], "measure": params["measure"],
                "rates": params["rates"], "out": str(out)})
    res = {name: json.loads((out / f"{name}.json").read_text())
           for name in ("latency_sweep", "full_load", "zero_load")}
    res["seconds"] = time.monotonic() - start
    log(f"simulation: {res['seconds']:.0f} s")
    return res


def area() -> dict:
    """Yosys generic cells of the centre router and of the 4×4 mesh."""
    out = {}
    for name, dut, top in (("router", Router(CFG, 1, 1), "noc_router"),
                           ("mesh_4x4", Mesh(CFG), "noc_mesh")):
        out[name] = yosys_stats(convert(dut, name=top), top, WORK / name)
        log(f"{name}: {out[name]['cells']} cells, {out[name]['flip_flops']} FFs "
            f"({out[name]['seconds']:.0f} s)")
    return out


def fmax() -> dict:
    """ECP5 fmax of the centre router and of a 3×3 mesh (None with the reason when it fails)."""
    out = {}
    for name, dut, top in (("router", Router(CFG, 1, 1), "noc_router"),
                           ("mesh_3x3", Mesh(NocConfig(rows=3, cols=3)), "noc_mesh")):
        try:
            out[name] = ecp5_fmax(convert(dut, name=top), top, WORK / f"{name}-ecp5")
            log(f"{name}: {out[name]['fmax_mhz']} MHz, {out[name]['luts']} LUTs "
                f"({out[name]['seconds']:.0f} s)")
        except (ToolMissing, SynthError) as e:
            out[name] = {"error": str(e).splitlines()[0]}
            log(f"{name}: fmax skipped: {out[name]['error']}")
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for pattern in PATTERNS:
        sweep = res["sim"]["latency_sweep"][pattern]
        pts = [p for p in sweep["points"] if not p["saturated"]]
        line, = a.plot([p["rate"] for p in pts], [p["latency"] for p in pts], "o-", ms=3,
                       label=pattern)
        a.axvline(sweep["saturation"], color=line.get_color(), ls=":", lw=1)
        pts = sweep["points"]
        b.plot([p["rate"] for p in pts] + [1.0],
               [p["accepted"] for p in pts] + [res["sim"]["full_load"][pattern]], "o-", ms=3,
               label=pattern)
    a.set(xlabel="offered load (flits/cycle/node)", ylabel="average packet latency (cycles)",
          title=f"4×4 mesh, {WORDS}-flit packets (dotted: saturation)", ylim=(0, None))
    b.set(xlabel="offered load (flits/cycle/node)", ylabel="accepted (flits/cycle/node)",
          title="throughput", xlim=(0, 1.02), ylim=(0, 1.02))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _fmax_cell(r: dict) -> str:
    return f"{r['fmax_mhz']} MHz" if "fmax_mhz" in r else f"not measured ({r['error']})"


def markdown(res: dict) -> str:
    sim, params = res["sim"], res["params"]
    lines = [
        "# Mesh NoC benchmark (hw.noc, RTL)",
        "",
        f"Command: `{res['command']}` (from the repository root, with the project venv's python)",
        "",
        f"Machine: {res['machine']}",
        "",
        "Tools: " + tool_versions(res["tools"]),
        "",
        f"Config: {CFG.rows}×{CFG.cols} mesh, flit_bits={CFG.flit_bits}, fifo_depth="
        f"{CFG.fifo_depth}, max_packet_flits={CFG.max_packet_flits}; {WORDS}-flit packets. "
        "Verilator + cocotb (`sim/noc_bench_tb.py`), every packet checked against golden.noc. "
        "Generated by `scripts/bench_noc.py`; do not edit. Wall-clock times are only in "
        "report.json.",
        "",
        "## Zero-load latency",
        "",
        "Cycles from the inject transfer of a packet's first word to the eject transfer of its "
        "first (head) or last word; one packet in the network.",
        "",
        "| hops | example | head | packet |",
        "|---|---|---|---|",
    ]
    for h, r in sim["zero_load"].items():
        lines.append(f"| {h} | {tuple(r['src'])} → {tuple(r['dst'])} | {r['head']} | "
                     f"{r['packet']} |")
    lines += [
        "",
        f"Per hop: {res['per_hop']} cycle(s); head latency = hops + {res['head_at_0']}; a "
        f"{WORDS}-flit packet's tail follows {WORDS - 1} cycles later.",
        "",
        "## Saturation throughput",
        "",
        "Saturation throughput: the highest offered load (flits/cycle/node, every node injecting "
        f"at that rate) at which the mean packet latency stays within {SAT_FACTOR}× the "
        "zero-load latency and the measured packets drain (sweep in steps of "
        f"{params['rates'][0]}, then {BISECT} bisection steps). Bound: 1 / max(1, busiest link "
        "load, busiest ejection load) per unit injection rate under XY routing "
        "(golden.noc.channel_load), the ideal throughput. Full load: accepted flits/cycle/node "
        "when every source is always backlogged (offered load 1); nodes whose paths are not "
        "congested then inject more than the others, so it can exceed the bound.",
        "",
        "| pattern | mean hops | saturation throughput | channel-load bound | of the bound "
        "| full load |",
        "|---|---|---|---|---|---|",
    ]
    for p in PATTERNS:
        s, bnd = sim["latency_sweep"][p]["saturation"], res["bounds"][p]["bound"]
        lines.append(f"| {p} | {res['bounds'][p]['hops']:.2f} | {s:.3f} | {bnd:.3f} | "
                     f"{s / bnd:.0%} | {sim['full_load'][p]:.3f} |")
    lines += [
        "",
        "## Latency vs offered load",
        "",
        "Mean packet latency in cycles, from generation (source queueing included) to the last "
        f"flit's ejection, of the packets generated in a {params['measure']}-cycle window after "
        f"{params['warmup']} warm-up cycles; net = without source queueing. A pattern's sweep "
        "stops at its first saturated load (*sat*); the bisection points are in report.json and "
        "the plot.",
        "",
        "| offered | " + " | ".join(PATTERNS) + " |",
        "|---|" + "---|" * len(PATTERNS),
    ]
    for rate in params["rates"]:
        cells = []
        for p in PATTERNS:
            pt = next((q for q in sim["latency_sweep"][p]["points"] if q["rate"] == rate), None)
            if pt is None:
                cells.append("")
            elif pt["saturated"]:
                cells.append("*sat*")
            else:
                cells.append(f"{pt['latency']:.1f} (net {pt['network_latency']:.1f})")
        if any(cells):
            lines.append(f"| {rate:.2f} | " + " | ".join(cells) + " |")
    r, mesh = res["area"]["router"], res["area"]["mesh_4x4"]
    lines += [
        "",
        "![latency and throughput vs offered load](latency.png)",
        "",
        "## Area and fmax",
        "",
        "Yosys `synth -flatten` generic cells (flip-flops = cell types containing `DFF`; the "
        "FIFO memories are mapped to flip-flops and multiplexers). ECP5: `synth_ecp5` + "
        "out-of-context nextpnr-ecp5 (25k, CABGA256), FIFOs in distributed RAM.",
        "",
        "| design | cells | flip-flops | ECP5 LUT4 | ECP5 fmax |",
        "|---|---|---|---|---|",
        f"| router (centre, 5 ports) | {r['cells']} | {r['flip_flops']} | "
        f"{res['fmax'].get('router', {}).get('luts', '')} | "
        f"{_fmax_cell(res['fmax']['router']) if res['fmax'] else 'not measured (--no-fmax)'} |",
        f"| 4×4 mesh incl. NIs | {mesh['cells']} | {mesh['flip_flops']} | | |",
    ]
    if "mesh_3x3" in res["fmax"]:
        m3 = res["fmax"]["mesh_3x3"]
        lines.append(f"| 3×3 mesh incl. NIs | | | {m3.get('luts', '')} | {_fmax_cell(m3)} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short windows, coarse rates, no fmax")
    ap.add_argument("--no-fmax", action="store_true", help="skip ECP5 place and route")
    args = ap.parse_args(argv)
    params = QUICK if args.quick else FULL
    command = " ".join(["python", SCRIPT] + (["--quick"] if args.quick else []) +
                       (["--no-fmax"] if args.no_fmax and not args.quick else []))
    start = time.monotonic()
    res = {"command": command, "machine": machine(), "tools": tools(), "config": CFG.to_dict(),
           "words": WORDS, "params": params,
           "bounds": {p: channel_load(CFG, p) for p in PATTERNS}}
    res["sim"] = simulate(params)
    zl = res["sim"]["zero_load"]
    res["per_hop"] = zl["1"]["head"] - zl["0"]["head"]
    res["head_at_0"] = zl["0"]["head"]
    res["area"] = area()
    res["fmax"] = {} if args.quick or args.no_fmax else fmax()
    res["seconds"] = time.monotonic() - start
    OUT.mkdir(parents=True, exist_ok=True)
    plot(res, OUT / "latency.png")
    (OUT / "report.md").write_text(markdown(res))
    (OUT / "report.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    log(f"wrote {OUT.relative_to(REPO_ROOT)}/report.md, report.json, latency.png "
        f"({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
