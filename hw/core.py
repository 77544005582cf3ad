"""The STAR core: cross-stage tiled DLZS -> SADS -> SU-FA pipeline behind AXI4 / AXI4-Lite.

Model: :mod:`golden.core` (bit-exact O and counters). User documentation: ``docs/core.md``.

Structure (one attention head per job, query blocks of T = ``lanes`` rows, key tiles of
Bc = ``tile`` keys):

* controller: samples and checks the job registers (``hw/regmap.py`` error codes), then per query
  block reads the block's Q rows (to the predictor and SU-FA lane registers) and, after the last
  tile, writes the active lanes' O rows;
* front (tiling, cross-stage): reads the K rows of tile j into a free slot of SU-FA's two-tile K
  store and streams them through the DLZS predictor into SADS, with the per-lane validity (causal
  limit, ragged sequence, idle lanes of a partial block) computed from the key index. The front
  runs ahead of the lanes by up to two tiles (the store's slots);
* lists: SADS's per-lane lists (dense mode: each lane's count of visible keys) go to SU-FA, their
  union to the V fetch, which reads those V rows once each into SU-FA's V tile store;
* SU-FA (``hw/sufa.py``): every lane walks its own list (``hw/sufa_lane.py``); K and V tile
  stores of two tiles (``hw/tilebuf.py``) are refilled as the lanes release them (tile-slot
  credits); ``hw/axi.py`` moves rows; ``hw/csr.py`` holds the registers.

Throughput: per tile, the K rows (one per ``row_beats`` bus cycles) and the union's V rows
share the AXI read channel; the predictor and SADS take one key per cycle; each SU-FA lane takes
head_dim / sufa_macs cycles per key of its own list. The core is bound by the largest of: memory
beats, keys predicted, and the busiest lane's keys × head_dim / sufa_macs (per block). Blocks
overlap: the next block's Q rows are read once every lane has started the current block, while
SU-FA finishes it and its O rows are written. Latency and backpressure of each unit: see its
docstring.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from gen.config import ConfigError
from gen.formats import Formats, unsigned_bits

from .axi import AxiRowMaster, axi4_master_members, axil_slave_members, forward
from .csr import CsrBlock
from .dlzs import DlzsPredictor
from .layouts import lane_row_layout
from .merge import partial_layout
from .regmap import ADDR_BITS, COUNTERS, JOB_NAMES, RADIUS_OFF_VALUE, ErrorCode
from .sads import SadsSelector
from .shared import add_lane
from .sufa import SufaEngine

__all__ = ["StarCore", "first_error", "tensor_ends"]


def onehot(value, n: int):
    """An n-bit vector with bit ``value`` set."""
    return Cat(*(value == i for i in range(n)))

DEST_Q, DEST_K, DEST_V = 0, 1, 2


class StarCore(wiring.Component):
    """The STAR core; ``spatial``: a node core of the Spatial-STAR array (``hw/spatial.py``).

    A node core has no register block: the array drives its job registers and ``start`` and
    reads ``counters``; ``done`` pulses when its part of the job is over, ``error`` on an AXI
    error response (the array checks the registers before starting its cores). It owns keys
    [key_lo, key_lo + key_cnt) of the sequence, stored from K_BASE / V_BASE of its own memory
    channel (local row i = key key_lo + i). Query rows come from memory (``root``) or from
    ``q_in`` (in order, lanes 0..n-1 of each block); with ``forward`` every row the core takes is
    passed on at ``q_out`` (the core waits for q_out.ready). Instead of O rows it sends its
    partial state per query row at ``part`` (rows past Q_LEN are not sent), and the root writes
    the array's final O rows that arrive at ``o_in`` (in query order) to O_BASE.
    A block whose keys all lie before key_lo (causal) or whose lanes see no key of the shard
    still gives SU-FA one beat without a selected key (it reads the V row of local key 0), so
    its partials (has = 0) go out in order.
    """

    def __init__(self, cfg, spatial: bool = False):
        if cfg.pred_keys != 1:
            raise ConfigError(f"pred_keys must be 1 for star_core (K rows arrive at most one "
                              f"per cycle), not {cfg.pred_keys}")
        self.cfg = cfg
        self.spatial = spatial
        self.fmt = Formats(cfg)
        self.axi_members = axi4_master_members("m_axi", cfg.axi_data_bits)
        if spatial:
            rows = stream.Signature(lane_row_layout(cfg))
            members = {
                "start": In(1), "done": Out(1), "error": Out(1),
                "job": In(data.StructLayout({n: 32 for n in JOB_NAMES})),
                "key_lo": In(unsigned_bits(cfg.max_seq)), "key_cnt": In(unsigned_bits(cfg.max_seq)),
                "root": In(1), "forward": In(1),
                "q_in": In(rows), "q_out": Out(rows),
                "part": Out(stream.Signature(partial_layout(cfg))),
                "o_in": In(stream.Signature(data.StructLayout({"row": lane_row_layout(cfg)["row"].shape}))),
                "counters": Out(data.StructLayout({n: 32 for n, _ in COUNTERS})),
            }
            super().__init__({**self.axi_members, **members})
        else:
            self.axil_members = axil_slave_members("s_axil")
            super().__init__({**self.axi_members, **self.axil_members, "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        T, Bc = cfg.lanes, cfg.tile
        lb = Bc.bit_length() - 1
        seq_bits = unsigned_bits(cfg.max_seq)
        key_bits = unsigned_bits(cfg.max_seq + Bc)
        lim_bits = key_bits + 1

        spatial = self.spatial
        if spatial:
            csr = SimpleNamespace(
                values={n: self.job[n] for n in JOB_NAMES},
                counters={n: Signal(32, name=f"cnt_{n.lower()}") for n, _ in COUNTERS},
                start=self.start, busy=Signal(), done_set=self.done, error_set=Signal(),
                error_code=Signal(range(max(ErrorCode) + 1)), clear_status=Signal())
            m.d.comb += self.error.eq(csr.error_set & (csr.error_code == ErrorCode.BUS))
            m.d.comb += [self.counters[n].eq(c) for n, c in csr.counters.items()]
        else:
            m.submodules.csr = csr = CsrBlock(cfg)
            csr.connect(m, self)

        idx_bits = max(unsigned_bits(max(T - 1, 1)), lb + 1)
        tag_layout = data.StructLayout({"dest": 2, "idx": idx_bits, "last": 1})
        m.submodules.axi = axi = AxiRowMaster(cfg, tag_layout.size)
        forward(m, self, axi, self.axi_members)
        m.submodules.pred = pred = DlzsPredictor(cfg)
        m.submodules.sads = sads = SadsSelector(cfg)
        m.submodules.sufa = sufa = SufaEngine(cfg, partial=spatial)

        # ---- job registers, sampled at START ------------------------------------------------
        v = csr.values
        job = {n: Signal(32, name=f"job_{n.lower()}") for n in JOB_NAMES}
        seq = job["SEQ_LEN"][:seq_bits]
        qlen = job["Q_LEN"][:seq_bits]
        # the keys this core owns: [key_lo, key_lo + kseq) (a single core: all of them)
        if spatial:
            key_lo, kseq = Signal(seq_bits), Signal(seq_bits)
        else:
            key_lo, kseq = 0, seq
        causal, dense = job["MODE"][0], job["MODE"][1]
        m.d.comb += [
            sads.k.eq(job["K_TILE"]),
            sads.radius.eq(Mux(job["RADIUS"] == RADIUS_OFF_VALUE, fmt.radius_off, job["RADIUS"])),
            sufa.mant.eq(job["SCALE_MANT"]), sufa.shift.eq(job["SCALE_SHIFT"]),
            sufa.exact_max.eq(dense),
        ]

        # ---- counters ------------------------------------------------------------------------
        cnt = csr.counters
        clear = Signal()           # a job starts: counters to zero
        m.d.comb += sufa.clear.eq(clear)

        def count(name, cond, amount=1):
            with m.If(clear):
                m.d.sync += cnt[name].eq(0)
            with m.Elif(cond):
                m.d.sync += cnt[name].eq(cnt[name] + amount)

        # ---- read requests: V (scheduler) before K (front) before Q (controller) --------------
        req = {dest: (Signal(name=f"req{dest}_valid"), Signal(ADDR_BITS, name=f"req{dest}_addr"),
                      Signal(tag_layout, name=f"req{dest}_tag"))
               for dest in (DEST_Q, DEST_K, DEST_V)}
        # a request presented and not yet taken keeps the channel (AXI: AR stays stable)
        grant = {dest: Signal(name=f"grant{dest}") for dest in req}
        sel = Signal(2)
        held, held_dest = Signal(), Signal(2)
        for dest in (DEST_Q, DEST_K, DEST_V):        # the last assignment wins: V first
            with m.If(req[dest][0]):
                m.d.comb += sel.eq(dest)
        with m.If(held):
            m.d.comb += sel.eq(held_dest)
        for dest, (valid, addr, tag) in req.items():
            m.d.comb += tag.dest.eq(dest)
            with m.If(sel == dest):
                m.d.comb += [axi.rd_req.valid.eq(valid), axi.rd_req.payload.addr.eq(addr),
                             axi.rd_req.payload.tag.eq(tag),
                             grant[dest].eq(valid & axi.rd_req.ready)]
        m.d.sync += [held.eq(axi.rd_req.valid & ~axi.rd_req.ready), held_dest.eq(sel)]

        # ---- read responses: Q rows to the predictor and the lanes, K rows to the predictor and
        # the K store, V rows to the V store ------------------------------------------------------
        resp = axi.rd_resp
        rtag = data.View(tag_layout, resp.payload.tag)
        is_q = resp.valid & (rtag.dest == DEST_Q)
        is_k = resp.valid & (rtag.dest == DEST_K)
        is_v = resp.valid & (rtag.dest == DEST_V)
        q_ok = 1                                          # the Q row may be taken
        q_take = is_q                                     # a Q row goes to the lanes
        q_row = Signal(lane_row_layout(cfg))
        m.d.comb += [q_row.lane.eq(rtag.idx), Value.cast(q_row.row).eq(resp.payload.row)]
        if spatial:
            # a Q row from memory (root) or the network, passed on at q_out with forward
            q_wait = Signal()                             # a non-root core waits for rows
            q_ok = ~self.forward | self.q_out.ready
            with m.If(~self.root):
                m.d.comb += [q_row.eq(self.q_in.payload), self.q_in.ready.eq(q_wait & q_ok)]
            q_take = Mux(self.root, is_q, self.q_in.valid & q_wait) & q_ok
            m.d.comb += [self.q_out.valid.eq(self.forward & Mux(self.root, is_q,
                                                                self.q_in.valid & q_wait)),
                         self.q_out.payload.eq(q_row)]
        for port in (pred.q, sufa.q):
            m.d.comb += [port.valid.eq(q_take), port.payload.eq(q_row)]
        m.d.comb += [
            pred.k.valid.eq(is_k),
            Value.cast(pred.k.payload.keys).eq(resp.payload.row),
            pred.k.payload.last.eq(rtag.last),
            sufa.k_en.eq(is_k & pred.k.ready), sufa.k_addr.eq(rtag.idx),
            sufa.k_row.eq(resp.payload.row),
            sufa.v_en.eq(is_v), sufa.v_addr.eq(rtag.idx), sufa.v_row.eq(resp.payload.row),
            resp.ready.eq(Mux(rtag.dest == DEST_K, pred.k.ready,
                              Mux(rtag.dest == DEST_V, 1, q_ok))),
        ]

        # ---- block state -----------------------------------------------------------------------
        qb = Signal(seq_bits, name="qb")                  # first query row of the block
        n_act = Signal(range(T + 1))                      # active lanes of the block
        lim = [Signal(lim_bits, name=f"lim_l{t}") for t in range(T)]   # last visible key
        active = Signal(T)
        n_t = Signal(key_bits - lb + 1)                   # tiles of the block
        off = Signal(seq_bits)
        m.d.comb += off.eq(seq - qlen)

        # ---- tile slots: K and V stores hold two tiles each; a tile takes a slot (a credit)
        # and the engine returns it when every lane is done with the tile --------------------
        k_cred, v_cred = Signal(range(3)), Signal(range(3))
        k_take, v_take = Signal(), Signal()
        k_slot, v_slot = Signal(), Signal()
        with m.If(clear):
            m.d.sync += [k_cred.eq(2), v_cred.eq(2), k_slot.eq(0), v_slot.eq(0)]
        with m.Else():
            m.d.sync += [k_cred.eq(k_cred - k_take + sufa.k_release),
                         v_cred.eq(v_cred - v_take + sufa.v_release)]

        # ---- front: K rows -> K store and predictor -> SADS -------------------------------------
        f_key = Signal(key_bits)
        f_addr = Signal(ADDR_BITS)
        f_tile = f_key[lb:]
        run = Signal()
        f_last = Signal()
        m.d.comb += f_last.eq((f_key == kseq - 1) | (f_key[:lb] == Bc - 1))
        kv, ka, kt = req[DEST_K]
        empty = Signal()            # node core: the block sees no key of this shard
        first_row = f_key[:lb] == 0
        m.d.comb += [kv.eq(run & ~empty & (f_tile < n_t) & (~first_row | (k_cred != 0))),
                     ka.eq(f_addr), kt.idx.eq(Cat(f_key[:lb], k_slot)), kt.last.eq(f_last)]
        with m.If(grant[DEST_K]):
            m.d.sync += f_addr.eq(f_addr + job["K_STRIDE"])
            m.d.sync += f_key.eq(Mux(f_last, (f_tile + 1) << lb, f_key + 1))
            m.d.comb += k_take.eq(first_row)
            with m.If(f_last):
                m.d.sync += k_slot.eq(~k_slot)

        # predictor output -> SADS with the per-lane validity of each key
        p_key = Signal(key_bits)
        m.d.comb += [sads.i.valid.eq(pred.a.valid), pred.a.ready.eq(sads.i.ready),
                     sads.i.payload.last.eq(pred.a.payload.last)]
        m.d.comb += [sads.i.payload.score[t][0].eq(pred.a.payload.score[t][0]) for t in range(T)]
        m.d.comb += [sads.i.payload.valid[t][0].eq(active[t] & (p_key <= lim[t]))
                     for t in range(T)]
        with m.If(sads.i.valid & sads.i.ready):
            m.d.sync += p_key.eq(Mux(sads.i.payload.last, (p_key[lb:] + 1) << lb, p_key + 1))

        # ---- lists: SADS's (dense: each lane's visible keys) -> SU-FA; their union -> V fetch ---
        l_tile = Signal(key_bits - lb + 1)                # lists given in this block
        l_base = Signal(key_bits)
        m.d.comb += l_base.eq(l_tile << lb)
        lst = sads.o.payload
        lists = [LaneList(cfg, key_bits, lim_bits) for _ in range(T)]
        union = 0
        for t, ll in enumerate(lists):
            add_lane(m, f"mask{t}", ll, "mask", (cfg, key_bits, lim_bits))
            m.d.comb += [ll.index.eq(lst.index[t]), ll.count.eq(lst.count[t]),
                         ll.active.eq(active[t]), ll.lim.eq(lim[t]), ll.base.eq(l_base),
                         ll.dense.eq(dense), sufa.lists.payload.index[t].eq(lst.index[t]),
                         sufa.lists.payload.count[t].eq(Mux(empty, 0, ll.count_out))]
            union = union | ll.mask
        vq_layout = data.StructLayout({"mask": Bc, "base": key_bits})
        m.submodules.vq = vq = SyncFIFOBuffered(width=vq_layout.size, depth=3)
        vq_in = Signal(vq_layout)
        # an empty block (node core) gives the lanes one empty tile, with a K slot of its own
        l_valid = Mux(empty, (l_tile == 0) & (k_cred != 0), sads.o.valid)
        m.d.comb += [
            sufa.lists.valid.eq(run & l_valid & vq.w_rdy),
            sufa.lists.payload.first.eq(l_tile == 0),
            sufa.lists.payload.final.eq(l_tile == n_t - 1),
            vq_in.mask.eq(Mux(empty, 0, union)), vq_in.base.eq(l_base),
            vq.w_data.eq(vq_in), vq.w_en.eq(sufa.lists.valid & sufa.lists.ready),
        ]
        l_fire = sufa.lists.valid & sufa.lists.ready
        with m.If(l_fire):
            m.d.comb += sads.o.ready.eq(~empty)
            m.d.sync += l_tile.eq(l_tile + 1)
            with m.If(empty):
                m.d.comb += k_take.eq(1)
                m.d.sync += k_slot.eq(~k_slot)

        # V fetch: per tile (in order, with a V slot) the union's rows in ascending key order
        w_mask, w_base, w_busy = Signal(Bc), Signal(key_bits), Signal()
        v_out = Signal(key_bits + 2)          # V rows requested and not yet arrived
        vq_out = data.View(vq_layout, vq.r_data)
        low = Signal(range(Bc))
        for i in reversed(range(Bc)):
            with m.If(w_mask[i]):
                m.d.comb += low.eq(i)
        vreq_layout = data.StructLayout({"key": key_bits, "slot": 1, "last": 1})
        m.submodules.vreq = vreq = SyncFIFOBuffered(width=vreq_layout.size, depth=Bc)
        vreq_in = Signal(vreq_layout)
        rest = Signal(Bc)
        m.d.comb += [rest.eq(w_mask & ~onehot(low, Bc)), vreq.w_data.eq(vreq_in),
                     vreq_in.key.eq(w_base + low), vreq_in.slot.eq(v_slot),
                     vreq_in.last.eq(rest == 0)]
        with m.If(~w_busy & vq.r_rdy & (v_cred != 0)):
            m.d.comb += [vq.r_en.eq(1), v_take.eq(1)]
            m.d.sync += [w_mask.eq(vq_out.mask), w_base.eq(vq_out.base), w_busy.eq(1)]
        with m.If(w_busy & (w_mask != 0) & vreq.w_rdy):
            m.d.comb += vreq.w_en.eq(1)
            m.d.sync += w_mask.eq(rest)
            with m.If(rest == 0):
                m.d.sync += [w_busy.eq(0), v_slot.eq(~v_slot)]
        v_last = is_v & rtag.last
        with m.If(w_busy & (w_mask == 0) & (v_out == 0)):
            # an empty union: the tile is filled once the rows asked before it are in
            m.d.comb += sufa.v_filled.eq(1)
            m.d.sync += [w_busy.eq(0), v_slot.eq(~v_slot)]
        with m.Else():
            m.d.comb += sufa.v_filled.eq(v_last)
        m.d.sync += v_out.eq(v_out + vreq.w_en - is_v)

        # V requests: key -> address (one multiplier, registered) -> read request
        vv, va, vt = req[DEST_V]
        take_v = Signal()
        vreq_out = data.View(vreq_layout, vreq.r_data)
        m.d.comb += [take_v.eq(~vv | grant[DEST_V]), vreq.r_en.eq(take_v)]
        with m.If(take_v):
            m.d.sync += [vv.eq(vreq.r_rdy),
                         va.eq(job["V_BASE"] + vreq_out.key * job["V_STRIDE"]),
                         vt.idx.eq(Cat(vreq_out.key[:lb], vreq_out.slot)),
                         vt.last.eq(vreq_out.last)]

        # ---- controller -------------------------------------------------------------------------
        q_lane = Signal(range(T + 1))
        q_addr = Signal(ADDR_BITS)
        o_addr = Signal(ADDR_BITS)
        qv, qa, qt = req[DEST_Q]
        m.d.comb += [qa.eq(q_addr), qt.idx.eq(q_lane)]
        ends = {n: Signal(ADDR_BITS + seq_bits + 1, name=f"end_{n.lower()}") for n in "QKVO"}
        error = Signal(range(max(ErrorCode) + 1))
        # writer: SU-FA gives every block's T rows in order; rows past Q_LEN are dropped. It
        # runs beside the next block's reads (blocks overlap).
        busy = Signal()
        o_row = Signal(seq_bits + 1)                      # query row of the next output row
        blocks_in, blocks_out = Signal(seq_bits), Signal(seq_bits)
        o_fire = sufa.o.valid & sufa.o.ready
        if spatial:
            # partials to the network; the root writes the array's O rows from o_in
            o_done = Signal(seq_bits + 1)                 # O rows written (root)
            m.d.comb += [
                self.part.valid.eq(busy & sufa.o.valid & (o_row < qlen)),
                self.part.payload.eq(sufa.o.payload.part),
                sufa.o.ready.eq(busy & ((o_row >= qlen) | self.part.ready)),
                axi.wr_req.valid.eq(busy & self.o_in.valid),
                axi.wr_req.payload.addr.eq(o_addr),
                axi.wr_req.payload.row.eq(Value.cast(self.o_in.payload.row)),
                self.o_in.ready.eq(busy & axi.wr_req.ready),
            ]
            with m.If(o_fire):
                m.d.sync += o_row.eq(o_row + 1)
            with m.If(self.o_in.valid & self.o_in.ready):
                m.d.sync += [o_addr.eq(o_addr + job["O_STRIDE"]), o_done.eq(o_done + 1)]
        else:
            m.d.comb += [
                axi.wr_req.valid.eq(busy & sufa.o.valid & (o_row < qlen)),
                axi.wr_req.payload.addr.eq(o_addr),
                axi.wr_req.payload.row.eq(Value.cast(sufa.o.payload.row)),
                sufa.o.ready.eq(busy & ((o_row >= qlen) | axi.wr_req.ready)),
            ]
            with m.If(o_fire):
                m.d.sync += [o_addr.eq(o_addr + job["O_STRIDE"]), o_row.eq(o_row + 1)]
        with m.If(o_fire & (sufa.o.payload.lane == T - 1)):
            m.d.sync += blocks_out.eq(blocks_out + 1)

        m.d.comb += csr.busy.eq(busy)
        with m.If(csr.start & busy):
            m.d.comb += [csr.error_set.eq(1), csr.error_code.eq(ErrorCode.START_BUSY)]

        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(csr.start):
                    m.d.sync += [job[n].eq(v[n]) for n in JOB_NAMES]
                    if spatial:
                        m.d.sync += [key_lo.eq(self.key_lo), kseq.eq(self.key_cnt)]
                    m.d.comb += [clear.eq(1), csr.clear_status.eq(1)]
                    m.next = "CHECK_ENDS"
            with m.State("CHECK_ENDS"):
                m.d.comb += busy.eq(1)
                if not spatial:      # the array checks the job before it starts its cores
                    m.d.sync += [ends[n].eq(e) for n, e in tensor_ends(
                        cfg, job, {"Q": qlen, "K": seq, "V": seq, "O": qlen}).items()]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += busy.eq(1)
                if not spatial:      # the array checks the job before it starts its cores
                    m.d.comb += error.eq(first_error(cfg, job, ends, causal, dense))
                with m.If(error != 0):
                    m.d.comb += [csr.error_set.eq(1), csr.error_code.eq(error),
                                 csr.done_set.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [qb.eq(0), q_addr.eq(job["Q_BASE"]), o_addr.eq(job["O_BASE"]),
                                 o_row.eq(0), blocks_in.eq(0), blocks_out.eq(0)]
                    if spatial:
                        m.d.sync += o_done.eq(0)
                    m.next = "BLOCK"
            with m.State("BLOCK"):
                m.d.comb += busy.eq(1)
                rest = Signal(seq_bits + 1)
                m.d.comb += rest.eq(qlen - qb)
                na = Mux(rest >= T, T, rest)
                m.d.sync += [n_act.eq(na), q_lane.eq(0), f_key.eq(0), f_addr.eq(job["K_BASE"]),
                             l_tile.eq(0), p_key.eq(0), blocks_in.eq(blocks_in + 1)]
                # last visible key of each lane and of the block (global key index)
                glim = [Mux(causal, qb + t + off, seq - 1) for t in range(T)]
                maxlim = Mux(causal, qb + na - 1 + off, seq - 1)
                if spatial:
                    # in local keys of the shard; a lane (block) before key_lo sees nothing
                    def local(x):
                        return Mux(x - key_lo >= kseq, kseq - 1, x - key_lo)
                    m.d.sync += active.eq(Cat(*((t < na) & (glim[t] >= key_lo)
                                                for t in range(T))))
                    m.d.sync += [lim[t].eq(local(glim[t])) for t in range(T)]
                    m.d.sync += [empty.eq(maxlim < key_lo),
                                 n_t.eq(Mux(maxlim < key_lo, 1, (local(maxlim) >> lb) + 1))]
                else:
                    m.d.sync += active.eq(Cat(*(t < na for t in range(T))))
                    m.d.sync += [lim[t].eq(glim[t]) for t in range(T)]
                    m.d.sync += n_t.eq((maxlim >> lb) + 1)
                m.next = "QWAIT"
            with m.State("QWAIT"):
                # every lane has started the previous block: its next-query register is free
                m.d.comb += busy.eq(1)
                with m.If(sufa.q_free):
                    m.next = "QREAD"
            with m.State("QREAD"):
                m.d.comb += busy.eq(1)
                if spatial:
                    # a non-root core counts the rows it takes from the network
                    m.d.comb += [qv.eq(self.root), q_wait.eq(~self.root)]
                    got = Mux(self.root, grant[DEST_Q], q_take)
                else:
                    m.d.comb += qv.eq(1)
                    got = grant[DEST_Q]
                with m.If(got):
                    m.d.sync += [q_lane.eq(q_lane + 1), q_addr.eq(q_addr + job["Q_STRIDE"])]
                    with m.If(q_lane == n_act - 1):
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [busy.eq(1), run.eq(1)]
                with m.If(l_tile == n_t):
                    # every list of the block is given: the predictor may take the next
                    # block's queries
                    m.d.sync += qb.eq(qb + T)
                    with m.If(qb + T >= qlen):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "BLOCK"
            with m.State("FINISH"):
                m.d.comb += busy.eq(1)
                all_out = blocks_out == blocks_in
                if spatial:
                    all_out &= ~self.root | (o_done == qlen)
                with m.If(axi.wr_idle & all_out):
                    m.d.comb += csr.done_set.eq(1)
                    m.next = "IDLE"

        with m.If(axi.bus_error & busy):
            m.d.comb += [csr.error_set.eq(1), csr.error_code.eq(ErrorCode.BUS)]

        # ---- counters ----------------------------------------------------------------------------
        count("CYCLES", busy)
        count("PRED_BUSY", pred.k.valid & pred.k.ready)
        count("PRED_STALL", pred.k.valid & ~pred.k.ready)
        count("SEL_BUSY", sads.i.valid & sads.i.ready)
        count("SEL_STALL", sads.i.valid & ~sads.i.ready)
        count("SUFA_BUSY", 1, sufa.mac_busy)
        count("SUFA_WAIT", 1, sufa.v_wait)
        count("SUFA_STALL", 1, sufa.stalled)
        count("BYTES_READ", axi.r_beat, fmt.bus_bytes)
        count("BYTES_WRITTEN", axi.w_beat, fmt.bus_bytes)
        count("KV_ROWS", vreq.w_en)
        count("KEYS_SELECTED", l_fire, sum(sufa.lists.payload.count[t] for t in range(T)))
        count("TILES", sads.o.valid & sads.o.ready)
        m.d.comb += [cnt["RESCALES"].eq(sufa.rescales), cnt["MERGES"].eq(sufa.merges)]
        return m

def tensor_ends(cfg, job, lengths: dict) -> dict:
    """{tensor: end address + 1} of each tensor in ``lengths`` ({name: rows}, names among Q, K,
    V, O) under the sampled job registers ``job``: the ``ends`` of :func:`first_error`."""
    return {n: job[f"{n}_BASE"] + (rows - 1) * job[f"{n}_STRIDE"] + Formats(cfg).row_bytes
            for n, rows in lengths.items()}


def first_error(cfg, job, ends, causal, dense):
    """The error code of the first failing start check (0: none), combinational. ``job``: the
    sampled job registers by name; ``ends``: the end address (+ 1) of each tensor (Q, K, V, O).
    """
    fmt = Formats(cfg)
    RB = fmt.row_bytes
    seq_bits = unsigned_bits(cfg.max_seq)
    seq, qlen = job["SEQ_LEN"][:seq_bits], job["Q_LEN"][:seq_bits]
    lo = RB.bit_length() - 1

    def aligned(x):
        return x[:lo] == 0 if lo else 1

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
         | (job["SCALE_SHIFT"] < cfg.exp_frac_bits) | (job["SCALE_SHIFT"] > 63)),
        (ErrorCode.MODE, job["MODE"] > 3),
        (ErrorCode.CAUSAL_LEN, causal & (qlen > seq)),
        (ErrorCode.ALIGN, sum(~aligned(x) for x in bases + strides)
         + sum(x == 0 for x in strides) != 0),
        (ErrorCode.RANGE, sum(e > (1 << ADDR_BITS) for e in ends.values()) != 0),
        (ErrorCode.OVERLAP, overlap),
    ]
    code = 0
    for err, cond in reversed(checks):
        code = Mux(cond, err, code)
    return code


class LaneList(wiring.Component):
    """One query lane's list of a tile for SU-FA: ``count_out`` (SADS's count, or in dense mode
    the number of visible keys: keys base .. lim of the tile, none in an idle lane) and ``mask``
    (the keys it computes, for the union the V fetch reads). Combinational. Every lane is the
    same module, so synthesis can map one and instance it.
    """

    def __init__(self, cfg, key_bits: int, lim_bits: int):
        self.cfg = cfg
        Bc, K = cfg.tile, cfg.k_tile
        super().__init__({
            "active": In(1), "dense": In(1),
            "index": In(data.ArrayLayout(unsigned_bits(Bc - 1), K)),
            "count": In(unsigned_bits(K)), "lim": In(lim_bits), "base": In(key_bits),
            "count_out": Out(unsigned_bits(Bc)), "mask": Out(Bc)})

    def elaborate(self, platform):
        m = Module()
        Bc = self.cfg.tile
        sel = 0
        for j in range(self.cfg.k_tile):
            sel = sel | Mux(j < self.count, onehot(self.index[j], Bc), 0)
        visible = Signal(unsigned_bits(Bc))
        span = self.lim - self.base + 1
        m.d.comb += visible.eq(Mux(~self.active | (self.lim < self.base), 0,
                                   Mux(span >= Bc, Bc, span)))
        m.d.comb += [self.count_out.eq(Mux(self.dense, visible, self.count)),
                     self.mask.eq(Mux(self.dense, Cat(*(i < visible for i in range(Bc))), sel))]
        return m
