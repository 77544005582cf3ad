"""Spatial-STAR: R×C STAR cores on a mesh NoC, the key sequence sharded across the cores.

Model: :func:`golden.spatial.run_sharded` (bit-exact O); start check
:func:`golden.spatial.check_registers`. Configuration:
:class:`star.spec.spatial_config.SpatialConfig`.
User documentation: ``docs/spatial.md``.

Structure. Core c (c = 0 .. N-1) sits at mesh node ``order[c]``, a snake through the mesh, so
cores c and c + 1 are mesh neighbours. Every core is a node core (:class:`~hw.node.NodeCore`,
the STAR core with a node's query source, key shard and output) with its own AXI4 master
(``m<c>_axi_*``, its memory channel); one AXI4-Lite register block (``s_axil_*``, the core's
register map, ``spec/regmap.py``) runs the array.

* Sharding: with n = ceil(SEQ_LEN / tile) key tiles and q, r = divmod(n, N), core c owns the
  q + (c < r) tiles from tile c·q + min(c, r); its K and V rows are in its own channel from
  K_BASE / V_BASE (local row i = its i-th key). Q and O are in core 0's channel (the root).
* Queries: the root reads each block's Q rows from memory; every core passes the rows it takes
  on to core c + 1 over the query network (a relay: each link carries each row once).
* Partials: each core sends, per query row, its partial softmax state (has, m, l, o) towards
  core 0 over the partial network; core c merges its own state with the one arriving from core
  c + 1 (:class:`~hw.merge.PartialMerge`, the tile-merge rule) and sends the result on, so the
  merge order is golden.spatial.merge_chain's. At the root, :class:`~hw.normalize.Normalize`
  divides by l once and the root core writes the O row.
* Two physical meshes (:class:`~hw.noc.mesh.Mesh`), one for query rows and one for partials:
  no message of one kind can block the other, so the relay and the merge chain cannot deadlock
  (each network's traffic only waits on its own consumers).

Throughput: the cores overlap query blocks as a single core does; per block a node also moves
T query rows and T partials (a few flits each, one flit per cycle per link) and merges T pairs
(``hw.merge.merge_interval(cfg)`` cycles each) beside its core, so for shards of a few tiles or
more the array runs at the cores' rate. Latency of a block's O rows after the last core finishes
it: about N·(``merge_interval`` + the message flits) cycles (the merge chain). Backpressure: every transfer is valid/ready; a slow
memory channel stalls its core, which stalls the relay and the merge chain behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits
from star.spec.regmap import COUNTERS, JOB_NAMES, ErrorCode

from .axi import AXI4, AXI4Lite
from .core import start_check
from .csr import CsrBlock
from .jobstart import JobStart
from .layouts import lane_row_layout, partial_layout
from .merge import PartialMerge
from .node import NodeCore
from .noc.mesh import Mesh
from .noc.message import Deserializer, Serializer
from .normalize import Normalize
from .pipe import StreamFIFO

__all__ = ["SpatialStar"]

RANGE_CYCLES = 3    # the job registers -> tiles -> their split -> each core's key range


def _fifo_link(m: Module, name: str, src, dst, depth: int):
    """src stream -> a :class:`hw.pipe.StreamFIFO` of ``depth`` entries -> dst stream."""
    fifo = m.submodules[name] = StreamFIFO(src.payload.shape(), depth)
    wiring.connect(m, src, fifo.i)
    wiring.connect(m, fifo.o, dst)


@dataclass(frozen=True)
class _Job:
    """The array's job state, made once in :meth:`SpatialStar._job`: the sampled registers
    (``regs``, by name), SEQ_LEN (``seq``), its tiles and their split over the cores (n_tiles =
    per · N + extra), each core's key range [key_lo, key_lo + key_cnt), the start checks' error
    code and latency."""
    regs: dict
    seq: Value
    n_tiles: Signal
    per: Signal
    extra: Signal
    key_lo: list
    key_cnt: list
    core_error: Signal
    check_cycles: int


class SpatialStar(wiring.Component):
    """The Spatial-STAR array of ``scfg`` (a :class:`star.spec.spatial_config.SpatialConfig`).

    Ports: ``s_axil`` (:class:`hw.axi.AXI4Lite` slave, the register map of ``spec/regmap.py``; counters are
    summed over the cores except CYCLES, the array's), ``irq``, and per core c an AXI4 master
    ``m<c>_axi`` (:class:`hw.axi.AXI4`). Errors: the core's start checks (K and V spans over the largest shard, core
    0's), then SHARD when SEQ_LEN has fewer tiles than the array has cores; BUS when any core
    sees an error response.
    """

    def __init__(self, scfg):
        self.scfg = scfg
        cfg = scfg.core
        super().__init__({"s_axil": In(AXI4Lite()), "irq": Out(1),
                          **{f"m{c}_axi": Out(AXI4(cfg.axi_data_bits))
                             for c in range(scfg.cores)}})

    def elaborate(self, platform):
        m = Module()
        cfg = self.scfg.core
        m.submodules.csr = csr = CsrBlock(cfg)
        csr.connect(m, self)
        job = self._job(m)
        cores = self._nodes(m, job)
        busy = self._control(m, csr, job, cores)
        self._counters(m, csr, busy, cores)
        return m

    def _job(self, m):
        """The sampled job registers, the shards' tile counts and key ranges, the start checks
        (the core's, over the first shard's keys)."""
        scfg, cfg = self.scfg, self.scfg.core
        N = scfg.cores
        seq_bits = unsigned_bits(cfg.max_seq)
        job = {n: Signal(32, name=f"job_{n.lower()}") for n in JOB_NAMES}
        seq = job["SEQ_LEN"][:seq_bits]
        causal, dense = job["MODE"][0], job["MODE"][1]
        n_tiles = Signal(seq_bits + 1)
        per, extra = Signal(seq_bits + 1), Signal(range(N))       # q, r = divmod(n, N)
        key_lo = [Signal(seq_bits, name=f"key_lo{c}") for c in range(N)]
        key_cnt = [Signal(seq_bits + 1, name=f"key_cnt{c}") for c in range(N)]
        qlen = job["Q_LEN"][:seq_bits]
        core_error, check_cycles = start_check(
            m, cfg, job, {"Q": qlen, "K": key_cnt[0], "V": key_cnt[0], "O": qlen}, causal, dense)
        return _Job(regs=job, seq=seq, n_tiles=n_tiles, per=per, extra=extra, key_lo=key_lo,
                    key_cnt=key_cnt, core_error=core_error, check_cycles=check_cycles)

    def _nodes(self, m, job):
        """The cores on the query and partial-state meshes: the query relay (core c's rows to
        core c + 1), the partial chain (merged towards core 0, normalised there). Returns the
        cores."""
        scfg, cfg = self.scfg, self.scfg.core
        N, T = scfg.cores, cfg.lanes
        noc = scfg.noc
        q_net = m.submodules.q_net = Mesh(noc)
        p_net = m.submodules.p_net = Mesh(noc)
        q_msg, p_msg = lane_row_layout(cfg), partial_layout(cfg)
        cores = []
        for c, (x, y) in enumerate(scfg.order):
            core = m.submodules[f"core{c}"] = NodeCore(cfg)
            cores.append(core)
            wiring.connect(m, wiring.flipped(getattr(self, f"m{c}_axi")), core.m_axi)
            m.d.comb += [core.job[n].eq(job.regs[n]) for n in JOB_NAMES]
            m.d.comb += [core.key_lo.eq(job.key_lo[c]), core.key_cnt.eq(job.key_cnt[c]),
                         core.root.eq(c == 0), core.forward.eq(c < N - 1)]
            # query relay: rows this core took -> core c + 1
            if c < N - 1:
                ser = m.submodules[f"q_ser{c}"] = Serializer(noc, q_msg, scfg.order[c + 1])
                _fifo_link(m, f"q_fifo{c}", core.q_out, ser.i, max(T, 4))
                wiring.connect(m, ser.o, q_net.inject[y][x])
            if c > 0:
                des = m.submodules[f"q_des{c}"] = Deserializer(noc, q_msg)
                wiring.connect(m, q_net.eject[y][x], des.i)
                wiring.connect(m, des.o, core.q_in)
            # partial chain: own state (+ core c + 1's) -> core c - 1, or normalise at the root
            if c == N - 1:
                head = core.part
            else:
                mrg = m.submodules[f"merge{c}"] = PartialMerge(cfg)
                m.d.comb += [mrg.mant.eq(job.regs["SCALE_MANT"]),
                             mrg.shift.eq(job.regs["SCALE_SHIFT"])]
                _fifo_link(m, f"p_fifo{c}", core.part, mrg.a, max(T, 4))
                des = m.submodules[f"p_des{c}"] = Deserializer(noc, p_msg)
                wiring.connect(m, p_net.eject[y][x], des.i)
                wiring.connect(m, des.o, mrg.b)
                head = mrg.out
            if c > 0:
                ser = m.submodules[f"p_ser{c}"] = Serializer(noc, p_msg, scfg.order[c - 1])
                wiring.connect(m, head, ser.i)
                wiring.connect(m, ser.o, p_net.inject[y][x])
            else:
                norm = m.submodules.normalize = Normalize(cfg)
                wiring.connect(m, head, norm.i)
                wiring.connect(m, norm.o, core.o_in)
        return cores

    def _control(self, m, csr, job, cores):
        """The array's job sequence (:class:`hw.jobstart.JobStart`): START samples the
        registers; from them, one register stage each, the shards' tiles, their split and each
        core's key range, then the start checks (and SHARD); the cores' launch, and done once
        every core is done. Returns busy."""
        scfg, cfg = self.scfg, self.scfg.core
        N, Bc = scfg.cores, cfg.tile
        lb = cfg.formats.log2_tile
        seq_bits = unsigned_bits(cfg.max_seq)
        regs, seq, n_tiles = job.regs, job.seq, job.n_tiles
        per, extra, key_lo, key_cnt = job.per, job.extra, job.key_lo, job.key_cnt
        m.submodules.job = js = JobStart(RANGE_CYCLES + job.check_cycles)
        done_seen = Signal(N)
        js.serve(m, csr, regs)
        m.d.comb += [js.error.eq(Mux(job.core_error != 0, job.core_error,
                                     Mux(n_tiles < N, ErrorCode.SHARD, 0))),
                     js.finish.eq(done_seen.all())]
        # the shards (static during a job; settled RANGE_CYCLES after the sample)
        m.d.sync += [n_tiles.eq((seq + Bc - 1) >> lb), per.eq(n_tiles // N),
                     extra.eq(n_tiles % N)]
        for c in range(N):
            # (the constant cases written out: Verilator rejects constant compares)
            lo = ((per * c + (Mux(extra < c, extra, c) if c else 0)) << lb)[:seq_bits + 1]
            cnt = (per + ((extra > c) if c < N - 1 else 0)) << lb
            m.d.sync += [key_lo[c].eq(lo), key_cnt[c].eq(Mux(lo + cnt > seq, seq - lo, cnt))]

        m.d.comb += [core.start.eq(js.launch) for core in cores]
        with m.If(js.launch):
            m.d.sync += done_seen.eq(0)
        with m.Else():
            m.d.sync += done_seen.eq(done_seen | Cat(core.done for core in cores))
        with m.If(js.busy & Cat(core.error for core in cores).any()):
            m.d.comb += [csr.error_set.eq(1), csr.error_code.eq(ErrorCode.BUS)]
        return js.busy

    def _counters(self, m, csr, busy, cores):
        """The array's cycles; every other counter summed over the cores."""
        cnt = csr.counters
        with m.If(csr.start & ~busy):
            m.d.sync += cnt["CYCLES"].eq(0)
        with m.Elif(busy):
            m.d.sync += cnt["CYCLES"].eq(cnt["CYCLES"] + 1)
        for name, _ in COUNTERS:
            if name != "CYCLES":
                m.d.comb += cnt[name].eq(sum(core.counters[name] for core in cores))
