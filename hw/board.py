"""``star_board``: the STAR core, block RAM as its memory and a UART bridge for a host computer.

Ports: ``uart_rx`` (in), ``uart_tx`` (out); the clock and reset are the ``sync`` domain. The
serial protocol (docs/board.md) gives the host the core's AXI4-Lite registers and the block
RAM (:class:`hw.axiram.AxiBlockRam`, ``mem_bytes`` bytes at AXI addresses [0, mem_bytes)).
``gen/host.py`` is the host driver; ``gen/board.py`` builds it for an ECP5 board.

:class:`UartBridge`: one request at a time. Latency: a response byte follows its request's last
byte within a few cycles (a register access waits for the AXI4-Lite response); throughput: the
UART's, one byte per 10 bit times each way.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.board_protocol import (HEADER_BYTES, OP_READ_MEM, OP_READ_REG, OP_WRITE_MEM,
                                      OP_WRITE_REG, ST_AXIL, ST_OK, ST_OP, ST_RANGE)

from .axi import AXI4Lite
from .axiram import AxiBlockRam
from .core import StarCore
from .uart import UartRx, UartTx

__all__ = ["BoardTop", "UartBridge"]


class UartBridge(wiring.Component):
    """Serial requests (bytes from ``rx``) -> block RAM host port / AXI4-Lite master ->
    response bytes (``tx``)."""

    def __init__(self, mem_bytes: int):
        self.mem_bytes = mem_bytes
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            "host_addr": Out(32), "host_we": Out(1), "host_wdata": Out(8), "host_re": Out(1),
            "host_rdata": In(8), "m_axil": Out(AXI4Lite())})

    def elaborate(self, platform):
        m = Module()
        r = _BridgeRegs()
        with m.FSM():
            self._request(m, r)
            self._memory(m, r)
            self._register(m, r)
            with m.State("STATUS"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(r.status)]
                with m.If(self.tx.ready):
                    m.next = "OP"
        return m

    def _request(self, m, r):
        """OP, HEADER, DECODE: the op byte, the header bytes, the request's fields."""
        rx = self.rx
        with m.State("OP"):
            with m.If(rx.valid):
                m.d.sync += [r.op.eq(rx.payload), r.hdr.eq(0)]
                with m.Switch(rx.payload):
                    with m.Case(OP_WRITE_MEM, OP_READ_MEM):
                        m.d.sync += r.need.eq(HEADER_BYTES[OP_WRITE_MEM])
                        m.next = "HEADER"
                    with m.Case(OP_WRITE_REG):
                        m.d.sync += r.need.eq(HEADER_BYTES[OP_WRITE_REG])
                        m.next = "HEADER"
                    with m.Case(OP_READ_REG):
                        m.d.sync += r.need.eq(HEADER_BYTES[OP_READ_REG])
                        m.next = "HEADER"
                    with m.Default():
                        m.d.sync += r.status.eq(ST_OP)
                        m.next = "STATUS"
        with m.State("HEADER"):
            with m.If(rx.valid):
                m.d.sync += [r.hdr.eq(Cat(r.hdr[8:], rx.payload)), r.need.eq(r.need - 1)]
                with m.If(r.need == 1):
                    m.next = "DECODE"
        with m.State("DECODE"):
            # the header arrived LSB first into the top of hdr: align it
            hdr = r.hdr
            with m.Switch(r.op):
                with m.Case(OP_WRITE_MEM, OP_READ_MEM):
                    end = hdr[:32] + hdr[32:48]
                    m.d.sync += [r.addr.eq(hdr[:32]), r.count.eq(hdr[32:48]),
                                 r.ok.eq((hdr[32:48] != 0) & (end <= self.mem_bytes)),
                                 r.status.eq(Mux((hdr[32:48] != 0)
                                                 & (end <= self.mem_bytes), ST_OK, ST_RANGE))]
                    m.next = "WDATA"
                    with m.If(r.op == OP_READ_MEM):
                        m.next = "RREAD"
                    with m.If(hdr[32:48] == 0):
                        m.next = "STATUS"
                with m.Case(OP_WRITE_REG):
                    m.d.sync += [r.addr.eq(hdr[8:16]), r.value.eq(hdr[16:48]), r.got_aw.eq(0),
                                 r.got_w.eq(0)]
                    m.next = "AXIL_W"
                with m.Case(OP_READ_REG):
                    m.d.sync += r.addr.eq(hdr[40:48])
                    m.next = "AXIL_AR"

    def _memory(self, m, r):
        """WDATA (memory write: count data bytes in), RREAD .. RSEND2 (memory read: out)."""
        rx, tx = self.rx, self.tx
        with m.State("WDATA"):
            with m.If(rx.valid):
                m.d.comb += [self.host_addr.eq(r.addr), self.host_wdata.eq(rx.payload),
                             self.host_we.eq(r.ok)]
                m.d.sync += [r.addr.eq(r.addr + 1), r.count.eq(r.count - 1)]
                with m.If(r.count == 1):
                    m.next = "STATUS"
        with m.State("RREAD"):
            m.d.comb += [self.host_addr.eq(r.addr), self.host_re.eq(r.ok)]
            m.next = "RSEND"
        with m.State("RSEND"):
            with m.If(r.ok):
                m.d.sync += r.value.eq(self.host_rdata)
            with m.Else():
                m.d.sync += r.value.eq(0)
            m.next = "RSEND2"
        with m.State("RSEND2"):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(r.value[:8])]
            with m.If(tx.ready):
                m.d.sync += [r.addr.eq(r.addr + 1), r.count.eq(r.count - 1)]
                m.next = "RREAD"
                with m.If(r.count == 1):
                    m.next = "STATUS"

    def _register(self, m, r):
        """AXIL_W, AXIL_B (register write), AXIL_AR, AXIL_R, VALUE (register read)."""
        a = {name: getattr(self.m_axil, name) for name in self.m_axil.signature.members}
        tx = self.tx
        with m.State("AXIL_W"):
            m.d.comb += [a["awaddr"].eq(r.addr), a["awvalid"].eq(~r.got_aw),
                         a["wdata"].eq(r.value), a["wstrb"].eq(0xF), a["wvalid"].eq(~r.got_w)]
            aw = r.got_aw | a["awready"]
            w = r.got_w | a["wready"]
            m.d.sync += [r.got_aw.eq(aw), r.got_w.eq(w)]
            with m.If(aw & w):
                m.next = "AXIL_B"
        with m.State("AXIL_B"):
            m.d.comb += a["bready"].eq(1)
            with m.If(a["bvalid"]):
                m.d.sync += r.status.eq(ST_AXIL | a["bresp"])
                m.next = "STATUS"
        with m.State("AXIL_AR"):
            m.d.comb += [a["araddr"].eq(r.addr), a["arvalid"].eq(1)]
            with m.If(a["arready"]):
                m.next = "AXIL_R"
        with m.State("AXIL_R"):
            m.d.comb += a["rready"].eq(1)
            with m.If(a["rvalid"]):
                m.d.sync += [r.value.eq(a["rdata"]), r.status.eq(ST_AXIL | a["rresp"]),
                             r.sent.eq(0)]
                m.next = "VALUE"
        with m.State("VALUE"):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(r.value[:8])]
            with m.If(tx.ready):
                m.d.sync += [r.value.eq(r.value >> 8), r.sent.eq(r.sent + 1)]
                with m.If(r.sent == 3):
                    m.next = "STATUS"


class _BridgeRegs:
    """The bridge's registers, shared by its request kinds."""

    def __init__(self):
        self.op = Signal(8)
        self.hdr = Signal(8 * max(HEADER_BYTES.values()))      # request fields, little-endian
        self.need = Signal(range(max(HEADER_BYTES.values()) + 1))   # header bytes to come
        self.addr = Signal(32)
        self.count = Signal(16)
        self.ok = Signal()                      # the memory range is inside
        self.value = Signal(32)
        self.status = Signal(8)
        self.sent = Signal(range(5))
        self.got_aw = Signal()
        self.got_w = Signal()


class BoardTop(wiring.Component):
    """The board's logic: ``StarCore`` + ``AxiBlockRam`` + UART bridge (``divisor`` clock
    cycles per bit, ``mem_bytes`` bytes of memory)."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, cfg, *, divisor: int, mem_bytes: int):
        self.cfg, self.divisor, self.mem_bytes = cfg, divisor, mem_bytes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = StarCore(self.cfg)
        m.submodules.ram = ram = AxiBlockRam(self.cfg.axi_data_bits, self.mem_bytes)
        m.submodules.bridge = bridge = UartBridge(self.mem_bytes)
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)
        wiring.connect(m, core.m_axi, ram.s_axi)
        wiring.connect(m, bridge.m_axil, core.s_axil)
        for name in ("host_addr", "host_we", "host_wdata", "host_re"):
            m.d.comb += getattr(ram, name).eq(getattr(bridge, name))
        m.d.comb += bridge.host_rdata.eq(ram.host_rdata)
        return m
