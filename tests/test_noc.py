"""Mesh NoC RTL (hw.noc.Mesh): cocotb + Verilator against golden.noc (sim/noc_tb.py).

Every started packet must arrive exactly once, intact and in order per (src, dst), under five
traffic patterns, offered loads up to saturation and random eject stalls; zero-load latency must be
hops + 1. The fast set covers 1×2 (every flit a single-flit packet), 2×2, 3×4 (non-square,
packets split by max_packet_flits) and 4×4 (the benchmarked configuration); 8×8 and a
10^5-cycle run at saturation are marked long.
"""

import functools
import re

import pytest

from star.golden.noc import PATTERNS
from star.hw.noc import Mesh
from star.hw.verilog import convert
from star.sim.noc_traffic import BUILD_ARGS
from star.sim.runner import run
from star.spec.noc_config import NocConfig

MESHES = {
    "1x2": NocConfig(rows=1, cols=2, flit_bits=8, fifo_depth=2, max_packet_flits=1),
    "2x2": NocConfig(rows=2, cols=2, flit_bits=8, fifo_depth=2, max_packet_flits=3),
    "3x4": NocConfig(rows=3, cols=4, flit_bits=16, fifo_depth=3, max_packet_flits=4),
    "4x4": NocConfig(),
    "8x8": NocConfig(rows=8, cols=8),
}
LONG = {"8x8"}


def phases(cycles: int) -> list[dict]:
    """Every pattern below saturation with stalls, then three at saturation (rate 1)."""
    low = [{"pattern": p, "rate": 0.25, "cycles": cycles, "lengths": [1, 6], "p_stall": 0.3}
           for p in PATTERNS]
    sat = [{"pattern": p, "rate": 1.0, "cycles": 2 * cycles, "lengths": [1, 6], "p_stall": s}
           for p, s in (("uniform", 0.3), ("transpose", 0.0), ("hotspot", 0.1))]
    return low + sat


@functools.lru_cache(maxsize=None)
def verilog(name: str) -> str:
    """The Verilog of MESHES[name] (converted once per process: a 4×4 mesh takes ~3 s)."""
    return convert(Mesh(MESHES[name]), name="noc_mesh")


def simulate(name: str, testcase: str, seed: int, **config):
    run(verilog(name), "noc_mesh", "star.sim.noc_tb", seed=seed, testcase=testcase,
        build_args=BUILD_ARGS, config={"noc": MESHES[name].to_dict(), **config})


def _mark(names):
    return [pytest.param(n, marks=pytest.mark.long) if n in LONG else n for n in names]


@pytest.mark.parametrize("name", _mark(MESHES))
def test_noc_traffic_matches_golden(name, seed):
    simulate(name, "traffic", seed, phases=phases(300 if name in LONG else 400), pairs=0)


@pytest.mark.parametrize("name", _mark(MESHES))
def test_noc_zero_load_latency_is_hops_plus_one(name, seed):
    simulate(name, "zero_load", seed, phases=[], pairs=300 if name in LONG else 0)


@pytest.mark.long
@pytest.mark.parametrize("pattern", ["uniform", "hotspot"])
def test_noc_no_deadlock_at_saturation(pattern, seed):
    """10^5 cycles of offered load 1 flit/cycle/node with random eject stalls on the 4×4 mesh."""
    simulate("4x4", "traffic", seed, pairs=0, phases=[
        {"pattern": pattern, "rate": 1.0, "cycles": 100_000, "lengths": [1, 8], "p_stall": 0.2}])


def test_noc_ports_are_pinned():
    """The mesh's Verilog ports: one inject/eject stream pair per node, named by row then column;
    payload widths = coordinates + data + last."""
    cfg = MESHES["3x4"]
    text = verilog("3x4")
    top = text[text.index("module noc_mesh("):]
    top = top[:top.index("endmodule")]
    ports = {name: msb for msb, name in
             re.findall(r"^\s*(?:input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", top, re.M)}
    want = {"clk": "", "rst": ""}
    for y in range(cfg.rows):
        for x in range(cfg.cols):
            for d in ("inject", "eject"):
                want.update({f"{d}__{y}__{x}__valid": "", f"{d}__{y}__{x}__ready": "",
                             f"{d}__{y}__{x}__payload": str(2 + 2 + 16 + 1 - 1)})
    assert ports == want


def test_noc_verilog_is_deterministic():
    assert verilog("2x2") == convert(Mesh(MESHES["2x2"]), name="noc_mesh")
