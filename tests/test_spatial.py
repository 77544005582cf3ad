"""The Spatial-STAR array (star_spatial) under cocotb + Verilator against golden.spatial: O
bit-exact, counters, per-channel traffic, start-check errors (sim/spatial_tb.py)."""

import functools

import pytest

from gen.config import preset
from gen.spatial_config import SpatialConfig
from gen.verilog import convert
from hw.spatial import SpatialStar
from sim.runner import run


def case(q_len, seq_len, causal=True, dense=False, k_tile=None, radius=-1):
    return {"q_len": q_len, "seq_len": seq_len, "causal": causal, "dense": dense,
            "k_tile": k_tile, "radius": radius}


TINY = preset("tiny")
MESHES = {
    # name: (rows, cols, cases)
    "1x2": (1, 2, [
        case(13, 70),                                   # causal: early blocks miss shard 1
        case(6, 45, causal=False, k_tile=2),
        case(10, 50, dense=True),
        case(5, 40, causal=False, radius="small"),
    ]),
    "2x2": (2, 2, [
        case(13, 70),                                   # 5 tiles on 4 cores: shards 2,1,1,1
        case(9, 64, causal=False),
        case(6, 100, dense=True, causal=False),
    ]),
    "4x4": (4, 4, [
        case(21, 256),
        case(9, 250, causal=False, k_tile=3),
        case(12, 300, dense=True),
    ]),
}


@functools.lru_cache(maxsize=None)
def verilog(name: str) -> str:
    rows, cols, _ = MESHES[name]
    return convert(SpatialStar(SpatialConfig(TINY, rows=rows, cols=cols)), name="star_spatial")


def sim(name, seed, tests, timeout_s=600):
    rows, cols, cases = MESHES[name]
    run(verilog(name), "star_spatial", "sim.spatial_tb", seed=seed, timeout_s=timeout_s,
        config={"cfg": TINY.to_dict(), "rows": rows, "cols": cols, "cases": cases,
                "tests": tests})


@pytest.mark.parametrize("name", ["1x2", "2x2"])
def test_spatial(name, seed):
    """Every case without and with stalls, jobs back to back, start-check errors."""
    sim(name, seed, None)


@pytest.mark.long
def test_spatial_4x4(seed):
    sim("4x4", seed, None, timeout_s=3000)
