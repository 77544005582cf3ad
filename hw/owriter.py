"""The output end of the STAR core: SU-FA's finished rows of each block -> memory (or the network).

SU-FA gives every block's T rows in lane order; rows past Q_LEN (idle lanes of the last block)
are taken and dropped. The output runs beside the next block's reads (blocks overlap) and
counts the blocks that went out, so the controller knows when the job is over (``idle``).

Two pieces, composed per top:
- :class:`BlockRows`: SU-FA's rows (any payload beside ``lane``) -> the rows to keep, and the
  block count;
- :class:`RowWriter`: rows -> AXI write requests at O_BASE + i · O_STRIDE.

:class:`OWriter` (the core) joins them; :class:`PartialWriter` (a Spatial-STAR node core)
sends its partial states on at ``part`` and, at the root, writes the array's final O rows that
arrive at ``o_in`` in query order.

Control ports of OWriter and PartialWriter
    begin       In: a job's blocks start (address to ``o_base``, counts to 0).
    o_base, o_stride, qlen  In: the O tensor's address, row stride, and the job's query rows.
    block_in    In: the controller started a block. ``busy`` In: a job runs.
    idle        Out: every started block went out (and, at a root, every O row was written).
No latency of their own (combinational handshakes); backpressure from ``wr`` (or ``part``).
"""

from __future__ import annotations

from amaranth import Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits
from star.spec.regmap import ADDR_BITS

from .layouts import lane_row_layout, partial_layout, write_request_layout
from .sufa import SufaEngine
from .sufa_state import Unload

__all__ = ["BlockRows", "RowWriter", "OWriter", "PartialWriter"]


def _control(cfg) -> dict:
    """The control ports of the output (module docstring)."""
    return {"begin": In(1), "o_base": In(ADDR_BITS), "o_stride": In(32),
            "qlen": In(unsigned_bits(cfg.max_seq)), "block_in": In(1), "busy": In(1),
            "idle": Out(1)}


def _row_layout(cfg) -> data.StructLayout:
    """An O row without its lane: {row[head_dim]}."""
    return data.StructLayout({"row": lane_row_layout(cfg)["row"].shape})


class BlockRows(wiring.Component):
    """SU-FA's rows ``rows`` ({lane, ``field``}) -> ``o`` ({``field``}): rows past ``qlen``
    taken and dropped; ``idle`` while every block started (``block_in``) went out (its lane
    T - 1 row taken). ``begin``, ``qlen``, ``busy``, ``block_in``: the control ports."""

    def __init__(self, cfg, rows: data.StructLayout, field: str):
        self.cfg, self.field = cfg, field
        super().__init__({
            "rows": In(stream.Signature(rows)),
            "o": Out(stream.Signature(data.StructLayout({field: rows[field].shape}))),
            "begin": In(1), "qlen": In(unsigned_bits(cfg.max_seq)), "block_in": In(1),
            "busy": In(1), "idle": Out(1)})

    def elaborate(self, platform):
        m = Module()
        seq_bits = unsigned_bits(self.cfg.max_seq)
        rows, o = self.rows, self.o
        o_row = Signal(seq_bits + 1)                      # query row of the next row
        blocks_in, blocks_out = Signal(seq_bits), Signal(seq_bits)
        m.d.comb += [o.valid.eq(self.busy & rows.valid & (o_row < self.qlen)),
                     o.payload.eq(rows.payload[self.field]),
                     rows.ready.eq(self.busy & ((o_row >= self.qlen) | o.ready)),
                     self.idle.eq(blocks_out == blocks_in)]
        with m.If(rows.valid & rows.ready):
            m.d.sync += o_row.eq(o_row + 1)
            with m.If(rows.payload.lane == self.cfg.lanes - 1):
                m.d.sync += blocks_out.eq(blocks_out + 1)
        with m.If(self.block_in):
            m.d.sync += blocks_in.eq(blocks_in + 1)
        with m.If(self.begin):
            m.d.sync += [o_row.eq(0), blocks_in.eq(0), blocks_out.eq(0)]
        return m


class RowWriter(wiring.Component):
    """O rows ``i`` -> write requests ``wr`` (``hw.axi.AxiRowMaster.wr_req``) at ``o_base`` +
    i · ``o_stride`` while ``busy``; ``written``: the rows written since ``begin``."""

    def __init__(self, cfg):
        super().__init__({
            "i": In(stream.Signature(_row_layout(cfg))),
            "wr": Out(stream.Signature(write_request_layout(cfg))),
            "begin": In(1), "o_base": In(ADDR_BITS), "o_stride": In(32), "busy": In(1),
            "written": Out(unsigned_bits(cfg.max_seq) + 1)})

    def elaborate(self, platform):
        m = Module()
        i, wr = self.i, self.wr
        o_addr = Signal(ADDR_BITS)
        m.d.comb += [wr.valid.eq(self.busy & i.valid), wr.payload.addr.eq(o_addr),
                     wr.payload.row.eq(Value.cast(i.payload.row)),
                     i.ready.eq(self.busy & wr.ready)]
        with m.If(i.valid & i.ready):
            m.d.sync += [o_addr.eq(o_addr + self.o_stride), self.written.eq(self.written + 1)]
        with m.If(self.begin):
            m.d.sync += [o_addr.eq(self.o_base), self.written.eq(0)]
        return m


def _blocks_and_writer(m, out, rows: data.StructLayout, field: str):
    """The BlockRows (rows ``rows``, kept ``field``) and RowWriter of an output ``out``, their
    control ports driven from its own."""
    blocks = m.submodules.blocks = BlockRows(out.cfg, rows, field)
    writer = m.submodules.writer = RowWriter(out.cfg)
    wiring.connect(m, wiring.flipped(out.rows), blocks.rows)
    wiring.connect(m, writer.wr, wiring.flipped(out.wr))
    for unit in (blocks, writer):
        m.d.comb += [unit.begin.eq(out.begin), unit.busy.eq(out.busy)]
    m.d.comb += [blocks.qlen.eq(out.qlen), blocks.block_in.eq(out.block_in),
                 writer.o_base.eq(out.o_base), writer.o_stride.eq(out.o_stride)]
    return blocks, writer


class OWriter(wiring.Component):
    """The core's output: SU-FA's rows ``rows`` (``lane_row_layout``) -> :class:`BlockRows` ->
    :class:`RowWriter` -> ``wr``; control ports in the module docstring."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "rows": In(stream.Signature(lane_row_layout(cfg))),
            "wr": Out(stream.Signature(write_request_layout(cfg))), **_control(cfg)})

    def elaborate(self, platform):
        m = Module()
        blocks, writer = _blocks_and_writer(m, self, lane_row_layout(self.cfg), "row")
        wiring.connect(m, blocks.o, writer.i)
        m.d.comb += self.idle.eq(blocks.idle)
        return m


class PartialWriter(wiring.Component):
    """A Spatial-STAR node core's output: SU-FA's partial states ``rows``
    (``SufaEngine.out_layout`` of :class:`hw.sufa_state.Unload`) -> :class:`BlockRows` -> ``part`` (the network); at the
    root (``root``) the array's final O rows ``o_in`` -> :class:`RowWriter` -> ``wr``, and
    ``idle`` waits for all Q_LEN of them too. Control ports in the module docstring."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "rows": In(stream.Signature(SufaEngine.out_layout(cfg, Unload))),
            "wr": Out(stream.Signature(write_request_layout(cfg))),
            "part": Out(stream.Signature(partial_layout(cfg))),
            "o_in": In(stream.Signature(_row_layout(cfg))), "root": In(1), **_control(cfg)})

    def elaborate(self, platform):
        m = Module()
        blocks, writer = _blocks_and_writer(m, self, SufaEngine.out_layout(self.cfg, Unload),
                                            "part")
        m.d.comb += [self.part.valid.eq(blocks.o.valid),
                     self.part.payload.eq(blocks.o.payload.part),
                     blocks.o.ready.eq(self.part.ready)]
        wiring.connect(m, wiring.flipped(self.o_in), writer.i)
        m.d.comb += self.idle.eq(blocks.idle & (~self.root | (writer.written == self.qlen)))
        return m
