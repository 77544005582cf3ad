#!/usr/bin/env python3
"""Summarise a ``make regress`` run (tests/test_regress.py) into docs/results/regress/.

Reads the records the run appended to ``build/regress/{valid,invalid,icarus,coverage}-*.jsonl``
and writes ``docs/results/regress/report.md`` (no timestamps) and ``report.json``: configs
tried, passes and mismatches, lint warnings, the parameter ranges drawn, the invalid inputs
by kind, Icarus vs Verilator, and code (line/branch/toggle) and functional coverage. The
failing records are listed with the command that replays them.

Usage (from the repository root, with the project venv's python; ``make regress`` runs it)::

    python scripts/regress_report.py [--command "make regress"]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from star.gen.machine import machine, tool_versions, tools  # noqa: E402
from star.sim.coverage import FUNCTIONAL_POINTS  # noqa: E402

LOGS = ROOT / "build" / "regress"
OUT = ROOT / "docs" / "results" / "regress"
RANGE_FIELDS = ("head_dim", "data_bits", "lanes", "tile", "k_tile", "max_seq", "dlzs_k_bits",
                "dlzs_shift_bits", "sufa_macs", "exp_frac_bits", "exp_out_bits", "recip_bits",
                "scale_bits", "axi_data_bits")


def load(kind: str) -> list[dict]:
    out = []
    for path in sorted(LOGS.glob(f"{kind}-*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def settle(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """One record per (seed, index): a config that failed and passed when rerun (after a fix:
    ``pytest --regress --seed S 'tests/test_regress.py::test_valid_config[I]'``) counts as
    passed. Returns (the records, the failures a rerun passed), both in file order."""
    passed = {(r["seed"], r["index"]) for r in records if r["result"] == "pass"}
    out, rerun, seen = [], [], set()
    for r in records:
        key = (r["seed"], r["index"])
        if key in passed and r["result"] != "pass":
            rerun.append(r)
        elif key not in seen:
            out.append(r)
            seen.add(key)
    return out, rerun


def summarize(command: str) -> dict:
    (valid, rerun), invalid = settle(load("valid")), load("invalid")
    icarus, coverage = load("icarus"), load("coverage")
    cfgs = [r["config"] for r in valid]
    cases = [r["case"] for r in valid]
    return {
        "command": command,
        "machine": machine(),
        "tools": tools(("amaranth", "verilator", "cocotb", "hypothesis")),
        "valid": {
            "tried": len(valid),
            "passed": sum(r["result"] == "pass" for r in valid),
            "mismatches": sum(r["result"] != "pass" for r in valid),
            "lint_warnings": sum(r.get("lint_warnings", 0) for r in valid),
            "distinct_configs": len({json.dumps(c, sort_keys=True) for c in cfgs}),
            "ranges": {f: [min(c[f] for c in cfgs), max(c[f] for c in cfgs)]
                       for f in RANGE_FIELDS} if cfgs else {},
            "radius_on": sum(c["radius"] >= 0 for c in cfgs),
            "nearest": sum(c["dlzs_rounding"] == "nearest" for c in cfgs),
            "two_terms": sum(c.get("dlzs_terms", 1) == 2 for c in cfgs),
            "jobs": {"causal": sum(c["causal"] for c in cases),
                     "dense": sum(c["dense"] for c in cases),
                     "radius_small": sum(c["radius"] == "small" for c in cases),
                     "max_seq_len": max((c["seq_len"] for c in cases), default=0)},
            "seconds": round(sum(r.get("total_s", 0) for r in valid)),
            "failures": [r for r in valid if r["result"] != "pass"],
            "passed_on_rerun": rerun,
        },
        "invalid": {
            "tried": len(invalid),
            "passed": sum(r["result"] == "pass" for r in invalid),
            "by_kind": dict(sorted(Counter(r["what"].split("=")[0].split(" ")[0]
                                           for r in invalid).items())),
            "failures": [r for r in invalid if r["result"] != "pass"],
        },
        "icarus": icarus,
        "coverage": coverage,
    }


def markdown(s: dict) -> str:
    v, inv = s["valid"], s["invalid"]
    lines = [
        "# Robustness regression (`make regress`)", "",
        f"Command: `{s['command']}` (tests/test_regress.py, then scripts/regress_report.py)"
        + ("." if s.get("pytest_status") is None else
           f"; pytest exit status {s['pytest_status']}"
           + (" (every test passed, including test_every_config_field_reaches_the_rtl)."
              if s["pytest_status"] == 0 else " (some test failed).")),
        f"Machine: {s['machine']}; " + tool_versions(s["tools"]) + ".",
        "", "## Random valid configs", "",
        "Hypothesis draws a StarConfig and one job per example; each goes "
        "`gen.build.generate` → `verilator --lint-only -Wall` (sim/waivers.vlt) → the core's "
        "cocotb end-to-end test (the job without and with random stalls on every AXI channel; "
        "O bit-exact vs golden.core, counters, bus traffic).", "",
        "| configs tried | distinct | passed | mismatches | lint warnings | CPU time |",
        "|---|---|---|---|---|---|",
        f"| {v['tried']} | {v['distinct_configs']} | {v['passed']} | {v['mismatches']} | "
        f"{v['lint_warnings']} | {v['seconds'] / 60:.0f} min |", "",
    ]
    if v["ranges"]:
        lines += ["Ranges drawn: " + ", ".join(f"{f} {lo}–{hi}" for f, (lo, hi)
                                               in v["ranges"].items())
                  + f"; radius on in {v['radius_on']}, DLZS rounding nearest in {v['nearest']}, "
                  + f"two DLZS terms in {v.get('two_terms', 0)}. "
                  f"Jobs: {v['jobs']['causal']} causal, {v['jobs']['dense']} dense, "
                  f"{v['jobs']['radius_small']} with a small radius, SEQ_LEN up to "
                  f"{v['jobs']['max_seq_len']}.", ""]
    for r in v["failures"]:
        lines += [f"- FAILED (seed {r['seed']}, index {r['index']}): "
                  f"`{json.dumps(r['config'], sort_keys=True)}` job "
                  f"`{json.dumps(r['case'], sort_keys=True)}` seed {r['job_seed']}: "
                  f"{r.get('error', '')[:300]}"]
    for r in v.get("passed_on_rerun", []):
        lines += [f"- failed, then passed when rerun (seed {r['seed']}, index {r['index']}): "
                  f"`{json.dumps(r['config'], sort_keys=True)}` job "
                  f"`{json.dumps(r['case'], sort_keys=True)}` seed {r['job_seed']}: "
                  f"{r.get('error', '')[:300]}"]
    if v["failures"] or v.get("passed_on_rerun"):
        lines += ["", "Rerun one: `.venv/bin/python -m pytest --regress --seed S "
                      "'tests/test_regress.py::test_valid_config[I]'` (S, I: the record's "
                      "seed and index).", ""]
    lines += ["## Invalid input", "",
              f"{inv['tried']} invalid configs and flags (`star generate`): {inv['passed']} "
              "gave exit status 2 and one `star: ...` line naming the field, no traceback, "
              "nothing written.", "",
              "By field or flag: " + ", ".join(f"{k} {n}" for k, n in inv["by_kind"].items())
              + ".", ""]
    for r in inv["failures"]:
        lines += [f"- FAILED: {r['what']}: {r['problems']} ({r['error'][:200]})"]
    lines += ["## Second simulator", ""]
    for r in s["icarus"]:
        lines += [f"The tiny preset's whole core regression (sim/core_tb.py, six tests, seed "
                  f"{r['seed']}) under Icarus Verilog and Verilator: {r['jobs']} checked jobs "
                  f"under Verilator, {r['icarus_jobs']} under Icarus, {r['mismatches']} "
                  f"differences in CYCLES or O (both also bit-exact vs golden): "
                  f"**{r['result']}**.", ""]
    lines += ["## Coverage", ""]
    for r in s["coverage"]:
        lines += ["The tiny preset's whole core regression on a Verilator model built with "
                  "`--coverage-line --coverage-toggle`:", "",
                  "| kind | points | hit | % |", "|---|---|---|---|"]
        lines += [f"| {k} | {c['points']:,} | {c['hit']:,} | {c['percent']} |"
                  for k, c in r["code"].items()]
        lines += ["", "Functional coverage points (sim/coverage.py; hits = jobs, or cycles for "
                      "an AXI wait):", "", "| point | hits |", "|---|---|"]
        lines += [f"| {p} | {r['functional'].get(p, 0):,} |" for p in FUNCTIONAL_POINTS]
        lines += ["", f"Missed: {', '.join(r['missed']) or 'none'}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", default="make regress",
                    help="the command that produced the logs (default: %(default)s)")
    ap.add_argument("--status", type=int, default=None,
                    help="pytest's exit status for that run (0: every test passed)")
    args = ap.parse_args(argv)
    s = summarize(args.command)
    s["pytest_status"] = args.status
    if not s["valid"]["tried"] and not s["invalid"]["tried"]:
        print(f"regress_report: no records in {LOGS}; run make regress first", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(s, indent=1, sort_keys=True) + "\n")
    (OUT / "report.md").write_text(markdown(s))
    print(f"wrote {OUT / 'report.md'}: {s['valid']['tried']} valid configs "
          f"({s['valid']['mismatches']} mismatches), {s['invalid']['tried']} invalid inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
