"""A job's start: sample the registers, wait for the start checks, launch or refuse the job.

The same sequence in the STAR core (:class:`hw.core.StarCore`) and the Spatial-STAR array
(:class:`hw.spatial.SpatialStar`), so both report start errors and done alike
(``spec/regmap.py``: the error codes, the STATUS bits).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from star.spec.regmap import ErrorCode

__all__ = ["JobStart"]


class JobStart(wiring.Component):
    """START (``start``, a pulse, while idle) samples the job (``sample``: the top latches its
    registers and clears its status and units); the start checks' code ``error`` must be
    settled ``wait_cycles`` after the sample's cycle. Then the job is refused (``error_set``
    with ``error_code`` = ``error`` and ``done_set``) or launched (``launch``, a pulse) and runs
    until ``finish`` (``done_set``). ``busy`` from the cycle after the sample to the job's last
    cycle; START while busy: ``error_set`` with START_BUSY (the job runs on).

    Latency: ``launch`` (or the refusal) ``wait_cycles`` + 1 cycles after ``start``; ``done_set``
    in the cycle of ``finish``; a new START is taken the cycle after. The top adds its own
    errors (BUS) to the status after these, so they take priority.
    """

    def __init__(self, wait_cycles: int):
        if wait_cycles < 1:
            raise ValueError(f"JobStart: wait_cycles must be >= 1, got {wait_cycles}")
        self.wait_cycles = wait_cycles
        code = range(max(ErrorCode) + 1)
        super().__init__({
            "start": In(1), "error": In(code), "finish": In(1),
            "sample": Out(1), "launch": Out(1), "busy": Out(1),
            "error_set": Out(1), "error_code": Out(code), "done_set": Out(1),
        })

    def serve(self, m, csr, regs: dict) -> None:
        """Join the top's register block ``csr`` (:class:`hw.csr.CsrBlock`, or a node core's
        stand-in with the same members): START from it, busy and the status (clear, error,
        done) to it, and ``regs`` ({name: Signal}) sampled from its values. The top drives its
        own errors (BUS) after this, so they take priority."""
        m.d.comb += [self.start.eq(csr.start), csr.busy.eq(self.busy),
                     csr.clear_status.eq(self.sample), csr.error_set.eq(self.error_set),
                     csr.error_code.eq(self.error_code), csr.done_set.eq(self.done_set)]
        with m.If(self.sample):
            m.d.sync += [reg.eq(csr.values[n]) for n, reg in regs.items()]

    def elaborate(self, platform):
        m = Module()
        wait = Signal(range(self.wait_cycles + 1), name="wait")
        with m.If(self.start & self.busy):
            m.d.comb += [self.error_set.eq(1), self.error_code.eq(ErrorCode.START_BUSY)]
        with m.FSM(name="job"):
            with m.State("IDLE"):
                m.d.comb += self.sample.eq(self.start)
                with m.If(self.start):
                    m.d.sync += wait.eq(self.wait_cycles - 1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.error != 0):
                    m.d.comb += [self.error_set.eq(1), self.error_code.eq(self.error),
                                 self.done_set.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.launch.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.finish):
                    m.d.comb += self.done_set.eq(1)
                    m.next = "IDLE"
        return m
