"""cocotb testbench: the SU-FA engine against golden.sufa, bit-exact, with stalls and extremes.

Drives the engine the way the core does (``hw/sufa.py``'s docstring): per block of ``lanes``
query rows, the rows on ``q`` once ``q_free`` is high; per tile of the block its K rows into the
K store (slot = the tile's sequence number since ``clear`` mod 2, with a free K slot), its lists
on ``lists`` (``first`` / ``final`` flags), then the V rows of the union of the lanes' selections
into the V store (with a free V slot) and one ``v_filled`` pulse. A slot is returned by each
``k_release`` / ``v_release`` cycle; both stores start with two free slots after ``clear``.
Rows within a tile are written in random order, inputs idle at random, ``o`` stalls at random,
and the blocks of a case overlap (the next block's rows and lists go in as soon as allowed).

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "cases": case names, "sk": keys,
"blocks": query blocks of `lanes` rows, "p_idle": input idle probability, "p_stall": output
stall probability, optional "throughput": {"tile": c_t, "block": c_b}}. Cases:
    star          DLZS + SADS selection (k_tile, no radius), causal
    radius        DLZS + SADS with a small radius (few keys per tile), causal
    dense         every key, exact tile max (the FlashAttention-2 baseline), not causal
    dense_causal  dense with a causal mask and tile + lanes·(blocks-1) keys: the first block
                  is a single tile (``first`` and ``final``), later blocks end in a tile some
                  lanes see none of (count 0)
    adversarial   SADS's lists reordered by golden.sads.true_max_last: the true max of every
                  list comes after the predicted top-2 slots (max assurance in every list)
    extreme       most negative / zero / largest integers, a steep score scale (weights
                  underflow)
For each case and block the engine's output rows must equal the model's, lanes 0..T-1 in order,
and its ``rescales`` / ``merges`` counters (read as the block's last row leaves) the model's sums
since ``clear``; every K / V slot must be back when the case's last row leaves.

With "throughput" (no idle, no stalls expected): each block's cycles, from its first lists
transfer (or the previous block's last row out, if later) to its last row out, must be at most
    max over lanes t of  G·(keys_t + first_t)
                         + events_t·(rescale_cycles + accumulate_latency + exp_wait + 1)
    + tiles·(c_t + exp_wait) + score_latency + accumulate_latency + norm_cycles + lanes + c_b
with G = head_dim / sufa_macs, keys_t the lane's keys in the block, first_t those of its first
tile (the score stage must finish a tile before the accumulate stage starts it), events_t its
rescales + merges (each drains the accumulate pipeline, accumulate_latency, then takes
rescale_cycles).
"""

import random

import cocotb
import numpy as np
from amaranth import signed
from amaranth.lib import data
from cocotb.triggers import ClockCycles

from star.golden import pipeline, sads, sufa
from star.golden.intops import int_matmul
from star.hw.layouts import lane_row_layout
from star.hw.sufa import SufaEngine
from star.hw.sufa_lane import (accumulate_latency, exp_wait, norm_cycles, rescale_cycles,
                               score_latency)
from star.hw.tilebuf import SLOTS
from star.sim.payload import pack
from star.sim.runner import env_config, env_seed
from star.sim.streams import StreamSink, run_streams, start_clock_and_reset
from star.spec.config import StarConfig

INF = float("inf")


def make_case(name, fmt, rng, sq, sk):
    """Return (q, k, v int arrays, mant, shift, sel [sq, tiles, n] in visit order, exact_max)."""
    cfg = fmt.cfg
    d = cfg.head_dim
    if name == "extreme":
        lo, hi = fmt.qmin, fmt.qmax
        pick = np.array([lo, hi, 0, 1, -1])
        q = rng.choice(pick, (sq, d))
        q[0], q[1] = lo, 0
        k = rng.choice(pick, (sk, d))
        k[0], k[1] = lo, hi
        v = rng.choice(pick, (sk, d))
        mant, shift = 1 << (fmt.scale_bits - 1), fmt.scale_bits - 1 + 8
        sel = sads.select(rng.integers(0, 100, (sq, sk)), fmt, k_tile=cfg.k_tile, radius=-1,
                          valid=np.ones((sq, sk), bool))
        return q, k, v, mant, shift, sel, False
    causal = name in ("star", "radius", "dense_causal")
    qf, kf, vf = (2.0 * rng.standard_normal((n, d)) for n in (sq, sk, sk))
    h = pipeline.prepare(fmt, qf, kf, vf, causal=causal, softmax_scale=d ** -0.5)
    if name in ("dense", "dense_causal"):
        return h.q, h.k, h.v, h.mant, h.shift, sads.dense_order(h.valid, fmt), True
    if name == "radius":
        radius = int(np.abs(pipeline.predicted_scores(h, fmt, "dlzs")).mean() // 4)
    else:
        radius = -1
    _, sel = pipeline.run(h, fmt, radius=radius)
    if name == "adversarial":
        sel = sads.true_max_last(sel, int_matmul(h.q, h.k.T))
    else:
        assert name == "star" or name == "radius", name
    return h.q, h.k, h.v, h.mant, h.shift, sel, False


def case_keys(name, cfg, blocks, sk):
    """Keys of a case: dense_causal makes block 0 a single tile (see the module docstring)."""
    return cfg.tile + cfg.lanes * (blocks - 1) if name == "dense_causal" else sk


def tiles_of(sel, exact, cfg, sk, blocks, rng):
    """Per tile of the case (blocks in order, each block's tiles 0 .. its last used one):
    {block, n (sequence number since clear), keys (K rows), lists (payload), union (V rows),
    keys_per_lane}. Dense lists carry random junk in ``index`` (the lanes must ignore it)."""
    T, Bc, K = cfg.lanes, cfg.tile, cfg.k_tile
    out = []
    for b in range(blocks):
        s = sel[b * T:(b + 1) * T]
        used = [j for j in range(s.shape[1]) if (s[:, j] >= 0).any()]
        for j in range(used[-1] + 1):
            index, count, union, per_lane = [], [], set(), []
            for t in range(T):
                ks = [int(x) for x in s[t, j] if x >= 0]
                assert all(j * Bc <= x < (j + 1) * Bc for x in ks), (b, j, t, ks)
                union |= set(ks)
                per_lane.append(len(ks))
                junk = [int(x) for x in rng.integers(0, Bc, K)]
                if exact:       # dense: the visible keys, a prefix of the tile in index order
                    assert ks == list(range(j * Bc, j * Bc + len(ks))), (b, j, t, ks)
                    index.append(junk)
                else:
                    assert len(ks) <= K, (b, j, t, ks)
                    index.append([x - j * Bc for x in ks] + junk[len(ks):])
                count.append(len(ks))
            out.append({"block": b, "j": j, "n": len(out),
                        "keys": list(range(j * Bc, min((j + 1) * Bc, sk))),
                        "lists": {"index": index, "count": count, "first": int(j == 0),
                                  "final": int(j == used[-1])},
                        "union": sorted(union), "per_lane": per_lane})
    return out


class Feeder:
    """Q rows, K rows, lists, V rows and v_filled of one case, by the engine's rules (module
    docstring), with random idle cycles; counts the slots the engine returns."""

    def __init__(self, dut, cfg, q, k, v, tiles, blocks, p_idle, rng):
        self.dut, self.cfg, self.rng, self.p_idle = dut, cfg, rng, p_idle
        self.tiles, self.blocks = tiles, blocks
        T = cfg.lanes
        self.q_items = []
        for b in range(blocks):
            lanes = list(range(T))
            rng.shuffle(lanes)
            self.q_items.append([{"lane": t, "row": [int(x) for x in q[b * T + t]]}
                                 for t in lanes])
        self.q_layout = lane_row_layout(cfg)
        self.row_layout = data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)
        self.list_layout = SufaEngine.list_layout(cfg)
        self.cycle = 0
        # Q: block being sent, rows of it sent, q_free seen since the previous block's rows
        self.qb, self.q_sent, self.q_go, self.q_valid = 0, 0, False, 0
        self.q_done = {}                   # block -> cycle of its last Q row
        self.kf = _StoreFeed("keys", dut.k_en, dut.k_addr, dut.k_row, k)
        # lists
        self.ln, self.l_valid = 0, 0
        self.l_time = {}                   # tile -> cycle of its lists transfer
        # V: the union's rows, after the tile's lists; v_filled pulses given
        self.vf = _StoreFeed("union", dut.v_en, dut.v_addr, dut.v_row, v)
        self.fn = 0
        self.idle()

    def idle(self):
        dut = self.dut
        for sig in (dut.q__valid, dut.lists__valid, dut.k_en, dut.v_en, dut.v_filled):
            sig.value = 0

    def _go(self):
        return self.rng.random() >= self.p_idle

    def drive(self):
        dut, c = self.dut, self.cycle
        N = len(self.tiles)
        # Q rows of the next block: once q_free was seen after the previous block's rows
        self.q_valid = int(self.qb < self.blocks and self.q_go and self._go())
        dut.q__valid.value = self.q_valid
        if self.q_valid:
            dut.q__payload.value = pack(self.q_layout, self.q_items[self.qb][self.q_sent])
        # K rows: a tile starts with a free K slot
        self._feed(self.kf, c, True)
        # lists: after the tile's K rows (and, first tile, the block's Q rows); held once valid
        if not self.l_valid and self.ln < N:
            tile = self.tiles[self.ln]
            ok = self.kf.done.get(self.ln, INF) < c
            if tile["lists"]["first"]:
                ok = ok and self.q_done.get(tile["block"], INF) < c
            if ok and self._go():
                self.l_valid = 1
                dut.lists__payload.value = pack(self.list_layout, tile["lists"])
        dut.lists__valid.value = self.l_valid
        # V rows of the union: after the tile's lists, with a free V slot
        self._feed(self.vf, c, self.l_time.get(self.vf.n, INF) < c)
        # v_filled: once per tile, in order, with or after its last V row
        filled = int(self.fn < N and self.vf.done.get(self.fn, INF) <= c and self._go())
        self.fn += filled
        dut.v_filled.value = filled

    def sample(self, cycle):
        dut = self.dut
        assert cycle == self.cycle
        self.cycle += 1
        if self.q_valid:
            # (q is always ready: the stream has no ready port)
            self.q_sent += 1
            if self.q_sent == self.cfg.lanes:
                self.q_done[self.qb] = cycle
                self.qb, self.q_sent, self.q_go = self.qb + 1, 0, False
        if (not self.q_go and self.qb < self.blocks and int(dut.q_free.value)
                and self.q_done.get(self.qb - 1, -1) < cycle):
            self.q_go = True
        if self.l_valid and int(dut.lists__ready.value):
            self.l_time[self.ln] = cycle
            self.ln, self.l_valid = self.ln + 1, 0
        self.kf.free += int(dut.k_release.value)
        self.vf.free += int(dut.v_release.value)
        assert self.kf.free <= SLOTS, f"k_release without a K slot in use (cycle {cycle})"
        assert self.vf.free <= SLOTS, f"v_release without a V slot in use (cycle {cycle})"

    def _feed(self, store, c, ready):
        """One store's writes this cycle: its next tile's rows, once ``ready`` and a slot is
        free, one row per cycle in a random order."""
        en = 0
        if store.n < len(self.tiles) and self._go():
            if store.rows is None and ready and store.free > 0:
                store.free -= 1
                store.rows = list(self.tiles[store.n][store.field])
                self.rng.shuffle(store.rows)
            if store.rows:
                key = store.rows.pop()
                en = 1
                store.addr.value = (self.tiles[store.n]["n"] % SLOTS) * self.cfg.tile \
                    + key % self.cfg.tile
                store.row.value = pack(self.row_layout, [int(x) for x in store.data[key]])
            if store.rows == []:               # started, all rows written (maybe none)
                store.done[store.n] = c
                store.n, store.rows = store.n + 1, None
        store.en.value = en


class _StoreFeed:
    """The feeder's state for one tile store (``data``: the K or V rows): ``field`` of each
    tile names its keys; tile ``n``
    is being written, ``rows`` of it left (None: not started), ``done[tile]`` = the cycle of
    its last row (or of its start if it has none), ``free`` slots."""

    def __init__(self, field, en, addr, row, rows):
        self.field, self.en, self.addr, self.row, self.data = field, en, addr, row, rows
        self.n, self.rows, self.done, self.free = 0, None, {}, SLOTS


class OutSink(StreamSink):
    """The o stream; at each block's last row (lane T-1) it also records the counters."""

    def __init__(self, dut, cfg, **kw):
        super().__init__(dut, "o", lane_row_layout(cfg), **kw)
        self.dut, self.T = dut, cfg.lanes
        self.counters = []

    def sample(self, cycle):
        n = len(self.received)
        super().sample(cycle)
        if len(self.received) > n and self.received[-1]["lane"] == self.T - 1:
            self.counters.append((int(self.dut.rescales.value), int(self.dut.merges.value)))


def block_bound(cfg, fmt, tiles, want, consts):
    """The throughput bound of one block (module docstring) and its lane terms."""
    G, T = fmt.sufa_chunks, cfg.lanes
    keys = [sum(t["per_lane"][i] for t in tiles) for i in range(T)]
    first = tiles[0]["per_lane"]
    events = [int(want.rescales[i] + want.merges[i]) for i in range(T)]
    lane = [G * (keys[i] + first[i])
            + events[i] * (rescale_cycles(cfg) + accumulate_latency(cfg) + exp_wait(cfg) + 1)
            for i in range(T)]
    fixed = (len(tiles) * (consts["tile"] + exp_wait(cfg)) + score_latency(cfg) + accumulate_latency(cfg)
             + norm_cycles(cfg) + T
             + consts["block"])
    return max(lane) + fixed, keys, events


@cocotb.test()
async def sufa_matches_golden(dut):
    opts = env_config()
    cfg = StarConfig(**opts["cfg"])
    fmt = cfg.formats
    seed = env_seed()
    dut._log.info(f"seed {seed}: lanes {cfg.lanes}, head_dim {cfg.head_dim}, sufa_macs "
                  f"{cfg.sufa_macs} (G {fmt.sufa_chunks}, ports {fmt.sufa_ports}), tile "
                  f"{cfg.tile}, k_tile {cfg.k_tile}, data_bits {cfg.data_bits}")
    rng = np.random.default_rng(seed)
    T, G, blocks = cfg.lanes, fmt.sufa_chunks, opts["blocks"]
    thr = opts.get("throughput")
    await start_clock_and_reset(dut)
    dut.clear.value = 0
    sink = OutSink(dut, cfg, p_stall=opts["p_stall"], rng=random.Random(seed + 1))
    for n_case, name in enumerate(opts["cases"]):
        sk = case_keys(name, cfg, blocks, opts["sk"])
        q, k, v, mant, shift, sel, exact = make_case(name, fmt, rng, T * blocks, sk)
        tiles = tiles_of(sel, exact, cfg, sk, blocks, rng)
        want = [sufa.attend(q[b * T:(b + 1) * T], k, v, sel[b * T:(b + 1) * T], mant, shift, fmt,
                            exact_max=exact) for b in range(blocks)]
        feeder = Feeder(dut, cfg, q, k, v, tiles, blocks, opts["p_idle"],
                        np.random.default_rng([seed, n_case]))
        dut.mant.value, dut.shift.value, dut.exact_max.value = mant, shift, int(exact)
        dut.clear.value = 1
        await ClockCycles(dut.clk, 2)
        dut.clear.value = 0
        sink.received.clear()
        sink.times.clear()
        sink.counters.clear()
        keys = sum(sum(t["per_lane"]) for t in tiles)
        limit = 5000 + 20 * (len(tiles) * (cfg.tile * G + cfg.tile + 30 + 2 * (
            rescale_cycles(cfg) + accumulate_latency(cfg))) + blocks * (norm_cycles(cfg) + T + 50))
        cycles = await run_streams(dut, [feeder], [sink], lambda: len(sink.received) == T * blocks,
                                   limit)
        feeder.idle()
        assert (feeder.kf.free, feeder.vf.free) == (SLOTS, SLOTS), \
            f"case {name}: K/V slots not all returned at the end ({feeder.kf.free}, {feeder.vf.free})"
        resc = merg = 0
        for b in range(blocks):
            got = sink.received[b * T:(b + 1) * T]
            assert [g["lane"] for g in got] == list(range(T)), \
                f"case {name} block {b}: lanes out {[g['lane'] for g in got]} (seed {seed})"
            errors = [(t, e) for t in range(T) for e in range(cfg.head_dim)
                      if got[t]["row"][e] != want[b].out[t, e]]
            for t, e in errors[:8]:
                dut._log.error(f"case {name} block {b} lane {t} elem {e}: expected "
                               f"{want[b].out[t, e]}, got {got[t]['row'][e]}")
            assert not errors, f"{len(errors)} mismatches in case {name} block {b} (seed {seed})"
            resc += int(want[b].rescales.sum())
            merg += int(want[b].merges.sum())
            assert sink.counters[b] == (resc, merg), \
                f"case {name} block {b}: counters (rescales, merges) {sink.counters[b]} != " \
                f"model {(resc, merg)} (seed {seed})"
            btiles = [t for t in tiles if t["block"] == b]
            start = feeder.l_time[btiles[0]["n"]]
            if b:
                start = max(start, sink.times[b * T - 1])
            span = sink.times[(b + 1) * T - 1] - start
            msg = (f"case {name} block {b}: {len(btiles)} tiles, keys per lane "
                   f"{[sum(t['per_lane'][i] for t in btiles) for i in range(T)]}, rescales "
                   f"{want[b].rescales.tolist()}, merges {want[b].merges.tolist()}: {span} cycles")
            if thr is not None:
                bound, _, _ = block_bound(cfg, fmt, btiles, want[b], thr)
                msg += f" (bound {bound}, slack {bound - span})"
                assert span <= bound, f"{msg}: over the throughput bound (seed {seed})"
            dut._log.info(msg)
        dut._log.info(f"case {name}: {len(tiles)} tiles, {keys} lane-keys, {cycles} cycles, "
                      f"bit-exact, counters {(resc, merg)} match")
