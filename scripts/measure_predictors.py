#!/usr/bin/env python3
"""Measure the DLZS predictor against the 4-bit MAC baseline, and the SADS selector.

For the ``int8`` and ``default`` presets with lanes=2 (each preset's pred_cycles):

* area: Yosys ``synth -flatten`` generic cells and flip-flops of DlzsPredictor, Mac4Predictor and
  SadsSelector at lanes=1 and lanes=2 (per lane = the difference), and the DLZS/MAC4 cell ratio
  (project goal: at most 0.5);
* fmax: out-of-context ECP5 place and route (25k, CABGA256) of the three units, with multipliers in
  LUTs (``synth_ecp5 -nodsp``) so the LUT counts compare like for like; a unit that does not fit
  at lanes=2 is retried at lanes=1, and the table says so;
* throughput: keys per cycle per lane with the input always valid and the output always ready
  (cocotb + Verilator, :mod:`sim.throughput_tb`).

Writes ``docs/results/predictors.md`` (no timestamps and no run times: rerunning on the same machine
with the same tools gives the same text) and ``docs/results/predictors.json`` (the same figures,
Yosys cell types, ECP5 utilisation, and wall-clock seconds). Work files go to
``build/bench/predictors/``.

Usage (from the repository root, with the project venv's python)::

    python scripts/measure_predictors.py [--quick] [--no-fmax]

``--quick``: only the int8 config, no fmax. ``--no-fmax``: skip place and route (the only step
that needs ``make install-synth``). ``make bench-predictors`` runs the full set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

from star.gen.machine import machine, tool_versions, tools
from star.gen.synth import SynthError, ToolMissing, ecp5_fmax, yosys_stats
from star.hw.dlzs import DlzsPredictor
from star.hw.mac4 import Mac4Predictor
from star.hw.sads import SadsSelector
from star.hw.verilog import convert, write_if_changed
from star.sim.runner import REPO_ROOT, run
from star.spec.config import preset

SCRIPT = "scripts/measure_predictors.py"
OUT_DIR = REPO_ROOT / "docs" / "results"
WORK = REPO_ROOT / "build" / "bench" / "predictors"
PRESETS = ("int8", "default")
N_KEYS = 512
GOAL = 0.5
UNITS = {
    "dlzs": DlzsPredictor,
    "mac4": Mac4Predictor,
    "sads": SadsSelector,           # DLZS's sums (pred_sum_bits) and row shifts
}
NAMES = {"dlzs": "DLZS", "mac4": "MAC4", "sads": "SADS"}


def log(msg: str) -> None:
    print(f"measure_predictors: {msg}", file=sys.stderr, flush=True)


def command(quick=False, no_fmax=False) -> str:
    return " ".join(["python", SCRIPT] + (["--quick"] if quick else []) +
                    (["--no-fmax"] if no_fmax and not quick else []))


def verilog(unit: str, cfg) -> tuple[str, str]:
    top = f"star_{unit}"
    return convert(UNITS[unit](cfg), name=top), top


def measure_area(cfg, cmd: str) -> dict:
    """Yosys stats of every unit at lanes=1 and lanes=2."""
    out = {}
    for unit in UNITS:
        out[unit] = {}
        for lanes in (1, 2):
            text, top = verilog(unit, replace(cfg, lanes=lanes))
            r = yosys_stats(text, top, WORK / cfg.name / f"{unit}-l{lanes}")
            log(f"{cfg.name} {unit} lanes={lanes}: {r['cells']} cells, {r['flip_flops']} FFs "
                f"({r['seconds']:.1f} s)")
            out[unit][f"lanes{lanes}"] = {**r, "command": cmd}
    return out


def measure_fmax(cfg, cmd: str) -> dict:
    """ECP5 fmax of every unit at lanes=2, or lanes=1 when lanes=2 does not place."""
    out = {}
    for unit in UNITS:
        note = ""
        for lanes in (2, 1):
            text, top = verilog(unit, replace(cfg, lanes=lanes))
            try:
                r = ecp5_fmax(text, top, WORK / cfg.name / f"{unit}-l{lanes}-ecp5", nodsp=True)
            except SynthError as e:
                if lanes == 1:
                    raise
                note = f"lanes=2 failed ({str(e).split(';')[0]}); measured at lanes=1"
                log(f"{cfg.name} {unit}: {note}")
                continue
            log(f"{cfg.name} {unit} lanes={lanes}: {r['fmax_mhz']} MHz, {r['luts']} LUT4 "
                f"({r['seconds']:.1f} s)")
            out[unit] = {**r, "lanes": lanes, "note": note, "command": cmd}
            break
    return out


def measure_throughput(cfg, cmd: str) -> dict:
    """Keys per cycle per lane of DLZS and SADS (cocotb + Verilator)."""
    out = {}
    for unit in ("dlzs", "sads"):
        text, top = verilog(unit, cfg)
        result_file = WORK / cfg.name / f"throughput-{unit}.json"
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.unlink(missing_ok=True)
        start = time.monotonic()
        run(text, top, "star.sim.throughput_tb", seed=1, timeout_s=300,
            config={"cfg": cfg.to_dict(), "unit": unit, "n_keys": N_KEYS,
                    "out": str(result_file)})
        r = json.loads(result_file.read_text())
        r.update(seconds=time.monotonic() - start, lanes=cfg.lanes, pred_cycles=cfg.pred_cycles,
                 command=cmd)
        log(f"{cfg.name} {unit}: {r['keys_per_cycle']:.4f} keys/cycle per lane "
            f"({r['seconds']:.1f} s)")
        out[unit] = r
    return out


def ratio(a: int, b: int) -> float:
    return round(a / b, 3)


def markdown(res: dict) -> str:
    """The results page: figures only (no run times), so reruns give the same text."""
    L = [
        "# Predictor and selector measurements",
        "",
        f"Command: `{res['command']}` (from the repository root, with the project venv's python; "
        "`make bench-predictors` runs the full set)",
        "",
        f"Machine: {res['machine']}",
        "",
        "Tools: " + tool_versions(res["tools"]),
        "",
        "Every figure below was measured on that machine with that command (each table names the "
        "smallest command that reproduces it). Wall-clock run times are only in "
        "`predictors.json`. Generated by `scripts/measure_predictors.py`; do not edit.",
        "",
        "## Configurations",
        "",
        "| config | head_dim | data_bits | lanes | pred_cycles | tile | k_tile | dlzs_k_bits | "
        "dlzs_shift_bits | pred_bits | mac4_bits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in res["configs"].items():
        k, f = c["config"], c["formats"]
        L.append(f"| {name} | {k['head_dim']} | {k['data_bits']} | {k['lanes']} | "
                 f"{k['pred_cycles']} | {k['tile']} | {k['k_tile']} | {k['dlzs_k_bits']} | "
                 f"{k['dlzs_shift_bits']} | {f['pred_bits']} | {f['mac4_bits']} |")
    area_cmd = {name: c["area"]["dlzs"]["lanes2"]["command"] for name, c in res["configs"].items()}

    L += ["", "## Predictor area: DLZS vs the 4-bit MAC baseline", "",
          "Yosys `synth -flatten -top <top>; stat` (generic gates, one cell each; flip-flops = "
          "cell types containing `DFF`). Both predictors have the same ports, pipeline and adder "
          "tree (`hw/predictor.py`). *Per added lane* = cells(lanes=2) - cells(lanes=1): the "
          "per-lane array without the shared query encoders and key preparation.", "",
          f"| config | lanes | DLZS cells | DLZS FFs | MAC4 cells | MAC4 FFs | DLZS/MAC4 cells | "
          f"goal ≤ {GOAL} | DLZS/MAC4 per added lane |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, c in res["configs"].items():
        d, m = c["area"]["dlzs"], c["area"]["mac4"]
        r, rl = c["ratio"]["cells"], c["ratio"]["cells_per_added_lane"]
        L.append(f"| {name} | {c['config']['lanes']} | {d['lanes2']['cells']} | "
                 f"{d['lanes2']['flip_flops']} | {m['lanes2']['cells']} | "
                 f"{m['lanes2']['flip_flops']} | {r:.3f} | {'met' if r <= GOAL else 'NOT met'} | "
                 f"{rl:.3f} |")
    L += ["", "Reproduce: " + "; ".join(f"{n}: `{cmd}`" for n, cmd in area_cmd.items())]

    L += ["", "## SADS selector area per lane", "",
          "Same Yosys flow; score bits = pred_sum_bits (DLZS's sums, before the row base "
          "shift, which SADS takes beside them). "
          "Per lane = lanes=2 minus lanes=1.", "",
          "| config | score bits | k_tile | cells, lanes=1 | cells, lanes=2 | cells per lane | "
          "FFs, lanes=1 | FFs per lane |",
          "|---|---|---|---|---|---|---|---|"]
    for name, c in res["configs"].items():
        s = c["area"]["sads"]
        L.append(f"| {name} | {c['formats']['pred_sum_bits']} | {c['config']['k_tile']} | "
                 f"{s['lanes1']['cells']} | {s['lanes2']['cells']} | "
                 f"{s['lanes2']['cells'] - s['lanes1']['cells']} | {s['lanes1']['flip_flops']} | "
                 f"{s['lanes2']['flip_flops'] - s['lanes1']['flip_flops']} |")
    L += ["", "Reproduce: " + "; ".join(f"{n}: `{cmd}`" for n, cmd in area_cmd.items())]

    L += ["", "## ECP5 fmax", ""]
    if not any("fmax" in c for c in res["configs"].values()):
        L.append("Not measured in this run (`--quick` / `--no-fmax`).")
    else:
        L += ["`synth_ecp5 -nodsp` (multipliers in LUTs, so LUT counts compare like for like), "
              "then `nextpnr-ecp5 --25k --package CABGA256 --out-of-context --freq 100` "
              "(the 100 MHz target only steers placement). With DSP mapping (plain "
              "`synth_ecp5`), MAC4 puts each 4x4 product in a MULT18X18D block, head_dim x "
              "head_dim / pred_cycles of them per lane, and the 25k device has 28.", "",
              "| config | unit | lanes | fmax (MHz) | LUT4 | FFs | note |",
              "|---|---|---|---|---|---|---|"]
        cmds = {}
        for name, c in res["configs"].items():
            for unit, r in c.get("fmax", {}).items():
                cmds[name] = r["command"]
                L.append(f"| {name} | {NAMES[unit]} | {r['lanes']} | {r['fmax_mhz']:.2f} | "
                         f"{r['luts']} | {r['ffs']} | {r['note'] or '-'} |")
        L += ["", "Reproduce: " + "; ".join(f"{n}: `{cmd}`" for n, cmd in cmds.items())]

    L += ["", "## Streaming throughput", "",
          f"cocotb + Verilator (`sim/throughput_tb.py`): {N_KEYS} keys per lane, input always "
          "valid, output always ready; cycles from the first input transfer to the last output "
          "transfer, both included, so the pipeline latency is in the count (SADS: one list per "
          "tile of the config's `tile` keys).", "",
          "| config | unit | lanes | pred_cycles | keys per lane | cycles | keys/cycle per lane |",
          "|---|---|---|---|---|---|---|"]
    for name, c in res["configs"].items():
        for unit, r in c["throughput"].items():
            L.append(f"| {name} | {NAMES[unit]} | {r['lanes']} | {r['pred_cycles']} | {r['keys']} | "
                     f"{r['cycles']} | {r['keys_per_cycle']:.4f} |")
    L += ["", "Reproduce: " + "; ".join(f"{n}: `{cmd}`" for n, cmd in area_cmd.items()), ""]
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the int8 config, no fmax")
    ap.add_argument("--no-fmax", action="store_true", help="skip ECP5 place and route")
    args = ap.parse_args(argv)
    do_fmax = not (args.quick or args.no_fmax)
    start = time.monotonic()
    res = {"command": command(args.quick, args.no_fmax), "machine": machine(), "tools": tools(),
           "goal_dlzs_over_mac4_cells": GOAL, "configs": {}}
    for name in PRESETS[:1] if args.quick else PRESETS:
        cfg = replace(preset(name), lanes=2)
        # the smallest command giving this config's figures
        area_cmd = command(quick=name == "int8", no_fmax=True)
        c = {"config": cfg.to_dict(), "formats": {"pred_bits": cfg.formats.pred_bits,
                                                  "pred_sum_bits": cfg.formats.pred_sum_bits,
                                                  "mac4_bits": cfg.formats.mac4_bits}}
        try:
            if do_fmax:           # first: a missing nextpnr fails at once, not after minutes
                c["fmax"] = measure_fmax(cfg, command())
        except ToolMissing as e:
            log(str(e))
            return 2
        c["area"] = area = measure_area(cfg, area_cmd)
        d, m = area["dlzs"], area["mac4"]
        c["ratio"] = {
            "cells": ratio(d["lanes2"]["cells"], m["lanes2"]["cells"]),
            "flip_flops": ratio(d["lanes2"]["flip_flops"], m["lanes2"]["flip_flops"]),
            "cells_per_added_lane": ratio(d["lanes2"]["cells"] - d["lanes1"]["cells"],
                                          m["lanes2"]["cells"] - m["lanes1"]["cells"]),
        }
        c["ratio"]["goal_met"] = c["ratio"]["cells"] <= GOAL
        c["throughput"] = measure_throughput(cfg, area_cmd)
        res["configs"][name] = c
    res["total_seconds"] = round(time.monotonic() - start, 1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_if_changed(OUT_DIR / "predictors.md", markdown(res))
    write_if_changed(OUT_DIR / "predictors.json", json.dumps(res, indent=1, sort_keys=True) + "\n")
    log(f"wrote {OUT_DIR.relative_to(REPO_ROOT)}/predictors.md and .json "
        f"in {res['total_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
