"""Cycle-stepped valid/ready stream drivers for cocotb testbenches of Amaranth components.

All inputs change right after the falling clock edge; transfers are sampled in the read-only phase
that follows (nothing changes between then and the next rising edge), so a transfer is counted
exactly when the DUT takes it. Sources insert random idle cycles, sinks random stalls, each from
its own seeded ``random.Random``.
"""

from __future__ import annotations

import random

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from .payload import pack, unpack

__all__ = ["StreamSource", "StreamSink", "start_clock_and_reset", "run_streams"]


class StreamSource:
    """Drive ``<prefix>__valid/__payload`` with ``items`` (python values), idling with p_idle;
    ``side`` = (signal, values): a port sampled with each transfer (driven with values[i]
    while item i is offered)."""

    def __init__(self, dut, prefix: str, layout, items, *, p_idle=0.0, rng=None, side=None):
        self.valid = getattr(dut, f"{prefix}__valid")
        # (an always-ready stream has no ready port: hw.verilog.port_names)
        self.ready = getattr(dut, f"{prefix}__ready", None)
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.items = layout, list(items)
        self.p_idle, self.rng = p_idle, rng or random.Random(0)
        self.sent = 0
        self.times = []          # cycle (as counted by run_streams) of each transfer
        self.side = side
        self.valid.value = 0

    def drive(self):
        offer = self.sent < len(self.items) and self.rng.random() >= self.p_idle
        self.valid.value = int(offer)
        if offer:
            self.payload.value = pack(self.layout, self.items[self.sent])
            if self.side is not None:
                self.side[0].value = self.side[1][self.sent]

    def sample(self, cycle: int):
        if int(self.valid.value) and (self.ready is None or int(self.ready.value)):
            self.sent += 1
            self.times.append(cycle)

    @property
    def done(self) -> bool:
        return self.sent == len(self.items)


class StreamSink:
    """Accept ``<prefix>__payload`` transfers into ``received``, stalling with p_stall."""

    def __init__(self, dut, prefix: str, layout, *, p_stall=0.0, rng=None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.p_stall, self.rng = layout, p_stall, rng or random.Random(0)
        self.received = []
        self.times = []
        self.ready.value = 0

    def drive(self):
        self.ready.value = int(self.rng.random() >= self.p_stall)

    def sample(self, cycle: int):
        if int(self.valid.value) and int(self.ready.value):
            self.received.append(unpack(self.layout, int(self.payload.value)))
            self.times.append(cycle)


async def start_clock_and_reset(dut, cycles: int = 2):
    """Start a 10 ns clock on ``clk`` and hold ``rst`` high for ``cycles`` cycles."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


async def run_streams(dut, sources, sinks, done, max_cycles: int) -> int:
    """Step the clock until ``done()``; return the cycles taken, or fail after ``max_cycles``.

    Returns just after the rising edge that completes the last transfer, outside the read-only
    phase, so the caller may drive signals (and build new sources) at once.
    """
    for cycle in range(max_cycles):
        await FallingEdge(dut.clk)
        for s in (*sources, *sinks):
            s.drive()
        await ReadOnly()
        for s in (*sources, *sinks):
            s.sample(cycle)
        if done():
            await RisingEdge(dut.clk)   # let the last transfer happen before anyone drives again
            return cycle + 1
    raise AssertionError(f"streams did not finish within {max_cycles} cycles (hang?)")
