"""cocotb smoke tests for the simulation harness (driven by tests/test_infra.py).

The DUT is the tiny ``infra_smoke_top`` component defined in tests/test_infra.py:
``sum = a + b`` (comb, 8+8 -> 9 bits) and an 8-bit ``count`` that increments on ``clk``
while ``en`` is high and clears on ``rst``. Ports are connected by name (Amaranth's port
order is arbitrary). The seed comes from ``STAR_SEED`` (see ``sim.runner.env_seed``).

``deliberately_failing`` is marked ``skip=True`` so a whole-module run passes; selecting it
with ``run(..., testcase="deliberately_failing")`` runs it and must make ``run`` raise.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from star.sim.runner import env_config, env_seed

N_VALUES = 300


@cocotb.test()
async def adder_random(dut):
    """sum == a + b for random inputs (and the corners)."""
    seed = env_seed()
    n = int(env_config({}).get("n", N_VALUES))
    rng = random.Random(seed)
    dut._log.info("adder_random: seed=%d n=%d", seed, n)
    values = [(0, 0), (255, 255), (255, 1), (1, 255)]
    values += [(rng.randrange(256), rng.randrange(256)) for _ in range(n)]
    for a, b in values:
        dut.a.value = a
        dut.b.value = b
        await Timer(1, unit="ns")
        got = dut.sum.value.to_unsigned()
        assert got == a + b, f"sum({a}, {b}) = {got}, expected {a + b} (seed {seed})"


@cocotb.test()
async def counter_random_enable(dut):
    """count follows a Python model under a random enable pattern, wrapping at 256."""
    seed = env_seed()
    rng = random.Random(seed ^ 0x5A5A)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.en.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    expected = 0
    for _ in range(N_VALUES):
        en = rng.random() < 0.9
        dut.en.value = int(en)
        await RisingEdge(dut.clk)
        await ReadOnly()
        if en:
            expected = (expected + 1) % 256
        got = dut.count.value.to_unsigned()
        assert got == expected, f"count = {got}, expected {expected} (seed {seed})"
        await Timer(1, unit="ns")  # leave the read-only phase before driving again


@cocotb.test(skip=True)
async def deliberately_failing(dut):
    """Proves the harness can fail: checks a wrong model. Run only when selected."""
    dut.a.value = 2
    dut.b.value = 2
    await Timer(1, unit="ns")
    got = dut.sum.value.to_unsigned()
    assert got == 5, f"deliberately failing: sum(2, 2) = {got}, not 5"
