"""A Spatial-STAR node core: the STAR core with a node's register view, query source, key shard
and output (``hw/spatial.py`` places them on the mesh).

Model: :func:`golden.spatial.run_sharded`. The node core has no register block: the array
drives its job registers and ``start`` and reads ``counters``; ``done`` pulses when its part of
the job is over, ``error`` on an AXI error response (the array checks the registers before
starting its cores, so the node checks nothing). It owns keys [key_lo, key_lo + key_cnt) of the
sequence, stored from K_BASE / V_BASE of its own memory channel (local row i = key key_lo + i).
Query rows come from memory (``root``) or from ``q_in`` (in order, lanes 0..n-1 of each
block); with ``forward`` every row the core takes is passed on at ``q_out`` (the core waits for
q_out.ready). Its lanes end with :class:`hw.sufa_state.Unload`: instead of O rows it sends its
partial state per query row at ``part`` (:class:`hw.owriter.PartialWriter`; rows past Q_LEN are
not sent), and the root writes the array's final O rows that arrive at ``o_in`` (in query
order) to O_BASE. A block whose keys all lie before key_lo (causal) or whose lanes see no key
of the shard still gives SU-FA one empty tile, so its partials (has = 0) go out in order.

Timing: as the core, but a block's plan takes two cycles (the lanes' limits in global keys,
then in the shard's).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, flipped

from star.spec.formats import unsigned_bits
from star.spec.regmap import COUNTERS, JOB_NAMES, ErrorCode
from star.spec.tiling import key_limit, tiles_to

from .core import StarCore
from .layouts import lane_row_layout, partial_layout
from .owriter import PartialWriter
from .sufa_state import Unload

__all__ = ["NodeCore"]


class NodeCore(StarCore):
    """A node core of the Spatial-STAR array (module docstring): :class:`hw.core.StarCore`
    with its node hooks overridden."""

    FINAL, WRITER = Unload, PartialWriter

    def _members(self, cfg) -> dict:
        rows = stream.Signature(lane_row_layout(cfg))
        seq = unsigned_bits(cfg.max_seq)
        return {
            "start": In(1), "done": Out(1), "error": Out(1),
            "job": In(data.StructLayout({n: 32 for n in JOB_NAMES})),
            "key_lo": In(seq), "key_cnt": In(seq), "root": In(1), "forward": In(1),
            "q_in": In(rows), "q_out": Out(rows),
            "part": Out(stream.Signature(partial_layout(cfg))),
            "o_in": In(stream.Signature(data.StructLayout(
                {"row": lane_row_layout(cfg)["row"].shape}))),
            "counters": Out(data.StructLayout({n: 32 for n, _ in COUNTERS})),
        }

    def _registers(self, m):
        """The array's job registers and start for the register block; the counters out."""
        csr = SimpleNamespace(
            values={n: self.job[n] for n in JOB_NAMES},
            counters={n: Signal(32, name=f"cnt_{n.lower()}") for n, _ in COUNTERS},
            start=self.start, busy=Signal(), done_set=self.done, error_set=Signal(),
            error_code=Signal(range(max(ErrorCode) + 1)), clear_status=Signal())
        m.d.comb += self.error.eq(csr.error_set & (csr.error_code == ErrorCode.BUS))
        m.d.comb += [self.counters[n].eq(c) for n, c in csr.counters.items()]
        return csr

    def _output(self, m, ow):
        wiring.connect(m, flipped(self.part), ow.part)
        wiring.connect(m, flipped(self.o_in), ow.o_in)
        m.d.comb += ow.root.eq(self.root)

    def _query_source(self, m, u, is_q, q_row):
        """Q rows from memory (the root) or the network, passed on with ``forward``."""
        q_ok = ~self.forward | self.q_out.ready
        with m.If(~self.root):
            m.d.comb += [q_row.eq(self.q_in.payload), self.q_in.ready.eq(u.q_wait & q_ok)]
        arriving = Mux(self.root, is_q, self.q_in.valid & u.q_wait)
        m.d.comb += [u.q_take.eq(arriving & q_ok),
                     self.q_out.valid.eq(self.forward & arriving),
                     self.q_out.payload.eq(q_row)]
        return q_ok

    def _key_range(self, seq):
        seq_bits = unsigned_bits(self.cfg.max_seq)
        return Signal(seq_bits), Signal(seq_bits)

    def _start_check(self, m, job):
        """None: the array checks the job before it starts its cores."""
        return 0, 1

    def _sample(self, m, job):
        m.d.sync += [job.key_lo.eq(self.key_lo), job.kseq.eq(self.key_cnt)]

    def _block_plan(self, m, job, qb, n_act, to_qread):
        """First cycle (BLOCK): each lane's last visible key in global keys, registered; second
        (PLAN): in local keys of the shard (a lane or block before key_lo sees nothing), active
        lanes and tiles."""
        T, lb = self.cfg.lanes, self.cfg.formats.log2_tile
        blk, seq, causal, key_lo, kseq = job.blk, job.seq, job.causal, job.key_lo, job.kseq
        off = seq - job.qlen
        lim_shape = key_limit(qb + T, off, seq, causal, Mux).shape()
        glim = [Signal(lim_shape, name=f"glim{t}") for t in range(T)]
        maxlim = Signal(lim_shape, name="maxlim")

        def plan(na):
            m.d.sync += [glim[t].eq(key_limit(qb + t, off, seq, causal, Mux)) for t in range(T)]
            m.d.sync += maxlim.eq(key_limit(qb + na - 1, off, seq, causal, Mux))
            m.next = "PLAN"

        def local(x):
            return Mux(x - key_lo >= kseq, kseq - 1, x - key_lo)

        def states():
            with m.State("PLAN"):
                m.d.sync += blk.active.eq(Cat(*((t < n_act) & (glim[t] >= key_lo)
                                                for t in range(T))))
                m.d.sync += [blk.lim[t].eq(local(glim[t])) for t in range(T)]
                m.d.sync += [blk.empty.eq(maxlim < key_lo),
                             blk.n_t.eq(Mux(maxlim < key_lo, 1, tiles_to(local(maxlim), lb)))]
                to_qread()
        return plan, states

    def _read_queries(self, m, u, q_got):
        """The root requests its Q rows from memory; another core counts the rows it takes
        from the network."""
        m.d.comb += [u.q_req.valid.eq(self.root), u.q_wait.eq(~self.root)]
        return Mux(self.root, q_got, u.q_take)
