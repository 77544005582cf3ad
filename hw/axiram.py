"""Block RAM behind an AXI4 slave port, with a byte-wide host port (the FPGA board's memory).

``mem_bytes`` bytes as words of ``axi_data_bits`` (one bus beat), at byte addresses
[0, mem_bytes). The AXI4 slave (``s_axi``, :class:`hw.axi.AXI4` flipped; IDs 0)
serves one read burst and one write burst at a time, independently (INCR bursts of any
length): a read beat every 3 cycles (address, capture, hand over), a write beat every cycle. A beat outside the memory reads 0 and answers
SLVERR; a write outside is dropped and its burst answers SLVERR.

Host port (the UART bridge): ``host_addr`` (byte), ``host_we`` + ``host_wdata`` writes one
byte; ``host_re`` reads one, ``host_rdata`` is valid the next cycle. The host has priority: in a
cycle with ``host_we`` or ``host_re`` the AXI side waits.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import AXI4
from .shared import refuse

__all__ = ["AxiBlockRam"]

OKAY, SLVERR = 0, 2


class AxiBlockRam(wiring.Component):
    def __init__(self, data_bits: int, mem_bytes: int):
        bb = data_bits // 8
        if mem_bytes % bb or mem_bytes <= 0:
            raise refuse(self, ValueError(f"mem_bytes must be a positive multiple of {bb}, "
                                          f"not {mem_bytes}"))
        self.data_bits, self.mem_bytes = data_bits, mem_bytes
        super().__init__({"s_axi": In(AXI4(data_bits)), "host_addr": In(32), "host_we": In(1),
                          "host_wdata": In(8), "host_re": In(1), "host_rdata": Out(8)})

    def elaborate(self, platform):
        m = Module()
        bb = self.data_bits // 8
        lb = (bb - 1).bit_length()
        words = self.mem_bytes // bb
        m.submodules.mem = mem = Memory(shape=self.data_bits, depth=words, init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)
        p = {name: getattr(self.s_axi, name) for name in self.s_axi.signature.members}

        host = Signal()
        m.d.comb += host.eq(self.host_we | self.host_re)
        lane = Signal(lb)
        m.d.sync += lane.eq(self.host_addr[:lb])
        m.d.comb += self.host_rdata.eq(rd.data.word_select(lane, 8))

        raddr, waddr = Signal(32), Signal(32)     # the bursts' current byte addresses
        left = Signal(8)                          # read beats after this one
        err = Signal()
        rbuf = Signal(self.data_bits)
        rresp = Signal(2)

        with m.If(host):
            m.d.comb += [rd.addr.eq(self.host_addr[lb:]), rd.en.eq(self.host_re),
                         wr.addr.eq(self.host_addr[lb:]),
                         wr.data.eq(Cat(*([self.host_wdata] * bb))),
                         wr.en.eq(self.host_we << self.host_addr[:lb])]
        m.d.comb += [p["rid"].eq(0), p["bid"].eq(0), p["rdata"].eq(rbuf), p["rresp"].eq(rresp),
                     p["rlast"].eq(left == 0)]
        # reads and writes are independent (the core may hold read data until a write is
        # through): the read side owns the read port, the write side the write port
        with m.FSM(name="rd"):
            with m.State("IDLE"):
                m.d.comb += p["arready"].eq(1)
                with m.If(p["arvalid"]):
                    m.d.sync += [raddr.eq(p["araddr"]), left.eq(p["arlen"])]
                    m.next = "READ"
            with m.State("READ"):
                with m.If(~host):
                    m.d.comb += [rd.addr.eq(raddr[lb:]), rd.en.eq(1)]
                    m.d.sync += rresp.eq(Mux(raddr < self.mem_bytes, OKAY, SLVERR))
                    m.next = "CAPTURE"
            with m.State("CAPTURE"):
                m.d.sync += rbuf.eq(Mux(rresp == OKAY, rd.data, 0))
                m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += p["rvalid"].eq(1)
                with m.If(p["rready"]):
                    m.d.sync += [raddr.eq(raddr + bb), left.eq(left - 1)]
                    m.next = "READ"
                    with m.If(left == 0):
                        m.next = "IDLE"
        with m.FSM(name="wr"):
            with m.State("IDLE"):
                m.d.comb += p["awready"].eq(1)
                with m.If(p["awvalid"]):
                    m.d.sync += [waddr.eq(p["awaddr"]), err.eq(0)]
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += p["wready"].eq(~host)
                with m.If(~host & p["wvalid"]):
                    with m.If(waddr < self.mem_bytes):
                        m.d.comb += [wr.addr.eq(waddr[lb:]), wr.data.eq(p["wdata"]),
                                     wr.en.eq(p["wstrb"])]
                    with m.Else():
                        m.d.sync += err.eq(1)
                    m.d.sync += waddr.eq(waddr + bb)
                    with m.If(p["wlast"]):
                        m.next = "BRESP"
            with m.State("BRESP"):
                m.d.comb += [p["bvalid"].eq(1), p["bresp"].eq(Mux(err, SLVERR, OKAY))]
                with m.If(p["bready"]):
                    m.next = "IDLE"
        return m
