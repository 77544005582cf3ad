"""SU-FA engine area and fmax: Yosys cells per lane and ECP5 fmax.

Writes docs/results/sufa_area.md. Run from the repository root (fmax needs `make install-synth`):

    .venv/bin/python scripts/measure_sufa.py [--no-fmax]

Per lane = cells(lanes=2) - cells(lanes=1). fmax: ECP5 25k, out-of-context, multipliers in LUTs
(`synth_ecp5 -nodsp`, as in scripts/measure_predictors.py), lanes = 1.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from star.gen.synth import SynthError, ToolMissing, ecp5_fmax, yosys_stats  # noqa: E402
from star.hw.sufa import SufaEngine  # noqa: E402
from star.hw.verilog import convert  # noqa: E402
from star.spec.config import preset, replace  # noqa: E402

CONFIGS = {
    "tiny (d=16, 8-bit)": replace(preset("tiny"), lanes=1),
    "d=32, 16-bit": replace(preset("default"), head_dim=32, lanes=1, tile=16, k_tile=4,
                            max_seq=1024),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-fmax", action="store_true", help="skip place and route")
    ap.add_argument("--out", default="docs/results/sufa_area.md")
    args = ap.parse_args(argv)
    work = Path("build/bench/sufa")
    lines = ["# SU-FA engine area and fmax", "",
             f"Command: `.venv/bin/python scripts/measure_sufa.py{' --no-fmax' if args.no_fmax else ''}`"
             f" · machine: {platform.machine()}, {platform.system()}, 2 cores", "",
             "| config | cells, lanes=1 | FFs, lanes=1 | cells per lane | FFs per lane | "
             "ECP5 fmax (lanes=1) | LUT4 (lanes=1) |", "|---|---|---|---|---|---|---|"]
    for name, cfg in CONFIGS.items():
        tag = name.split()[0].replace("=", "").replace(",", "")
        one = yosys_stats(convert(SufaEngine(cfg), name="star_sufa"), "star_sufa",
                          work / f"{tag}_l1")
        two = yosys_stats(convert(SufaEngine(replace(cfg, lanes=2)), name="star_sufa"),
                          "star_sufa", work / f"{tag}_l2")
        fmax = luts = "not run"
        if not args.no_fmax:
            try:
                r = ecp5_fmax(convert(SufaEngine(cfg), name="star_sufa"), "star_sufa",
                              work / f"{tag}_ecp5", nodsp=True)
                fmax, luts = f"{r['fmax_mhz']:.1f} MHz", str(r.get("luts", "?"))
            except ToolMissing as e:
                fmax = f"not measured ({e})"
            except SynthError as e:
                fmax = ("does not fit the 25k device" if "Unable to place" in str(e)
                        else f"failed: {str(e).splitlines()[0][:80]}")
        lines.append(f"| {name} | {one['cells']} | {one['flip_flops']} | "
                     f"{two['cells'] - one['cells']} | {two['flip_flops'] - one['flip_flops']} | "
                     f"{fmax} | {luts} |")
        print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
