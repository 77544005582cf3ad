"""The AXI4-Lite side shared by the testbenches of star_core and star_spatial: register access
by name (offsets from star.spec.regmap.by_name) that fails instead of hanging, bit fields, irq
waits, and the random pause generator for bus channels."""

import random

from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiResp

from star.spec.regmap import JOB_NAMES

__all__ = ["CLK_NS", "AXIL_LIMIT", "pauses", "RegisterBus"]

CLK_NS = 10
AXIL_LIMIT = 500            # cycles an AXI4-Lite access may take (stalls included)


def pauses(rng: random.Random, p: float):
    """A cocotbext-axi pause generator: pause each cycle with probability p."""
    while True:
        yield rng.random() < p


class RegisterBus:
    """Mixin: needs ``self.dut`` (with clk, irq), ``self.lite`` (AxiLiteMaster), ``self.regs``
    (star.spec.regmap.by_name) and ``self.where`` (config and seed, for messages)."""

    def cycles(self) -> int:
        return int(get_sim_time("ns")) // CLK_NS

    # ---- registers ---------------------------------------------------------------------------
    def field(self, reg: str, name: str) -> int:
        """The mask of bit field ``reg.name``."""
        return self.regs[reg].mask(name)

    async def axil(self, access, what: str):
        """Await one AXI4-Lite access; fail (never hang) if the slave does not answer."""
        try:
            return await with_timeout(access, AXIL_LIMIT * CLK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"AXI4-Lite {what}: no response within {AXIL_LIMIT} cycles; "
                                 f"{self.where}") from None

    async def read(self, name_or_offset, expect_resp=AxiResp.OKAY) -> int:
        off = self.regs[name_or_offset].offset if isinstance(name_or_offset, str) \
            else name_or_offset
        r = await self.axil(self.lite.read(off, 4), f"read of {name_or_offset!r} (0x{off:02x})")
        assert r.resp == expect_resp, \
            f"read of {name_or_offset!r} (0x{off:02x}): response {r.resp!r}, expected " \
            f"{expect_resp!r}; {self.where}"
        return int.from_bytes(r.data, "little")

    async def write(self, name_or_offset, value: int, expect_resp=AxiResp.OKAY):
        off = self.regs[name_or_offset].offset if isinstance(name_or_offset, str) \
            else name_or_offset
        r = await self.axil(self.lite.write(off, (value & 0xFFFF_FFFF).to_bytes(4, "little")),
                            f"write of {name_or_offset!r} (0x{off:02x})")
        assert r.resp == expect_resp, \
            f"write of {name_or_offset!r} (0x{off:02x}): response {r.resp!r}, expected " \
            f"{expect_resp!r}; {self.where}"

    async def write_job_regs(self, regs: dict):
        for name in JOB_NAMES:
            await self.write(name, regs[name])

    async def wait_irq(self, limit: int, what: str) -> int:
        """Wait for irq high; fail after ``limit`` cycles. Returns the cycles waited."""
        t0 = self.cycles()
        if not int(self.dut.irq.value):
            await First(RisingEdge(self.dut.irq), ClockCycles(self.dut.clk, limit))
        await ReadOnly()
        assert int(self.dut.irq.value), \
            f"{what}: no irq within {limit} cycles (hang or far too slow); {self.where}"
        await RisingEdge(self.dut.clk)
        return self.cycles() - t0
