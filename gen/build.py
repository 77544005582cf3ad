"""``star generate``: emit the Verilog of a configuration into ``<outdir>/rtl/`` and the core's
register map beside it.

Blocks: the STAR core (``star_core``, the SoC-facing top with AXI4 / AXI4-Lite, docs/core.md) and
its stages as standalone tops: the DLZS predictor (``star_dlzs``), the SADS selector
(``star_sads``) and the SU-FA engine (``star_sufa``); with a mesh (``--mesh RxC``) also the
Spatial-STAR array of R×C such cores (``star_spatial``, docs/spatial.md).

Files: ``rtl/<top>.v`` per top; two file lists of them: ``rtl/filelist.f`` (names relative to
``rtl/``, for Verilator's ``-F``, which resolves them relative to the list) and ``files.f`` (paths
``rtl/<top>.v``, for ``verilator -f files.f`` or ``iverilog -c files.f`` run in the output
folder); the register map as ``regmap.md``, ``star_regs.h`` and ``star_regs.py``;
``star_<name>.core`` for FuseSoC (toplevel: :func:`main_top`); ``manifest.json`` (resolved
parameters, config hash, where the config came from, tool versions, ports, register map, stage
latencies), written last: a folder is a complete output iff it holds ``manifest.json``. A run
first removes the previous run's files (:data:`OUTPUTS`, the marker first), so no stale top
survives and an interrupted run leaves no marker; nothing else in the folder is touched.
Output is byte-identical on rerun (no paths, no dates).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from star.hw.verilog import convert, write_if_changed
from star.spec.config import ConfigError, StarConfig
from star.spec.spatial_config import SpatialConfig

from . import regmap
from .progress import Progress

__all__ = ["TOPS", "SPATIAL_TOP", "OUTPUTS", "blocks", "generate", "default_jobs", "main_top"]

TOPS = ("star_core", "star_dlzs", "star_sads", "star_sufa")
SPATIAL_TOP = "star_spatial"
#: what a run of ``generate`` writes (globs relative to the output folder), the completion
#: marker ``manifest.json`` first: removed at the start of a run
OUTPUTS = ("manifest.json", "rtl/star_*.v", "rtl/filelist.f", "files.f", "star_*.core",
           "regmap.md", "star_regs.h", "star_regs.py")


def blocks(cfg: StarConfig, only=None, mesh: tuple[int, int] | None = None) -> dict:
    """Return {top-module name: component} for every block of the configuration (with ``mesh``
    = (rows, cols) also the Spatial-STAR array), or for the tops named by ``only`` (a name or a
    collection of names)."""
    from star.hw.core import StarCore
    from star.hw.dlzs import DlzsPredictor
    from star.hw.sads import SadsSelector
    from star.hw.sufa import SufaEngine
    classes = dict(zip(TOPS, (StarCore, DlzsPredictor, SadsSelector, SufaEngine)))
    names = TOPS + ((SPATIAL_TOP,) if mesh else ())
    wanted = set(names) if only is None else {only} if isinstance(only, str) else set(only)
    if SPATIAL_TOP in wanted and not mesh:
        raise ConfigError(f"{SPATIAL_TOP} needs a mesh: rows and cols (--mesh RxC)")
    out = {name: cls(cfg) for name, cls in classes.items() if name in wanted}
    if SPATIAL_TOP in wanted:
        from star.hw.spatial import SpatialStar
        out[SPATIAL_TOP] = SpatialStar(SpatialConfig(cfg, rows=mesh[0], cols=mesh[1]))
    return out


def default_jobs() -> int:
    """Processes ``generate`` converts tops in by default: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main_top(tops) -> str:
    """The top a FuseSoC core builds by default: ``star_spatial`` if generated, else
    ``star_core`` if generated, else the first generated top."""
    tops = list(tops)
    return next((t for t in (SPATIAL_TOP, "star_core") if t in tops), tops[0])


def _exit_on_sigint() -> None:
    """Initializer of the conversion workers. Ctrl-C reaches the whole process group: a worker
    then exits at once and quietly (SystemExit prints no traceback; subprocess.run kills the
    Yosys process the worker waits for), and the parent stops the pool and reports."""
    signal.signal(signal.SIGINT, _raise_exit)


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def _convert_top(job) -> tuple[str, str, float]:
    """(name, Verilog, seconds) of one top, built afresh (a worker process of ``generate``);
    ``job`` = (cfg, name, mesh)."""
    cfg, name, mesh = job
    start = time.monotonic()
    text = convert(blocks(cfg, only=name, mesh=mesh)[name], name=name)
    return name, text, time.monotonic() - start


def _remove_outputs(outdir: Path) -> None:
    """Remove what a previous run wrote (:data:`OUTPUTS`), the completion marker first."""
    for pattern in OUTPUTS:
        for path in sorted(outdir.glob(pattern)):
            path.unlink()


def generate(cfg: StarConfig, outdir: Path, tops=TOPS, mesh: tuple[int, int] | None = None,
             jobs: int | None = None, progress: Progress | None = None,
             origin: dict | None = None) -> list[Path]:
    """Write ``rtl/<top>.v`` per block in *tops* (``star_spatial`` with ``mesh``), the file
    lists, the register map, the FuseSoC core and, last, ``manifest.json``; return the paths.
    The tops are converted in up to ``jobs`` processes (default :func:`default_jobs`); the output
    does not depend on it. ``progress`` reports each top as it is converted; ``origin``
    ({"base": preset, "overrides": {field: value}}) goes into the manifest."""
    progress = progress or Progress("generate", cfg.name)
    outdir = Path(outdir)
    rtl = outdir / "rtl"
    _remove_outputs(outdir)
    tops = blocks(cfg, only=tops, mesh=mesh)
    jobs = min(jobs or default_jobs(), len(tops))
    texts = {}
    try:
        if jobs > 1:
            progress.note(f"converting {len(tops)} tops in {jobs} processes")
            pool = multiprocessing.Pool(jobs, initializer=_exit_on_sigint)
            try:                                                 # the largest top first
                for name, text, seconds in pool.imap_unordered(
                        _convert_top, [(cfg, name, mesh) for name in tops]):
                    texts[name] = text
                    progress.done(f"converting {name}", seconds)
                pool.close()
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
        else:
            for name, component in tops.items():
                with progress.step(f"converting {name}"):
                    texts[name] = convert(component, name=name)
    finally:
        for component in tops.values():   # converted by a worker, or not at all: no warning
            component._MustUse__silence = True
    with progress.step("register map, file lists, FuseSoC core, manifest"):
        files = {rtl / f"{name}.v": texts[name] for name in tops}
        files[rtl / "filelist.f"] = "".join(f"{name}.v\n" for name in tops)
        files[outdir / "files.f"] = "".join(f"rtl/{name}.v\n" for name in tops)
        files[outdir / f"star_{cfg.name}.core"] = fusesoc_core(cfg, list(tops))
        for fname, render in (("regmap.md", regmap.markdown), ("star_regs.h", regmap.c_header),
                              ("star_regs.py", regmap.python_module)):
            files[outdir / fname] = render(cfg)
        files[outdir / "manifest.json"] = json.dumps(manifest(cfg, tops, mesh, origin),
                                                     indent=1) + "\n"
        for path, text in files.items():               # dicts keep order: the manifest last
            write_if_changed(path, text)
    return list(files)


def ports(component) -> list[dict]:
    """The Verilog ports of a top-level component: name, direction, width (clk/rst implied)."""
    from amaranth.lib.wiring import In

    from star.hw.verilog import port_names
    return [{"name": name, "dir": "input" if flow == In else "output", "width": len(value)}
            for name, (value, flow) in port_names(component).items()]


def latencies(cfg) -> dict:
    """Per-stage latency and per-key cost in cycles (see each component's docstring)."""
    from star.hw.exp2 import exp2_latency
    from star.hw.predictor import predictor_latency
    from star.hw.sads import sads_latency
    from star.hw.sufa_lane import accumulate_latency, norm_cycles, rescale_cycles, score_latency
    return {"dlzs_predictor": predictor_latency(cfg), "sads_list_after_last": sads_latency(cfg),
            "sufa_cycles_per_key": cfg.formats.sufa_chunks, "sufa_score": score_latency(cfg),
            "sufa_accumulate": accumulate_latency(cfg), "exp2": exp2_latency(cfg),
            "sufa_rescale_event": rescale_cycles(cfg), "sufa_normalise": norm_cycles(cfg)}


def manifest(cfg: StarConfig, tops: dict, mesh: tuple[int, int] | None = None,
             origin: dict | None = None) -> dict:
    """What was generated and from what: reproducible (no paths, no dates). ``origin``
    ({"base": preset name, "overrides": {field: value}}, from ``star``) is recorded as is."""
    import amaranth
    canon = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return {
        "generator": "star",
        "config": cfg.to_dict(),
        **(origin or {}),
        **({"mesh": SpatialConfig(cfg, rows=mesh[0], cols=mesh[1]).to_dict() | {"core": cfg.name}}
           if mesh else {}),
        "config_sha256": hashlib.sha256(canon).hexdigest(),
        "formats": cfg.formats.to_dict(),
        "tools": {"amaranth": amaranth.__version__},
        "tops": {name: {"file": f"rtl/{name}.v", "clock": "clk", "reset": "rst (sync, high)",
                        "ports": ports(c)} for name, c in tops.items()},
        "latency_cycles": latencies(cfg),
        "register_map": regmap.as_dict(cfg),
    }


def fusesoc_core(cfg: StarConfig, tops: list[str]) -> str:
    """A FuseSoC CAPI2 core file naming the generated RTL. Target ``default`` builds
    :func:`main_top`; with several tops, each also has a target of its own name."""
    lines = ["CAPI=2:", "", f"name: ::star_{cfg.name}:0", "description: STAR sparse-attention "
             f"core, generated for config {cfg.name}", "", "filesets:", "  rtl:", "    files:"]
    lines += [f"      - rtl/{top}.v" for top in tops]
    lines += ["    file_type: verilogSource", "", "targets:"]
    targets = [("default", main_top(tops))] + ([(t, t) for t in tops] if len(tops) > 1 else [])
    for target, top in targets:
        lines += [f"  {target}:", "    filesets: [rtl]", f"    toplevel: {top}"]
    return "\n".join(lines) + "\n"
