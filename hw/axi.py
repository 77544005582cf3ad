"""AXI4 memory master for whole tensor rows, and the flat AXI port lists of the core.

:class:`AxiRowMaster` reads and writes one row (``row_beats`` beats of ``axi_data_bits``) per INCR
burst, IDs 0, full write strobes. Row layout: element 0 in the lowest bits of the first beat.

Ports (besides ``m_axi``, :class:`AXI4`)
    rd_req   In stream {addr, tag}: read one row at a byte address; ``tag`` is returned with it.
    rd_resp  Out stream {row, tag}: the rows in request order.
    wr_req   In stream {addr, row}: write one row.
    wr_idle  Out: no write is held or waiting for its response.
    r_beat, w_beat  Out: one-cycle pulses per R / W beat transferred (byte counters).
    bus_error       Out: pulse when an R or B response is not OKAY.
Throughput: one AR per cycle, up to ``MAX_READS`` rows in flight; R beats are taken every cycle
unless a finished row waits in ``rd_resp``. A write takes ``row_beats`` W cycles after the row is
accepted (AW in parallel); the next row is accepted the cycle after both are done.
Backpressure: ``rd_req`` waits while ``MAX_READS`` rows are in flight; R waits on ``rd_resp``.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out


from star.spec.regmap import ADDR_BITS, CSR_ADDR_BITS

from .layouts import read_request_layout, write_request_layout

__all__ = ["AxiRowMaster", "AXI4", "AXI4Lite", "FlatBus"]

MAX_READS = 8


class FlatBus:
    """The interface object of a bus signature (:class:`AXI4`, :class:`AXI4Lite`): its signals
    are named ``<port>_<member>`` (``m_axi_araddr``), the flat names of AXI tools, cocotbext-axi
    and the Verilog ports (:func:`hw.verilog.port_names`), instead of Amaranth's
    ``m_axi__araddr``."""

    def __init__(self, signature, path):
        self.signature = signature
        prefix = "__".join(str(p) for p in path) if path else "bus"
        for name, member in signature.members.items():
            setattr(self, name, Signal(member.shape, name=f"{prefix}_{name}"))


class _Bus(wiring.Signature):
    flat_names = True

    def create(self, *, path=None, src_loc_at=0):
        return FlatBus(self, path)


class AXI4(_Bus):
    """The AXI4 memory-mapped bus, master's view (the slave holds ``AXI4(...).flip()``): address
    ``ADDR_BITS``, data ``data_bits``, 1-bit IDs. Members by their AXI names (``araddr``,
    ``rdata``, ...); a top's Verilog port is ``<port>_<member>`` (``m_axi_araddr``:
    :func:`hw.verilog.port_names`)."""

    def __init__(self, data_bits: int):
        a, sbits = ADDR_BITS, data_bits // 8
        out = {"arid": 1, "araddr": a, "arlen": 8, "arsize": 3, "arburst": 2, "arvalid": 1,
               "rready": 1, "awid": 1, "awaddr": a, "awlen": 8, "awsize": 3, "awburst": 2,
               "awvalid": 1, "wdata": data_bits, "wstrb": sbits, "wlast": 1, "wvalid": 1,
               "bready": 1}
        inp = {"arready": 1, "rid": 1, "rdata": data_bits, "rresp": 2, "rlast": 1, "rvalid": 1,
               "awready": 1, "wready": 1, "bid": 1, "bresp": 2, "bvalid": 1}
        super().__init__({**{k: Out(w) for k, w in out.items()},
                          **{k: In(w) for k, w in inp.items()}})


class AXI4Lite(_Bus):
    """The AXI4-Lite register bus (32-bit data, ``CSR_ADDR_BITS`` addresses), master's view;
    Verilog ports ``<port>_<member>`` like :class:`AXI4`. The member order is the slave's
    port order (its inputs first)."""

    def __init__(self):
        master_out = {"awaddr": CSR_ADDR_BITS, "awvalid": 1, "wdata": 32, "wstrb": 4,
                      "wvalid": 1, "bready": 1, "araddr": CSR_ADDR_BITS, "arvalid": 1,
                      "rready": 1}
        master_in = {"awready": 1, "wready": 1, "bresp": 2, "bvalid": 1, "arready": 1,
                     "rdata": 32, "rresp": 2, "rvalid": 1}
        super().__init__({**{k: Out(w) for k, w in master_out.items()},
                          **{k: In(w) for k, w in master_in.items()}})


class AxiRowMaster(wiring.Component):
    def __init__(self, cfg, tag_bits: int):
        self.cfg = cfg
        self.fmt = cfg.formats
        self.tag_bits = tag_bits
        row = cfg.head_dim * cfg.data_bits
        super().__init__({
            "rd_req": In(stream.Signature(read_request_layout(tag_bits))),
            "rd_resp": Out(stream.Signature(data.StructLayout({"row": row, "tag": tag_bits}))),
            "wr_req": In(stream.Signature(write_request_layout(cfg))),
            "wr_idle": Out(1),
            "r_beat": Out(1),
            "w_beat": Out(1),
            "bus_error": Out(1),
            "m_axi": Out(AXI4(cfg.axi_data_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        W, nb = self.cfg.axi_data_bits, fmt.row_beats
        p = lambda name: getattr(self.m_axi, name)               # noqa: E731
        size = (fmt.bus_bytes).bit_length() - 1

        # ---- reads: AR per row, tags queued in request order ---------------------------------
        m.submodules.tags = tags = SyncFIFOBuffered(width=self.tag_bits, depth=MAX_READS)
        m.d.comb += [
            p("arid").eq(0), p("araddr").eq(self.rd_req.payload.addr), p("arlen").eq(nb - 1),
            p("arsize").eq(size), p("arburst").eq(1),
            p("arvalid").eq(self.rd_req.valid & tags.w_rdy),
            self.rd_req.ready.eq(p("arready") & tags.w_rdy),
            tags.w_data.eq(self.rd_req.payload.tag),
            tags.w_en.eq(self.rd_req.valid & self.rd_req.ready),
        ]
        beat = Signal(range(max(nb, 2)))
        last_beat = beat == nb - 1
        held = Signal(max(W * (nb - 1), 1))            # the row's earlier beats
        r_fire = Signal()
        m.d.comb += [
            p("rready").eq(~last_beat | ~self.rd_resp.valid | self.rd_resp.ready),
            r_fire.eq(p("rvalid") & p("rready")),
            self.r_beat.eq(r_fire),
        ]
        with m.If(self.rd_resp.valid & self.rd_resp.ready):
            m.d.sync += self.rd_resp.valid.eq(0)
        with m.If(r_fire):
            if nb > 1:
                m.d.sync += held.eq(Cat(held[W:], p("rdata")))
                m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))
            with m.If(last_beat):
                m.d.comb += tags.r_en.eq(1)
                m.d.sync += [self.rd_resp.valid.eq(1), self.rd_resp.payload.tag.eq(tags.r_data)]
                m.d.sync += self.rd_resp.payload.row.eq(
                    Cat(held, p("rdata")) if nb > 1 else p("rdata"))

        # ---- writes: one row held, AW and W in parallel, responses counted -------------------
        wrow = Signal(self.rd_resp.payload.row.shape())
        waddr = Signal(ADDR_BITS)
        aw_pend = Signal()
        w_pend = Signal()
        wbeat = Signal(range(max(nb, 2)))
        inflight = Signal(range(1 << 16))              # AWs accepted, B not yet received
        m.d.comb += [
            p("awid").eq(0), p("awaddr").eq(waddr), p("awlen").eq(nb - 1), p("awsize").eq(size),
            p("awburst").eq(1), p("awvalid").eq(aw_pend),
            p("wdata").eq(wrow.word_select(wbeat, W) if nb > 1 else wrow),
            p("wstrb").eq((1 << (W // 8)) - 1), p("wlast").eq(wbeat == nb - 1),
            p("wvalid").eq(w_pend), p("bready").eq(1),
            self.w_beat.eq(p("wvalid") & p("wready")),
            self.wr_req.ready.eq(~aw_pend & ~w_pend),
            self.wr_idle.eq(~aw_pend & ~w_pend & (inflight == 0) & ~self.wr_req.valid),
        ]
        with m.If(self.wr_req.valid & self.wr_req.ready):
            m.d.sync += [wrow.eq(self.wr_req.payload.row), waddr.eq(self.wr_req.payload.addr),
                         aw_pend.eq(1), w_pend.eq(1), wbeat.eq(0)]
        aw_fire = p("awvalid") & p("awready")
        b_fire = p("bvalid") & p("bready")
        with m.If(aw_fire):
            m.d.sync += aw_pend.eq(0)
        with m.If(self.w_beat):
            m.d.sync += wbeat.eq(wbeat + 1)
            with m.If(wbeat == nb - 1):
                m.d.sync += w_pend.eq(0)
        with m.If(aw_fire & ~b_fire):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(b_fire & ~aw_fire):
            m.d.sync += inflight.eq(inflight - 1)
        m.d.comb += self.bus_error.eq((r_fire & (p("rresp") != 0))
                                      | (b_fire & (p("bresp") != 0)))
        return m
