"""``star sim``: the cocotb regression of ``star_core`` for any configuration.

Emits the configuration's ``star_core`` Verilog and runs the core testbench (``sim/core_tb.py``:
O bit-exact against golden.core, counters, error codes, reset, bus errors, with cocotbext-axi bus
models) under Verilator, one simulation per cocotb test so that ``--waves`` gives one FST per
test. The cases scale with the configuration: causal ragged lengths, a dense job, k below the
built maximum, a small radius. The model is built (and cached) under ``build_root``: ``star sim
-o DIR``, by default ``build/sim`` in the repository (sim.runner).
"""

from __future__ import annotations

__all__ = ["TESTS", "SimFailed", "regression_cases", "simulate"]

TESTS = ("axil_map", "end_to_end", "back_to_back", "invalid_registers", "reset_mid_job",
         "bus_error")


class SimFailed(Exception):
    """A simulation ran and a check failed (the message names the test, seed and log)."""


def regression_cases(cfg) -> list[dict]:
    """End-to-end cases for a configuration (the shapes of tests/test_core.py, scaled)."""
    T, tile, k = cfg.lanes, cfg.tile, cfg.k_tile

    def case(q_len, seq_len, causal=True, dense=False, k_tile=k, radius=-1):
        return {"q_len": min(q_len, cfg.max_seq), "seq_len": min(seq_len, cfg.max_seq),
                "causal": causal, "dense": dense, "k_tile": k_tile, "radius": radius}

    return [case(2 * T + 1, 3 * tile + 5),
            case(T, 2 * tile - 3, causal=False, k_tile=max(1, k // 2)),
            case(T + 1, tile + 3, dense=True),
            case(T, 2 * tile + 1, causal=False, radius="small")]


def simulate(cfg, tests, *, seed: int | None, waves: bool, build_root=None, progress=None,
             log=print) -> list:
    """Run the named testbench tests with the model built under ``build_root`` (default: the
    runner's); report the steps on ``progress`` (a gen.progress.Progress) and each passed test
    on ``log``; return the runner results; raise SimFailed on a failure."""
    from star.hw.core import StarCore
    from star.sim.runner import DEFAULT_BUILD_ROOT, build, run

    from .progress import Progress
    from star.hw.verilog import convert
    progress = progress or Progress("sim", cfg.name)
    build_root = build_root or DEFAULT_BUILD_ROOT
    with progress.step("converting star_core"):
        text = convert(StarCore(cfg), name="star_core")
    with progress.step("Verilator build of star_core (cached; minutes when new)"):
        build(text, "star_core", build_root=build_root, waves=waves)
    results = []
    for name in tests:
        try:
            with progress.step(name):
                r = run(text, "star_core", "star.sim.core_tb", seed=seed, waves=waves,
                        testcase=name, timeout_s=3600, build_root=build_root,
                        config={"cfg": cfg.to_dict(), "tests": [name],
                                "cases": regression_cases(cfg)})
        except AssertionError as e:
            raise SimFailed(str(e).splitlines()[0]) from None
        seed = r.seed
        log(f"star: sim {cfg.name}: {name} passed (seed {r.seed}; log {r.log_file}"
            + (f"; waves {r.waves_file})" if r.waves_file else ")"))
        results.append(r)
    return results
