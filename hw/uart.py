"""UART receiver and transmitter: 8 data bits, no parity, 1 stop bit, LSB first, idle high.

The bit time is ``divisor`` clock cycles (``round(clk_hz / baud)``, at least 4).

* :class:`UartRx`: ``rx`` (asynchronous, synchronised by two flip-flops) -> stream ``o`` of
  bytes. Each bit is sampled in the middle of its bit time; a byte whose stop bit is low (a
  framing error) is dropped. ``o`` has no backpressure: a byte is valid for one cycle and is
  lost if not taken (the bridge always takes it). Latency: the byte appears half a bit time
  after the start of its stop bit.
* :class:`UartTx`: stream ``i`` of bytes -> ``tx``. Ready when idle; a byte takes 10 bit times.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx"]


def _check(divisor: int) -> int:
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor must be an integer of at least 4 cycles per bit, "
                         f"not {divisor!r}")
    return divisor


class UartRx(wiring.Component):
    rx: In(1, init=1)
    o: Out(stream.Signature(8, always_ready=True))

    def __init__(self, divisor: int):
        self.divisor = _check(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d + d // 2 + 1))
        bits = Signal(range(10))
        shreg = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):                       # start bit: sample bit 0 in 1.5 bits
                    m.d.sync += [timer.eq(d + d // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(bits + 1)]
                    with m.If(bits == 8):             # the stop bit
                        with m.If(rx):
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shreg)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += shreg.eq((shreg >> 1) | (rx << 7))
        return m


class UartTx(wiring.Component):
    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _check(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        bits = Signal(range(11))
        shreg = Signal(10, init=0x3FF)
        m.d.comb += self.tx.eq(shreg[0])
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)), timer.eq(d - 1),
                                 bits.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(bits + 1),
                                 shreg.eq((shreg >> 1) | (1 << 9))]
                    with m.If(bits == 9):
                        m.next = "IDLE"
        return m
