"""AXI4-Lite register block of the STAR core, built from the register map in ``spec/regmap.py``.

Not a Component: the core drives its inputs and reads its outputs as plain signals, and forwards
the register bus (``self.port``, an :class:`hw.axi.AXI4Lite` slave).

Inputs (driven by the core)
    busy            a job runs (STATUS.BUSY).
    done_set        pulse: set STATUS.DONE.
    error_set       pulse: set STATUS.ERROR; ``error_code`` is recorded if ERROR was clear.
    clear_status    pulse: a job was accepted; clear DONE, ERROR and ERROR_CODE (before any set).
    counters[name]  32-bit counter values (read-only registers).
Outputs
    values[name]    the rw registers' current values (job registers, IRQ_ENABLE, MODE).
    start           pulse: CTRL.START was written with 1.
    irq             (DONE & IRQ_ENABLE.DONE) | (ERROR & IRQ_ENABLE.ERROR).
Protocol: AW and W are taken independently (each when nothing of its kind is held); the write is
done when both are held and no B response is pending. One read at a time. Unmapped addresses and
partial write strobes answer SLVERR and change nothing; writes to read-only registers are
ignored (OKAY). Latency: a read answers the cycle after AR; a write the cycle after AW and W.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import wiring

from star.spec.regmap import COUNTERS, ErrorCode, registers

from .axi import AXI4Lite

__all__ = ["CsrBlock"]

OKAY, SLVERR = 0, 2


class CsrBlock(Elaboratable):
    def __init__(self, cfg):
        self.regs = registers(cfg)
        self.port = AXI4Lite().flip().create(path=("s_axil",))
        self.values = {r.name: Signal(32, init=r.reset, name=f"reg_{r.name.lower()}")
                       for r in self.regs if r.access == "rw"}
        self.counters = {name: Signal(32, name=f"cnt_{name.lower()}") for name, _ in COUNTERS}
        self.busy = Signal()
        self.done_set = Signal()
        self.error_set = Signal()
        self.error_code = Signal(range(max(ErrorCode) + 1))
        self.clear_status = Signal()
        self.start = Signal()
        self.irq = Signal()

    def connect(self, m: Module, outer):
        """Join the register bus ``s_axil`` of the component ``outer`` and drive its ``irq``."""
        wiring.connect(m, wiring.flipped(outer.s_axil), self.port)
        m.d.comb += outer.irq.eq(self.irq)

    def elaborate(self, platform):
        m = Module()
        p = lambda name: getattr(self.port, name)             # noqa: E731
        done, error = Signal(), Signal()
        code = Signal.like(self.error_code, name="code")
        irq_en = self.values["IRQ_ENABLE"]
        m.d.comb += self.irq.eq((done & irq_en[0]) | (error & irq_en[1]))

        with m.If(self.clear_status):
            m.d.sync += [done.eq(0), error.eq(0), code.eq(0)]
        with m.If(self.done_set):
            m.d.sync += done.eq(1)
        with m.If(self.error_set):
            m.d.sync += error.eq(1)
            with m.If(~error | self.clear_status):
                m.d.sync += code.eq(self.error_code)

        # ---- writes ----------------------------------------------------------------------
        aw_hold, w_hold = Signal(), Signal()
        aw_addr = Signal.like(p("awaddr"))
        w_data, w_strb = Signal(32), Signal(4)
        m.d.comb += [p("awready").eq(~aw_hold), p("wready").eq(~w_hold)]
        with m.If(p("awvalid") & ~aw_hold):
            m.d.sync += [aw_hold.eq(1), aw_addr.eq(p("awaddr"))]
        with m.If(p("wvalid") & ~w_hold):
            m.d.sync += [w_hold.eq(1), w_data.eq(p("wdata")), w_strb.eq(p("wstrb"))]
        with m.If(p("bvalid") & p("bready")):
            m.d.sync += p("bvalid").eq(0)
        with m.If(aw_hold & w_hold & ~p("bvalid")):
            m.d.sync += [aw_hold.eq(0), w_hold.eq(0), p("bvalid").eq(1), p("bresp").eq(SLVERR)]
            with m.If(w_strb == 0xF):
                with m.Switch(aw_addr[2:]):
                    for r in self.regs:
                        with m.Case(r.offset >> 2):
                            m.d.sync += p("bresp").eq(OKAY)
                            if r.access == "rw":
                                m.d.sync += self.values[r.name].eq(w_data)
                            elif r.name == "CTRL":
                                m.d.comb += self.start.eq(w_data[0])
                            elif r.name == "STATUS":
                                with m.If(w_data[1]):
                                    m.d.sync += done.eq(0)
                                with m.If(w_data[2]):
                                    m.d.sync += [error.eq(0), code.eq(0)]

        # ---- reads -----------------------------------------------------------------------
        m.d.comb += p("arready").eq(~p("rvalid"))
        with m.If(p("rvalid") & p("rready")):
            m.d.sync += p("rvalid").eq(0)
        with m.If(p("arvalid") & ~p("rvalid")):
            m.d.sync += [p("rvalid").eq(1), p("rresp").eq(SLVERR), p("rdata").eq(0)]
            with m.Switch(p("araddr")[2:]):
                for r in self.regs:
                    with m.Case(r.offset >> 2):
                        m.d.sync += p("rresp").eq(OKAY)
                        if r.access == "rw":
                            m.d.sync += p("rdata").eq(self.values[r.name])
                        elif r.name == "STATUS":
                            m.d.sync += p("rdata").eq(self.busy | done << 1 | error << 2)
                        elif r.name == "ERROR_CODE":
                            m.d.sync += p("rdata").eq(code)
                        elif r.name in self.counters:
                            m.d.sync += p("rdata").eq(self.counters[r.name])
                        elif r.access == "ro":
                            m.d.sync += p("rdata").eq(r.reset)
        return m
