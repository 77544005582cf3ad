"""O writer of the STAR core: SU-FA's finished rows of each block -> memory (or the network).

SU-FA gives every block's T rows in lane order; rows past Q_LEN (idle lanes of the last block)
are taken and dropped. The writer runs beside the next block's reads (blocks overlap) and counts
the blocks that went out, so the controller knows when the job is over (``idle``).

A Spatial-STAR node core (``spatial``) sends each row's partial state at ``part`` instead; the
root core writes the array's final O rows, which arrive at ``o_in`` in query order.

Ports
    rows        In stream: SU-FA's ``o`` (rows, or with ``spatial`` partial states).
    wr          Out stream {addr, row}: ``hw.axi.AxiRowMaster.wr_req``.
    begin       In: a job's blocks start (address to ``o_base``, counts to 0).
    o_base, o_stride, qlen  In: the O tensor's address, row stride, and the job's query rows.
    block_in    In: the controller started a block. ``busy`` In: a job runs.
    idle        Out: every started block went out (and, at a root, every O row was written).
    spatial only: ``part`` Out stream, ``o_in`` In stream, ``root`` In.
No latency of its own (combinational handshakes); backpressure from ``wr`` (or ``part``).
"""

from __future__ import annotations

from amaranth import Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits
from star.spec.regmap import ADDR_BITS

from .layouts import lane_row_layout, write_request_layout
from .layouts import partial_layout
from .sufa import SufaEngine

__all__ = ["OWriter"]


class OWriter(wiring.Component):
    def __init__(self, cfg, spatial: bool = False):
        self.cfg, self.spatial = cfg, spatial
        seq_bits = unsigned_bits(cfg.max_seq)
        rows = SufaEngine.partial_out_layout(cfg) if spatial else lane_row_layout(cfg)
        members = {
            "rows": In(stream.Signature(rows)),
            "wr": Out(stream.Signature(write_request_layout(cfg))),
            "begin": In(1), "o_base": In(ADDR_BITS), "o_stride": In(32), "qlen": In(seq_bits),
            "block_in": In(1), "busy": In(1), "idle": Out(1),
        }
        if spatial:
            members.update({
                "part": Out(stream.Signature(partial_layout(cfg))),
                "o_in": In(stream.Signature(data.StructLayout(
                    {"row": lane_row_layout(cfg)["row"].shape}))),
                "root": In(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        seq_bits = unsigned_bits(cfg.max_seq)
        busy, rows, wr = self.busy, self.rows, self.wr
        o_row = Signal(seq_bits + 1)                      # query row of the next output row
        o_addr = Signal(ADDR_BITS)
        blocks_in, blocks_out = Signal(seq_bits), Signal(seq_bits)
        fire = rows.valid & rows.ready
        keep = busy & rows.valid & (o_row < self.qlen)     # a row to send (not past Q_LEN)
        idle = blocks_out == blocks_in
        if self.spatial:
            o_done = Signal(seq_bits + 1)                 # O rows written (root)
            m.d.comb += [
                self.part.valid.eq(keep), self.part.payload.eq(rows.payload.part),
                rows.ready.eq(busy & ((o_row >= self.qlen) | self.part.ready)),
                wr.valid.eq(busy & self.o_in.valid), wr.payload.addr.eq(o_addr),
                wr.payload.row.eq(Value.cast(self.o_in.payload.row)),
                self.o_in.ready.eq(busy & wr.ready),
            ]
            with m.If(self.o_in.valid & self.o_in.ready):
                m.d.sync += [o_addr.eq(o_addr + self.o_stride), o_done.eq(o_done + 1)]
            with m.If(self.begin):
                m.d.sync += o_done.eq(0)
            idle &= ~self.root | (o_done == self.qlen)
        else:
            m.d.comb += [
                wr.valid.eq(keep), wr.payload.addr.eq(o_addr),
                wr.payload.row.eq(Value.cast(rows.payload.row)),
                rows.ready.eq(busy & ((o_row >= self.qlen) | wr.ready)),
            ]
            with m.If(fire):
                m.d.sync += o_addr.eq(o_addr + self.o_stride)
        m.d.comb += self.idle.eq(idle)
        with m.If(fire):
            m.d.sync += o_row.eq(o_row + 1)
            with m.If(rows.payload.lane == cfg.lanes - 1):
                m.d.sync += blocks_out.eq(blocks_out + 1)
        with m.If(self.block_in):
            m.d.sync += blocks_in.eq(blocks_in + 1)
        with m.If(self.begin):
            m.d.sync += [o_addr.eq(self.o_base), o_row.eq(0), blocks_in.eq(0),
                         blocks_out.eq(0)]
        return m
