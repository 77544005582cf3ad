"""``star generate``: emit the Verilog of a configuration into ``<outdir>/rtl/``.

Today the generator emits the blocks that exist: the DLZS predictor (``star_dlzs``), the SADS
selector (``star_sads``) and the SU-FA engine (``star_sufa``). Each block added by a later stage of the project adds its file here; the
filelist names them all.
Output is byte-identical on rerun (no paths, no dates); unchanged files are not rewritten.
"""

from __future__ import annotations

from pathlib import Path

from .config import StarConfig
from .verilog import convert, write_if_changed

__all__ = ["blocks", "generate"]


def blocks(cfg: StarConfig) -> dict:
    """Return {top-module name: component} for every block of the configuration."""
    from hw.dlzs import DlzsPredictor
    from hw.sads import SadsSelector
    from hw.sufa import SufaEngine
    return {"star_dlzs": DlzsPredictor(cfg), "star_sads": SadsSelector(cfg),
            "star_sufa": SufaEngine(cfg)}


def generate(cfg: StarConfig, outdir: Path) -> list[Path]:
    """Write ``rtl/<top>.v`` per block and ``rtl/filelist.f``; return the paths written to."""
    rtl = Path(outdir) / "rtl"
    paths = []
    for name, component in blocks(cfg).items():
        path = rtl / f"{name}.v"
        write_if_changed(path, convert(component, name=name))
        paths.append(path)
    filelist = rtl / "filelist.f"
    write_if_changed(filelist, "".join(f"{p.name}\n" for p in paths))
    return paths + [filelist]
