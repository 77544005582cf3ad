"""``star generate``: emit the Verilog of a configuration into ``<outdir>/rtl/`` and the core's
register map beside it.

Blocks: the STAR core (``star_core``, the SoC-facing top with AXI4 / AXI4-Lite, docs/core.md) and
its stages as standalone tops: the DLZS predictor (``star_dlzs``), the SADS selector
(``star_sads``) and the SU-FA engine (``star_sufa``); with a mesh (``--mesh RxC``) also the
Spatial-STAR array of R×C such cores (``star_spatial``, docs/spatial.md). ``rtl/filelist.f`` names
them all. The
register map goes to ``regmap.md``, ``star_regs.h`` and ``star_regs.py``; ``manifest.json``
describes the build (resolved parameters, config hash, tool versions, ports, register map, stage
latencies) and ``star_<name>.core`` lets FuseSoC use the RTL.
Output is byte-identical on rerun (no paths, no dates); unchanged files are not rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import regmap
from .config import ConfigError, StarConfig
from .spatial_config import SpatialConfig
from .verilog import convert, write_if_changed

__all__ = ["TOPS", "SPATIAL_TOP", "blocks", "generate", "default_jobs"]

TOPS = ("star_core", "star_dlzs", "star_sads", "star_sufa")
SPATIAL_TOP = "star_spatial"


def blocks(cfg: StarConfig, only=None, mesh: tuple[int, int] | None = None) -> dict:
    """Return {top-module name: component} for every block of the configuration (with ``mesh``
    = (rows, cols) also the Spatial-STAR array), or for the tops named by ``only`` (a name or a
    collection of names)."""
    from hw.core import StarCore
    from hw.dlzs import DlzsPredictor
    from hw.sads import SadsSelector
    from hw.sufa import SufaEngine
    classes = dict(zip(TOPS, (StarCore, DlzsPredictor, SadsSelector, SufaEngine)))
    names = TOPS + ((SPATIAL_TOP,) if mesh else ())
    wanted = set(names) if only is None else {only} if isinstance(only, str) else set(only)
    if SPATIAL_TOP in wanted and not mesh:
        raise ConfigError(f"{SPATIAL_TOP} needs a mesh: rows and cols (--mesh RxC)")
    out = {name: cls(cfg) for name, cls in classes.items() if name in wanted}
    if SPATIAL_TOP in wanted:
        from hw.spatial import SpatialStar
        out[SPATIAL_TOP] = SpatialStar(SpatialConfig(cfg, rows=mesh[0], cols=mesh[1]))
    return out


def default_jobs() -> int:
    """Processes ``generate`` converts tops in by default: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _convert_top(cfg: StarConfig, name: str, mesh) -> str:
    """The Verilog of one top, built afresh (a worker process of ``generate``)."""
    return convert(blocks(cfg, only=name, mesh=mesh)[name], name=name)


def generate(cfg: StarConfig, outdir: Path, tops=TOPS, mesh: tuple[int, int] | None = None,
             jobs: int | None = None) -> list[Path]:
    """Write ``rtl/<top>.v`` per block in *tops* (``star_spatial`` with ``mesh``),
    ``rtl/filelist.f`` and the register map; return the paths. The tops are converted in up to
    ``jobs`` processes (default :func:`default_jobs`); the output does not depend on it."""
    outdir = Path(outdir)
    rtl = outdir / "rtl"
    paths = []
    tops = blocks(cfg, only=tops, mesh=mesh)
    jobs = min(jobs or default_jobs(), len(tops))
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:     # the largest top first
            texts = {name: pool.submit(_convert_top, cfg, name, mesh) for name in tops}
            texts = {name: job.result() for name, job in texts.items()}
        for component in tops.values():    # converted by a worker: here only for the manifest
            component._MustUse__silence = True
    else:
        texts = {name: convert(component, name=name) for name, component in tops.items()}
    for name in tops:
        path = rtl / f"{name}.v"
        write_if_changed(path, texts[name])
        paths.append(path)
    filelist = rtl / "filelist.f"
    write_if_changed(filelist, "".join(f"{p.name}\n" for p in paths))
    paths.append(filelist)
    top = SPATIAL_TOP if SPATIAL_TOP in tops else "star_core"
    for fname, text in ((f"star_{cfg.name}.core",
                         fusesoc_core(cfg, [p.name for p in paths[:-1]], top)),
                        ("manifest.json", json.dumps(manifest(cfg, tops, mesh), indent=1) + "\n")):
        write_if_changed(outdir / fname, text)
        paths.append(outdir / fname)
    for fname, render in (("regmap.md", regmap.markdown), ("star_regs.h", regmap.c_header),
                          ("star_regs.py", regmap.python_module)):
        write_if_changed(outdir / fname, render(cfg))
        paths.append(outdir / fname)
    return paths


def ports(component) -> list[dict]:
    """The Verilog ports of a top-level component: name, direction, width (clk/rst implied)."""
    from amaranth.hdl import Value
    from amaranth.lib.wiring import Flow
    out = []
    for path, member, value in component.signature.flatten(component):
        out.append({"name": "__".join(str(p) for p in path),
                    "dir": "input" if member.flow == Flow.In else "output",
                    "width": len(Value.cast(value))})
    return out


def latencies(cfg) -> dict:
    """Per-stage latency and per-key cost in cycles (see each component's docstring)."""
    from hw.arith import tree_latency
    from hw.exp2 import Exp2Unit
    from hw.sufa_lane import A_LATENCY, norm_cycles, rescale_cycles, s_latency
    from .formats import Formats
    return {"dlzs_predictor": tree_latency(cfg.head_dim), "sads_list_after_last": 1,
            "sufa_cycles_per_key": Formats(cfg).sufa_chunks, "sufa_score": s_latency(cfg),
            "sufa_accumulate": A_LATENCY, "exp2": Exp2Unit.latency,
            "sufa_rescale_event": rescale_cycles(cfg), "sufa_normalise": norm_cycles(cfg)}


def manifest(cfg: StarConfig, tops: dict, mesh: tuple[int, int] | None = None) -> dict:
    """What was generated and from what: reproducible (no paths, no dates)."""
    import amaranth
    from .formats import Formats
    canon = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return {
        "generator": "star",
        "config": cfg.to_dict(),
        **({"mesh": SpatialConfig(cfg, rows=mesh[0], cols=mesh[1]).to_dict() | {"core": cfg.name}}
           if mesh else {}),
        "config_sha256": hashlib.sha256(canon).hexdigest(),
        "formats": Formats(cfg).to_dict(),
        "tools": {"amaranth": amaranth.__version__},
        "tops": {name: {"file": f"rtl/{name}.v", "clock": "clk", "reset": "rst (sync, high)",
                        "ports": ports(c)} for name, c in tops.items()},
        "latency_cycles": latencies(cfg),
        "register_map": regmap.as_dict(cfg),
    }


def fusesoc_core(cfg: StarConfig, files: list[str], top: str = "star_core") -> str:
    """A FuseSoC CAPI2 core file naming the generated RTL (toplevel ``top``)."""
    lines = ["CAPI=2:", "", f"name: ::star_{cfg.name}:0", "description: STAR sparse-attention "
             f"core, generated for config {cfg.name}", "", "filesets:", "  rtl:", "    files:"]
    lines += [f"      - rtl/{f}" for f in files]
    lines += ["    file_type: verilogSource", "", "targets:", "  default:",
              "    filesets: [rtl]", f"    toplevel: {top}", ""]
    return "\n".join(lines)
