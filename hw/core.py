"""The STAR core: cross-stage tiled DLZS -> SADS -> SU-FA pipeline behind AXI4 / AXI4-Lite.

Model: :mod:`golden.core` (bit-exact O and counters). User documentation: ``docs/core.md``.

Structure (one attention head per job, query blocks of T = ``lanes`` rows, key tiles of
Bc = ``tile`` keys); components joined with ``wiring.connect``:

* controller (here): samples and checks the job registers (``spec/regmap.py`` error codes;
  the start sequence ``hw/jobstart.py``, shared with the Spatial-STAR array), then
  per query block plans it (active lanes, per-lane last visible key, tiles), reads its Q rows
  (to the predictor and the SU-FA lanes) and lets the front and the lists run;
* read arbiter (``hw/read_arbiter.py``): V before K before Q on the AXI read channel;
* tile front (``hw/front.py``): the K rows of each tile into a free slot of SU-FA's K store and
  through the DLZS predictor (``hw/dlzs.py``) into SADS (``hw/sads.py``), with each key's
  per-lane validity (causal limit, ragged sequence, idle lanes); it runs ahead of the lanes by
  up to two tiles (the store's slots);
* lists (``hw/lists.py``): SADS's per-lane lists (dense mode: each lane's visible keys) to SU-FA,
  their union to the V fetch (``hw/vfetch.py``), which reads those V rows once each into SU-FA's
  V store;
* SU-FA (``hw/sufa.py``): every lane walks its own list (``hw/sufa_lane.py``); K and V tile
  stores of two tiles (``hw/tilebuf.py``) are refilled as the lanes release them (tile-slot
  credits);
* O writer (``hw/owriter.py``): the blocks' rows to memory (a node core: partial states to the
  network); ``hw/axi.py`` moves rows; ``hw/csr.py`` holds the registers.

Throughput: per tile, the K rows (one per ``row_beats`` bus cycles) and the union's V rows
share the AXI read channel; the predictor and SADS take one key per cycle; each SU-FA lane takes
head_dim / sufa_macs cycles per key of its own list. The core is bound by the largest of: memory
beats, keys predicted, and the busiest lane's keys × head_dim / sufa_macs (per block). Blocks
overlap: the next block's Q rows are read once every lane has started the current block, while
SU-FA finishes it and its O rows are written. Latency and backpressure of each unit: see its
docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out, flipped

from star.spec.formats import SCALE_SHIFT_MAX, unsigned_bits
from star.spec.regmap import ADDR_BITS, JOB_NAMES, RADIUS_OFF_VALUE, ErrorCode
from star.spec.tiling import key_limit, tiles_to

from .arith import MulPipe, mul_latency
from .axi import AXI4, AXI4Lite, AxiRowMaster
from .csr import CsrBlock
from .dlzs import DlzsPredictor
from .front import TileFront, block_layout
from .jobstart import JobStart
from .layouts import lane_row_layout
from .lists import ListStage
from .owriter import OWriter
from .pipe import StreamRegister
from .read_arbiter import DEST_K, DEST_Q, DEST_V, ReadArbiter, tag_layout
from .sads import SadsSelector
from .sufa import SufaEngine
from .sufa_state import Normalise
from .vfetch import VFetch

__all__ = ["StarCore", "first_error", "tensor_ends", "start_check", "check_latency"]


@dataclass(frozen=True)
class _Job:
    """A job's state, made once in :meth:`StarCore._job`: the sampled registers (``regs``, by
    name), SEQ_LEN and Q_LEN, the keys this core owns [key_lo, key_lo + kseq), the mode bits,
    the block plan register and the strobes that run the front and the lists."""
    regs: dict
    seq: Value
    qlen: Value
    key_lo: object
    kseq: Value
    causal: Value
    dense: Value
    blk: Signal
    run: Signal
    begin: Signal


@dataclass(frozen=True)
class _Units:
    """The core's units and the control signals they share, made once in ``elaborate``; the
    helpers read them and add nothing. ``clear``: a job starts (the units reset their state);
    ``busy``: a job runs; ``q_take``: a Q row goes to the predictor and the lanes; ``q_wait``
    (a node core): it takes its block's Q rows from the network."""
    csr: object
    axi: AxiRowMaster
    q_req: object
    front: TileFront
    pred: DlzsPredictor
    sads: SadsSelector
    lists: ListStage
    vf: VFetch
    sufa: SufaEngine
    ow: wiring.Component
    clear: Signal
    busy: Signal
    q_take: Signal
    q_wait: Signal


class StarCore(wiring.Component):
    """The STAR core: ports ``m_axi`` (:class:`hw.axi.AXI4` master), ``s_axil``
    (:class:`hw.axi.AXI4Lite` slave, ``spec/regmap.py``) and ``irq``.

    A Spatial-STAR node core (:class:`hw.node.NodeCore`) is this core with its register block,
    query source, key range, block plan, lane final pass and output replaced: the methods
    marked *node hook* below are the seams it overrides.
    """

    #: the lanes' final pass (:class:`hw.sufa_state.Normalise`: O rows) and the output unit
    FINAL, WRITER = Normalise, OWriter

    def __init__(self, cfg):
        self.cfg = cfg
        self.fmt = cfg.formats
        super().__init__({"m_axi": Out(AXI4(cfg.axi_data_bits)), **self._members(cfg)})

    def _members(self, cfg) -> dict:
        """The ports beside ``m_axi`` (node hook)."""
        return {"s_axil": In(AXI4Lite()), "irq": Out(1)}

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        csr = self._registers(m)
        arb = ReadArbiter(cfg)
        u = _Units(csr=csr, axi=AxiRowMaster(cfg, tag_layout(cfg).size), q_req=arb.q,
                   front=TileFront(cfg), pred=DlzsPredictor(cfg), sads=SadsSelector(cfg),
                   lists=ListStage(cfg), vf=VFetch(cfg),
                   sufa=SufaEngine(cfg, self.FINAL), ow=self.WRITER(cfg),
                   clear=Signal(name="clear"),
                   busy=Signal(name="busy"), q_take=Signal(name="q_take"),
                   q_wait=Signal(name="q_wait"))
        for name, unit in (("axi", u.axi), ("arb", arb), ("front", u.front), ("pred", u.pred),
                           ("sads", u.sads), ("lists", u.lists), ("vfetch", u.vf),
                           ("sufa", u.sufa), ("owriter", u.ow)):
            m.submodules[name] = unit
        wiring.connect(m, flipped(self.m_axi), u.axi.m_axi)
        wiring.connect(m, arb.out, u.axi.rd_req)
        wiring.connect(m, u.front.req, arb.k)
        wiring.connect(m, u.vf.req, arb.v)
        wiring.connect(m, u.sads.o, u.lists.sel)
        wiring.connect(m, u.lists.lists, u.sufa.lists)
        wiring.connect(m, u.lists.union, u.vf.union)
        wiring.connect(m, u.sufa.o, u.ow.rows)
        wiring.connect(m, u.ow.wr, u.axi.wr_req)
        self._output(m, u.ow)

        # predictor -> a pipeline register -> SADS, with each key's per-lane validity from the
        # front
        pred, sads, front = u.pred, u.sads, u.front
        m.submodules.pred_reg = preg = StreamRegister(pred.a.payload.shape())
        wiring.connect(m, pred.a, preg.i)
        wiring.connect(m, preg.o, sads.i)
        m.d.comb += [front.p_fire.eq(sads.i.valid & sads.i.ready),
                     front.p_last.eq(sads.i.payload.last), sads.lane_valid.eq(front.p_valid)]
        m.d.comb += [front.k_release.eq(u.sufa.k_release), u.vf.v_release.eq(u.sufa.v_release),
                     front.empty_take.eq(u.lists.empty_take), u.lists.k_free.eq(front.k_free)]
        self._responses(m, u)
        self._controller(m, u)
        self._counters(m, u)
        return m

    def _registers(self, m):
        """The register block (node hook)."""
        m.submodules.csr = csr = CsrBlock(self.cfg)
        csr.connect(m, self)
        return csr

    def _output(self, m, ow):
        """The output unit's ports beyond SU-FA's rows and the AXI writes (node hook)."""

    def _responses(self, m, u):
        """Read responses: Q rows to the predictor and the lanes (:meth:`_query_source`), K rows
        to the predictor and the K store, V rows to the V store."""
        cfg, resp, sufa = self.cfg, u.axi.rd_resp, u.sufa
        rtag = data.View(tag_layout(cfg), resp.payload.tag)
        is_q = resp.valid & (rtag.dest == DEST_Q)
        is_k = resp.valid & (rtag.dest == DEST_K)
        is_v = resp.valid & (rtag.dest == DEST_V)
        q_row = Signal(lane_row_layout(cfg))
        m.d.comb += [q_row.lane.eq(rtag.idx), Value.cast(q_row.row).eq(resp.payload.row)]
        q_ok = self._query_source(m, u, is_q, q_row)     # the Q row may be taken
        for port in (u.pred.q, sufa.q):
            m.d.comb += [port.valid.eq(u.q_take), port.payload.eq(q_row)]
        m.d.comb += [
            u.pred.k.valid.eq(is_k),
            Value.cast(u.pred.k.payload.key).eq(resp.payload.row),
            u.pred.k.payload.last.eq(rtag.last),
            sufa.k_en.eq(is_k & u.pred.k.ready), sufa.k_addr.eq(rtag.idx),
            sufa.k_row.eq(resp.payload.row),
            sufa.v_en.eq(is_v), sufa.v_addr.eq(rtag.idx), sufa.v_row.eq(resp.payload.row),
            u.vf.arrived.eq(is_v), u.vf.arrived_last.eq(is_v & rtag.last),
            sufa.v_filled.eq(u.vf.filled),
            resp.ready.eq(Mux(rtag.dest == DEST_K, u.pred.k.ready,
                              Mux(rtag.dest == DEST_V, 1, q_ok))),
        ]

    def _query_source(self, m, u, is_q, q_row):
        """Drive ``u.q_take`` from the Q rows read from memory (``is_q``, row ``q_row``);
        return when a Q response may be taken (node hook)."""
        m.d.comb += u.q_take.eq(is_q)
        return 1

    def _controller(self, m, u):
        """Job controller: samples and checks the job registers at START, then per query block
        plans the block (lanes, per-lane limits, tiles), reads its Q rows once every lane has
        started the previous block, lets the front and the lists run, and ends the job once
        every block's rows are out."""
        self._sequence(m, u, self._job(m, u))

    def _job(self, m, u):
        """The sampled job registers and what they drive in the units (static during a job),
        the block plan register and the run / begin strobes."""
        cfg, fmt = self.cfg, self.fmt
        seq_bits = unsigned_bits(cfg.max_seq)
        front, lists, sufa, ow, sads = u.front, u.lists, u.sufa, u.ow, u.sads
        job = {n: Signal(32, name=f"job_{n.lower()}") for n in JOB_NAMES}
        seq, qlen = job["SEQ_LEN"][:seq_bits], job["Q_LEN"][:seq_bits]
        key_lo, kseq = self._key_range(seq)
        causal, dense = job["MODE"][0], job["MODE"][1]
        blk = Signal(block_layout(cfg))
        run, begin, busy = Signal(), Signal(), u.busy
        # the radius the lanes compare with, a register (static per job: it settles during the
        # start check, long before the first key)
        radius = Signal.like(sads.radius, name="radius_eff")
        m.d.sync += radius.eq(Mux(job["RADIUS"] == RADIUS_OFF_VALUE, fmt.radius_off,
                                  job["RADIUS"]))
        m.d.comb += [
            sads.k.eq(job["K_TILE"]),
            sads.radius.eq(radius),
            sufa.mant.eq(job["SCALE_MANT"]), sufa.shift.eq(job["SCALE_SHIFT"]),
            sufa.exact_max.eq(dense), sufa.clear.eq(u.clear),
            front.block.eq(blk), front.kseq.eq(kseq), front.k_base.eq(job["K_BASE"]),
            front.k_stride.eq(job["K_STRIDE"]), front.begin.eq(begin), front.run.eq(run),
            front.clear.eq(u.clear), u.vf.clear.eq(u.clear),
            u.vf.v_base.eq(job["V_BASE"]), u.vf.v_stride.eq(job["V_STRIDE"]),
            lists.block.eq(blk), lists.dense.eq(dense), lists.run.eq(run),
            lists.begin.eq(begin),
            ow.o_base.eq(job["O_BASE"]), ow.o_stride.eq(job["O_STRIDE"]), ow.qlen.eq(qlen),
            ow.busy.eq(busy), ow.block_in.eq(begin),
        ]
        return _Job(regs=job, seq=seq, qlen=qlen, key_lo=key_lo, kseq=kseq, causal=causal,
                    dense=dense, blk=blk, run=run, begin=begin)

    def _key_range(self, seq):
        """The keys this core owns, [key_lo, key_lo + kseq): all of them (node hook)."""
        return 0, seq

    def _sequence(self, m, u, job):
        """The controller's FSM (see :meth:`_controller`) over the job state ``job``."""
        cfg, csr = self.cfg, u.csr
        T = cfg.lanes
        seq_bits = unsigned_bits(cfg.max_seq)
        lists, sufa, ow, busy = u.lists, u.sufa, u.ow, u.busy
        qlen, run, begin, regs = job.qlen, job.run, job.begin, job.regs
        qb = Signal(seq_bits)                             # first query row of the block
        n_act = Signal(range(T + 1))                      # active lanes of the block
        q_lane, q_addr = Signal(range(T + 1)), Signal(ADDR_BITS)
        m.d.comb += [u.q_req.payload.addr.eq(q_addr), u.q_req.payload.idx.eq(q_lane)]
        q_got = u.q_req.valid & u.q_req.ready
        error, check_cycles = self._start_check(m, job)
        m.submodules.job = js = JobStart(check_cycles)
        js.serve(m, csr, regs)
        m.d.comb += [js.error.eq(error), busy.eq(js.busy), u.clear.eq(js.sample)]
        with m.If(js.sample):
            self._sample(m, job)

        def to_qread():
            # the block is planned: read its Q rows once every lane has started the previous
            # block (its next-query register is free)
            with m.If(sufa.q_free):
                m.next = "QREAD"
            with m.Else():
                m.next = "QWAIT"

        plan, plan_states = self._block_plan(m, job, qb, n_act, to_qread)

        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(js.launch):
                    m.d.comb += ow.begin.eq(1)
                    m.d.sync += [qb.eq(0), q_addr.eq(regs["Q_BASE"])]
                    m.next = "BLOCK"
            with m.State("BLOCK"):
                m.d.comb += begin.eq(1)
                rest = Signal(seq_bits + 1)
                m.d.comb += rest.eq(qlen - qb)
                na = Mux(rest >= T, T, rest)
                m.d.sync += [n_act.eq(na), q_lane.eq(0)]
                plan(na)
            plan_states()
            with m.State("QWAIT"):
                with m.If(sufa.q_free):
                    m.next = "QREAD"
            with m.State("QREAD"):
                with m.If(self._read_queries(m, u, q_got)):
                    m.d.sync += [q_lane.eq(q_lane + 1), q_addr.eq(q_addr + regs["Q_STRIDE"])]
                    with m.If(q_lane == n_act - 1):
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += run.eq(1)
                with m.If(lists.tiles_done):
                    # every list of the block is given: the predictor may take the next
                    # block's queries
                    m.d.sync += qb.eq(qb + T)
                    with m.If(qb + T >= qlen):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "BLOCK"
            with m.State("FINISH"):
                with m.If(u.axi.wr_idle & ow.idle):
                    m.d.comb += js.finish.eq(1)
                    m.next = "IDLE"

        with m.If(u.axi.bus_error & busy):
            m.d.comb += [csr.error_set.eq(1), csr.error_code.eq(ErrorCode.BUS)]

    def _start_check(self, m, job):
        """The start checks' error code and the cycles it takes to settle after START (node
        hook)."""
        seq, qlen = job.seq, job.qlen
        return start_check(m, self.cfg, job.regs, {"Q": qlen, "K": seq, "V": seq, "O": qlen},
                           job.causal, job.dense)

    def _sample(self, m, job):
        """What START samples beside the job registers (node hook)."""

    def _block_plan(self, m, job, qb, n_act, to_qread):
        """The block's plan, made in BLOCK from its first row ``qb`` and active lanes: returns
        (plan, states), ``plan(na)`` emitted in BLOCK, ``states()`` after it in the FSM (node
        hook). Here: active lanes, each lane's last visible key and tiles in one cycle, then the
        Q rows (``to_qread``)."""
        T, lb = self.cfg.lanes, self.cfg.formats.log2_tile
        blk, seq, causal = job.blk, job.seq, job.causal
        off = seq - job.qlen

        def plan(na):
            maxlim = key_limit(qb + na - 1, off, seq, causal, Mux)
            m.d.sync += [blk.active.eq(Cat(*(t < na for t in range(T)))), blk.empty.eq(0),
                         blk.n_t.eq(tiles_to(maxlim, lb))]
            m.d.sync += [blk.lim[t].eq(key_limit(qb + t, off, seq, causal, Mux))
                         for t in range(T)]
            to_qread()
        return plan, lambda: None

    def _read_queries(self, m, u, q_got):
        """In QREAD: request the block's Q rows; return when one is taken (node hook)."""
        m.d.comb += u.q_req.valid.eq(1)
        return q_got

    def _counters(self, m, u):
        """The job's counters (``spec/regmap.py`` COUNTERS), cleared when a job starts."""
        cnt, fmt, sufa = u.csr.counters, self.fmt, u.sufa

        def count(name, cond, amount=1):
            # the increment registered first: a counter runs a cycle behind its event (the
            # job's end waits longer than that), so no event logic shares a cycle with the add
            inc = Signal(len(cnt[name]), name=f"inc_{name.lower()}")
            m.d.sync += inc.eq(Mux(cond, amount, 0))
            with m.If(u.clear):
                m.d.sync += cnt[name].eq(0)
            with m.Else():
                m.d.sync += cnt[name].eq(cnt[name] + inc)

        lists = sufa.lists
        count("CYCLES", u.busy)
        count("PRED_BUSY", u.pred.k.valid & u.pred.k.ready)
        count("PRED_STALL", u.pred.k.valid & ~u.pred.k.ready)
        count("SEL_BUSY", u.sads.i.valid & u.sads.i.ready)
        count("SEL_STALL", u.sads.i.valid & ~u.sads.i.ready)
        count("SUFA_BUSY", 1, sufa.mac_busy)
        count("SUFA_WAIT", 1, sufa.v_wait)
        count("SUFA_STALL", 1, sufa.stalled)
        count("BYTES_READ", u.axi.r_beat, fmt.bus_bytes)
        count("BYTES_WRITTEN", u.axi.w_beat, fmt.bus_bytes)
        count("KV_ROWS", u.vf.asked)
        # the lanes' counts registered before they are summed (the sum, then the add)
        taken = Signal(lists.payload.count.shape(), name="keys_taken")
        m.d.sync += taken.eq(Mux(lists.valid & lists.ready, lists.payload.count, 0))
        count("KEYS_SELECTED", 1, sum(taken[t] for t in range(self.cfg.lanes)))
        count("TILES", u.sads.o.valid & u.sads.o.ready)
        m.d.comb += [cnt["RESCALES"].eq(sufa.rescales), cnt["MERGES"].eq(sufa.merges)]


def ends_latency(cfg) -> int:
    """Cycles of :func:`tensor_ends` from settled job registers to settled ends: the multiplier
    of rows·stride (its operands are registers), then the sum."""
    return mul_latency(32, unsigned_bits(cfg.max_seq) + 1, registered=True) + 1


def check_latency(cfg) -> int:
    """Cycles of :func:`start_check` from settled job registers to its settled error code: the
    tensor ends (:func:`ends_latency`), then the checks, registered."""
    return ends_latency(cfg) + 1


def start_check(m, cfg, job, lengths: dict, causal, dense):
    """Return (error, cycles): a register holding the code of the first failing start check
    (:func:`first_error`) of the sampled job registers ``job`` and tensor ``lengths`` ({name:
    rows}), and its latency :func:`check_latency` from settled registers (static during the
    check)."""
    seq_bits = unsigned_bits(cfg.max_seq)
    ends = {n: Signal(ADDR_BITS + seq_bits + 1, name=f"end_{n.lower()}") for n in lengths}
    tensor_ends(m, cfg, job, lengths, ends)
    error = Signal(range(max(ErrorCode) + 1), name="check_error")
    m.d.sync += error.eq(first_error(cfg, job, ends, causal, dense))
    return error, check_latency(cfg)


def tensor_ends(m, cfg, job, lengths: dict, ends: dict) -> int:
    """Drive ``ends`` ({tensor: Signal}) with the end address + 1 of each tensor in ``lengths``
    ({name: rows}, names among Q, K, V, O; each a register or a slice of one) under the sampled
    job registers ``job``: the ``ends`` of :func:`first_error`. Pipelined: rows·stride in a
    :class:`hw.arith.MulPipe` straight from the registers; beside it row bytes - stride, then
    base + that, one add per register; then their sum (the end of row rows - 1), registered.
    Returns the cycles from settled job registers and lengths (static during the check) to
    settled ``ends``: :func:`ends_latency`."""
    for n, rows in lengths.items():
        prod = m.submodules[f"end_mul_{n.lower()}"] = MulPipe(unsigned(32), rows.shape(),
                                                              registered=True)
        m.d.comb += [prod.en.eq(1), prod.a.eq(job[f"{n}_STRIDE"]), prod.b.eq(rows)]
        back = Signal(signed(ADDR_BITS + 1), name=f"end_back_{n.lower()}")
        off = Signal(signed(ADDR_BITS + 2), name=f"end_off_{n.lower()}")
        m.d.sync += [back.eq(cfg.formats.row_bytes - job[f"{n}_STRIDE"]),
                     off.eq(job[f"{n}_BASE"] + back), ends[n].eq(off + prod.p)]
        assert 2 <= mul_latency(32, len(prod.b), registered=True) <= ends_latency(cfg) - 1
    return ends_latency(cfg)


def first_error(cfg, job, ends, causal, dense):
    """The error code of the first failing start check (0: none), combinational. ``job``: the
    sampled job registers by name; ``ends``: the end address (+ 1) of each tensor (Q, K, V, O).
    """
    fmt = cfg.formats
    RB = fmt.row_bytes
    seq_bits = unsigned_bits(cfg.max_seq)
    seq, qlen = job["SEQ_LEN"][:seq_bits], job["Q_LEN"][:seq_bits]
    lo = RB.bit_length() - 1

    bases = [job[f"{n}_BASE"] for n in "QKVO"]
    strides = [job[f"{n}_STRIDE"] for n in "QKVO"]
    o_lo, o_hi = job["O_BASE"], ends["O"]
    overlap = 0
    for n in "QKV":
        overlap = overlap | ((o_lo < ends[n]) & (job[f"{n}_BASE"] < o_hi))
    checks = [
        (ErrorCode.SEQ_LEN, (job["SEQ_LEN"] == 0) | (job["SEQ_LEN"] > cfg.max_seq)),
        (ErrorCode.Q_LEN, (job["Q_LEN"] == 0) | (job["Q_LEN"] > cfg.max_seq)),
        (ErrorCode.K_TILE, ~dense & ((job["K_TILE"] == 0) | (job["K_TILE"] > cfg.k_tile))),
        (ErrorCode.RADIUS, (job["RADIUS"] != RADIUS_OFF_VALUE)
         & (job["RADIUS"] > fmt.radius_max)),
        (ErrorCode.SCALE, (job["SCALE_MANT"] == 0) | (job["SCALE_MANT"] >> cfg.scale_bits != 0)
         | (job["SCALE_SHIFT"] < cfg.exp_frac_bits) | (job["SCALE_SHIFT"] > SCALE_SHIFT_MAX)),
        (ErrorCode.MODE, job["MODE"] > 3),
        (ErrorCode.CAUSAL_LEN, causal & (qlen > seq)),
        (ErrorCode.ALIGN, Cat(*[x[:lo] != 0 for x in bases + strides if lo],
                              *[x == 0 for x in strides]).any()),
        (ErrorCode.RANGE, Cat(*[e > (1 << ADDR_BITS) for e in ends.values()]).any()),
        (ErrorCode.OVERLAP, overlap),
    ]
    code = 0
    for err, cond in reversed(checks):
        code = Mux(cond, err, code)
    return code
