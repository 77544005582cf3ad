"""The Spatial-STAR array (star_spatial) under cocotb + Verilator against golden.spatial: O
bit-exact, counters, per-channel traffic, start-check errors (sim/spatial_tb.py)."""

import functools
from dataclasses import replace

import pytest

from star.hw.spatial import SpatialStar
from star.hw.verilog import convert
from star.sim.runner import run
from star.spec.config import preset
from star.spec.spatial_config import SpatialConfig, bench_core


def case(q_len, seq_len, causal=True, dense=False, k_tile=None, radius=-1):
    return {"q_len": q_len, "seq_len": seq_len, "causal": causal, "dense": dense,
            "k_tile": k_tile, "radius": radius}


TINY = preset("tiny")
# a smaller core for make test (the Verilator build grows with the cores: 2x2 tiny ~200 s cold)
MICRO = replace(TINY, name="micro", head_dim=8, lanes=2, tile=8, k_tile=2)
LONG = bench_core()
MESHES = {
    # name: (core config, rows, cols, flit_bits, cases)
    "micro_1x2": (MICRO, 1, 2, 32, [
        case(5, 30),                                    # causal: the first block misses shard 1
        case(4, 20, causal=False, k_tile=1),
        case(5, 26, dense=True),
        case(3, 17, causal=False, radius="small"),
    ]),
    "micro_2x2": (MICRO, 2, 2, 64, [
        case(7, 37),                                    # 5 tiles on 4 cores: shards 2, 1, 1, 1
        case(4, 32, causal=False),
        case(5, 45, dense=True, causal=False),
    ]),
    # the scaling benchmark's core (tiny, max_seq 16384): its builds are shared with the benchmark
    "tiny_2x2": (LONG, 2, 2, 64, [
        case(13, 70),
        case(9, 64, causal=False),
        case(6, 100, dense=True, causal=False),
    ]),
    "tiny_4x4": (LONG, 4, 4, 64, [
        case(21, 256),
        case(9, 250, causal=False, k_tile=3),
        case(12, 300, dense=True),
    ]),
}


def spatial_config(name: str) -> SpatialConfig:
    cfg, rows, cols, flit_bits, _ = MESHES[name]
    return SpatialConfig(cfg, rows=rows, cols=cols, flit_bits=flit_bits)


@functools.lru_cache(maxsize=None)
def verilog(name: str) -> str:
    return convert(SpatialStar(spatial_config(name)), name="star_spatial")


def sim(name, seed, tests, timeout_s=600):
    scfg = spatial_config(name)
    run(verilog(name), "star_spatial", "star.sim.spatial_tb", seed=seed, timeout_s=timeout_s,
        config={"cfg": scfg.core.to_dict(), "rows": scfg.rows, "cols": scfg.cols,
                "flit_bits": scfg.flit_bits, "cases": MESHES[name][4], "tests": tests})


def test_spatial(seed):
    """Two cores: every case without and with stalls, jobs back to back, start-check errors."""
    sim("micro_1x2", seed, None)


@pytest.mark.long
@pytest.mark.parametrize("name", ["micro_2x2", "tiny_2x2", "tiny_4x4"])
def test_spatial_long(name, seed):
    """Four cores of the small core (a merge chain over three hops); the tiny core (max_seq
    16384) on 2x2 and 4x4 meshes (4x4: 16 cores, 250-300 keys)."""
    sim(name, seed, None, timeout_s=3000)
