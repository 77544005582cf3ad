"""The whole STAR core (star_core) under cocotb + Verilator against golden.core: O bit-exact,
counters, error codes, irq, W1C, reset and bus behaviour (sim/core_tb.py)."""

import functools

import pytest

from star.hw.core import StarCore
from star.hw.verilog import convert
from star.sim.runner import run
from star.spec.config import StarConfig, preset


def case(q_len, seq_len, causal=True, dense=False, k_tile=None, radius=-1, rescale=False):
    """One job shape for sim/core_tb.py (radius -1 off, or "small"; ``rescale``: data that makes
    the job take a max-assurance rescale)."""
    return {"q_len": q_len, "seq_len": seq_len, "causal": causal, "dense": dense,
            "k_tile": k_tile, "radius": radius, "rescale": rescale}


TINY = preset("tiny").to_dict()
CONFIGS = {
    # name: (config fields, cases); k_tile None = the built maximum
    "tiny": (TINY, [
        case(13, 70),                                   # causal, ragged: 3*4 + 1, 4*16 + 6
        case(6, 45, causal=False, k_tile=2),            # k_tile below the maximum
        case(10, 50, dense=True),                       # dense, causal
        case(5, 40, causal=False, radius="small"),      # small radius
        case(7, 7),                                     # causal, square: limits inside one tile
        case(4, 32, causal=False, rescale=True),        # a max-assurance rescale (coverage)
    ]),
    # two-term DLZS (dlzs_terms = 2) end to end; P = d: a lane takes one key per cycle
    "tiny_l3_t8": ({**TINY, "lanes": 3, "tile": 8, "dlzs_terms": 2, "sufa_macs": 16}, [
        case(7, 19),                                    # ragged: 7 = 2*3 + 1, 19 = 2*8 + 3
        case(3, 8, causal=False, dense=True),
        case(8, 29, radius="small", k_tile=2),
        case(10, 12),
    ]),
    # P = 1: one multiplier per lane for q·k and one for p·v (32 cycles per key)
    "d32_b16": ({**preset("default").to_dict(), "name": "d32b16", "head_dim": 32, "lanes": 2,
                 "tile": 16, "k_tile": 4, "max_seq": 256, "axi_data_bits": 128,
                 "sufa_macs": 1}, [
        case(5, 35),
        case(4, 18, causal=False, dense=True),
        case(3, 40, k_tile=3, radius="small"),
    ]),
}


@functools.lru_cache(maxsize=None)
def verilog(name: str) -> str:
    """The core's Verilog for a config (elaboration takes seconds: once per process)."""
    return convert(StarCore(StarConfig(**CONFIGS[name][0])), name="star_core")


def sim(name, seed, tests, cases, timeout_s=300, run_kw=None, **extra):
    """Run the cocotb tests ``tests`` (None: all) of sim/core_tb.py on config ``name``
    (``cases`` None: its default cases; ``run_kw``: more sim.runner.run arguments, e.g. the
    simulator); return the run."""
    fields, default_cases = CONFIGS[name]
    cfg = StarConfig(**fields)
    cases = [{**c, "k_tile": cfg.k_tile if c["k_tile"] is None else c["k_tile"]}
             for c in (default_cases if cases is None else cases)]
    return run(verilog(name), "star_core", "star.sim.core_tb", seed=seed, timeout_s=timeout_s,
               config={"cfg": cfg.to_dict(), "cases": cases, "tests": tests, **extra},
               **(run_kw or {}))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_core_end_to_end(name, seed):
    """Every case of the config, without and with bus stalls; several jobs back to back."""
    sim(name, seed, ["end_to_end", "back_to_back"], None)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_core_registers_errors_reset(name, seed):
    """Register map, every start-check error, START while busy, reset during a job, AXI
    error responses."""
    sim(name, seed, ["axil_map", "invalid_registers", "reset_mid_job", "bus_error"], None)


@pytest.mark.long
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_core_long(name, seed):
    """Longer sequences up to max_seq, several blocks, more random jobs and register sets."""
    fields, _ = CONFIGS[name]
    cfg = StarConfig(**fields)
    T, tile = cfg.lanes, cfg.tile
    cases = [case(4 * T + 1, 6 * tile + 5), case(3 * T, 5 * tile - 1, causal=False),
             case(2 * T + 1, 4 * tile + 1, dense=True),
             case(3 * T + 2, 4 * tile + 3, radius="small", k_tile=1),
             case(T + 1, cfg.max_seq, causal=False),              # the longest sequence
             case(2 * T + 1, cfg.max_seq),                        # causal, many skipped tiles
             case(cfg.max_seq // 8 + 1, cfg.max_seq // 8 + 1)]    # square, many blocks
    sim(name, seed, None, cases, timeout_s=1800, jobs=10, fuzz=64)
