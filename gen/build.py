"""``star generate``: emit the Verilog of a configuration into ``<outdir>/rtl/`` and the core's
register map beside it.

Blocks: the STAR core (``star_core``, the SoC-facing top with AXI4 / AXI4-Lite, docs/core.md) and
its stages as standalone tops: the DLZS predictor (``star_dlzs``), the SADS selector
(``star_sads``) and the SU-FA engine (``star_sufa``). ``rtl/filelist.f`` names them all. The
register map goes to ``regmap.md``, ``star_regs.h`` and ``star_regs.py``.
Output is byte-identical on rerun (no paths, no dates); unchanged files are not rewritten.
"""

from __future__ import annotations

from pathlib import Path

from . import regmap
from .config import StarConfig
from .verilog import convert, write_if_changed

__all__ = ["blocks", "generate"]


def blocks(cfg: StarConfig) -> dict:
    """Return {top-module name: component} for every block of the configuration."""
    from hw.core import StarCore
    from hw.dlzs import DlzsPredictor
    from hw.sads import SadsSelector
    from hw.sufa import SufaEngine
    return {"star_core": StarCore(cfg), "star_dlzs": DlzsPredictor(cfg),
            "star_sads": SadsSelector(cfg), "star_sufa": SufaEngine(cfg)}


def generate(cfg: StarConfig, outdir: Path) -> list[Path]:
    """Write ``rtl/<top>.v`` per block, ``rtl/filelist.f`` and the register map; return the paths."""
    outdir = Path(outdir)
    rtl = outdir / "rtl"
    paths = []
    for name, component in blocks(cfg).items():
        path = rtl / f"{name}.v"
        write_if_changed(path, convert(component, name=name))
        paths.append(path)
    filelist = rtl / "filelist.f"
    write_if_changed(filelist, "".join(f"{p.name}\n" for p in paths))
    paths.append(filelist)
    for fname, render in (("regmap.md", regmap.markdown), ("star_regs.h", regmap.c_header),
                          ("star_regs.py", regmap.python_module)):
        write_if_changed(outdir / fname, render(cfg))
        paths.append(outdir / fname)
    return paths
