"""Cycle and traffic model of the STAR core (``hw/core.py``): no simulation, calibrated to the RTL.

Given a config and a job's work per query block (``golden.core.block_schedule`` +
``add_events``: per tile the union of the lanes' selected keys, each lane's key count and its
SU-FA rescale events) it returns the job's cycles, each resource's busy cycles, the bytes read
and written, and the on-chip buffers. tests/test_cycle_model.py compares it with the Verilator
cycle counts and AXI byte counters of the core (at most 5 % error); ``make bench-model`` reports
the agreement on more configs and on captured attention, and projects the paper-scale core.

The recurrence, over the job's tiles g in order (blocks one after another), with G = head_dim /
sufa_macs cycles per key, rb = bus beats per row, per lane t with n_t keys and e_t rescale events:

* bus (the AXI read data channel, one beat per cycle): the block's Q rows, the K rows of tile g
  (requested once two tiles ago every lane finished its score stage: the K store holds two
  tiles) and the V rows of the union of tile g (requested once its lists exist and every lane
  finished the accumulate stage two tiles ago: the V store holds two tiles); requests are
  served in the order they become ready, V first on a tie, each after the memory's latency;
* predictor: one key per ``pred_cycles`` cycles, as the K rows arrive;
* lists of tile g: the DLZS tree's and SADS's latencies + ``LIST_CYCLES`` after its last key
  predicted, plus the union: (sparse) its bit-set, one cycle per entry of the longest list + 1,
  (dense) ``dense_union_cycles``,
  once every lane took the previous tile's list into its score stage;
* score stage of lane t: max(1, n_t)·G issue cycles, ``score_latency`` more to the last score; it
  needs a free score slot (two tiles: the accumulate stage of tile g-2 done);
* accumulate stage of lane t: starts once the tile's fixed max is known (its first two keys
  scored; dense mode: every key) and the tile's V rows are there, never ahead of the scores, then
  n_t·G cycles plus e_t·(``rescale_cycles`` + the pipeline drain); a lane's rescale stalls that
  lane only;
* block end: every lane's final tile, its pipeline drain and O / L (``norm_cycles``), then T
  output rows; the next block's accumulate stage starts after that. The next block's Q rows are
  read once the front has given the last list of the block and every lane started the block.

The memory is the testbench's cocotbext-axi AxiRam (``Memory``: no stalls). The constants below
are the RTL's fixed state-machine and handshake delays that the units' latency functions do not
give; they were fitted once to Verilator runs (docs/results/cycle_model/report.md lists every
point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from star.hw import tilebuf
from star.hw.core import check_latency
from star.hw.lists import dense_union_cycles
from star.hw.pipe import STREAM_REGISTER_LATENCY
from star.hw.predictor import predictor_latency
from star.hw.sads import sads_latency
from star.hw.sufa_lane import (accumulate_latency, exp_group, exp_wait, norm_cycles,
                               rescale_cycles, score_latency)
from star.hw.vfetch import request_latency
from star.spec.tiling import key_limit, tiles_to


__all__ = ["Memory", "job_cycles", "uniform_blocks", "buffers"]

# RTL pipeline constants beyond the units' own latencies, in cycles; calibrated once against
# Verilator traces of the core (docs/results/cycle_model/)
CHECK_CYCLES = 1        # START, CHECK -> BLOCK -> QREAD: the first Q request (+ CHECK_ENDS: check_latency)
LIST_CYCLES = 1         # SADS list out -> lists at SU-FA (beyond the DLZS tree and SADS)
V_REQUEST_CYCLES = 0    # lists taken -> union walk -> V request FIFO -> (the address pipe,
#                         request_latency) -> address register -> AR
RELEASE_CYCLES = 0      # a lane's last score / V read -> slot release -> next request
BLOCK_CYCLES = 2        # last list of a block -> BLOCK -> QREAD: the next Q request
QWAIT_CYCLES = 3        # a lane starts the previous block -> q_free -> (QWAIT) -> QREAD
TILE_GAP = 4            # accumulate stage: TILE_END and TILE states between two tiles, and the
#                         O read register's refill (recalibrated after issue 31's pipelining)
OUT_CYCLES = 1          # cycles per output row beyond its write beats


@dataclass(frozen=True)
class Memory:
    """The memory behind the AXI4 master: cycles from an accepted read request to its first
    data beat, and from the last write beat to the write response."""

    read_latency: int = 2
    write_latency: int = 2


class _Bus:
    """The read data channel, one beat per cycle, ``rb`` beats per row: a row requested at time
    r takes the first ``rb`` free cycles from r + latency on (requests that became ready
    earlier have taken theirs), so later requests fill the gaps earlier ones left."""

    WINDOW = 1 << 16          # gaps older than this behind the newest request are dropped

    def __init__(self, rb: int, latency: int):
        self.rb, self.lat, self.beats = rb, latency, 0
        self.gaps = [[0.0, float("inf")]]         # free [start, end) intervals, sorted

    def read(self, ready: float, rows: int) -> float:
        """Serve ``rows`` rows requested from ``ready`` on; return when the last one is in."""
        if rows == 0:
            return ready
        need, t, end = rows * self.rb, ready + self.lat, ready
        self.beats += need
        out = []
        for gap in self.gaps:
            lo, hi = max(gap[0], t), gap[1]
            if need and hi > lo:
                take = min(need, hi - lo)
                need -= take
                end = lo + take
                if lo > gap[0]:
                    out.append([gap[0], lo])
                if end < hi:
                    out.append([end, hi])
            else:
                out.append(gap)
        self.gaps = [g for g in out if g[1] > ready - self.WINDOW]
        return end


def job_cycles(cfg, blocks: list[dict], seq_len: int, mem: Memory = Memory(),
               dense: bool = False) -> dict:
    """Model one job (non-spatial core) from its per-block work.

    ``blocks``: per query block ``{"rows", "union": [U_g], "counts": [[n_t] per tile],
    "events": [[e_t] per tile]}`` (golden.core.block_schedule + add_events, or
    :func:`uniform_blocks`); ``dense``: the MODE.DENSE baseline (a lane accumulates a tile once
    all its scores are known, not once its first two are). Returns ``{"cycles", "bus_beats",
    "sufa_cycles", "pred_cycles", "bytes_read", "bytes_written", "kv_rows", "tiles",
    "buffers"}``; ``sufa_cycles`` is the SU-FA bound of the job: per block its busiest lane's
    keys · G, summed over the blocks.
    """
    fmt = cfg.formats
    T, Bc, rb, G = cfg.lanes, cfg.tile, fmt.row_beats, fmt.sufa_chunks
    C = cfg.pred_cycles                 # predictor cycles per key
    bus = _Bus(rb, mem.read_latency)
    # a rescale also waits for the lane's exp2 turn (half the longest wait, on average, and the
    # cycle taking the factor); a tile's first key for its turn after the 2-cycle tile change
    s_lat = score_latency(cfg)
    ev = rescale_cycles(cfg) + accumulate_latency(cfg) + exp_wait(cfg) / 2 + 1
    turn = (exp_group(cfg) - 2) % exp_group(cfg)
    norm = accumulate_latency(cfg) + norm_cycles(cfg)
    list_lat = (predictor_latency(cfg) + STREAM_REGISTER_LATENCY + sads_latency(cfg)
                + LIST_CYCLES)
    v_req = V_REQUEST_CYCLES + request_latency(cfg)

    tiles = [(b, j) for b, blk in enumerate(blocks) for j in range(len(blk["union"]))]
    n = len(tiles)
    s_start = np.zeros((n, T))          # per tile and lane: score stage start, end, done
    s_done = np.zeros((n, T))
    s_iss = np.zeros((n, T))
    a_end = np.zeros((n, T))            # accumulate stage: last V read issued
    lists = np.zeros(n)
    k_end = np.zeros(n)
    v_fill = np.zeros(n)
    lane_keys = np.zeros(T)             # the block's keys per lane so far
    sufa_bound = 0.0
    block_free = 0.0                    # the accumulate stage may start the block
    q_ready = float(CHECK_CYCLES + check_latency(cfg))
    k_front = 0.0                       # the front may request the next K rows
    p_free = 0.0                        # the predictor may take the next key
    keys_k = kv = 0
    end = 0.0
    for g, (b, j) in enumerate(tiles):
        blk = blocks[b]
        counts = np.asarray(blk["counts"][j], float)
        events = np.asarray(blk.get("events", [[0] * T] * len(blk["union"]))[j], float)
        K = min(Bc, seq_len - j * Bc)
        U = blk["union"][j]
        keys_k += K
        kv += U
        lane_keys += counts
        if j == len(blk["union"]) - 1:
            sufa_bound += lane_keys.max() * G
            lane_keys[:] = 0
        if j == 0:                      # the block's Q rows
            if b:
                q_ready = max(lists[g - 1] + BLOCK_CYCLES,
                              s_start[g - len(blocks[b - 1]["union"])].max() + QWAIT_CYCLES)
            bus.read(q_ready, blk["rows"])
            k_front = q_ready + blk["rows"]        # one request per cycle
        # K rows: a K slot (every lane's score stage of tile g-2 done)
        ks = tilebuf.SLOTS
        k_ready = max(k_front, s_done[g - ks].max() + RELEASE_CYCLES if g >= ks else 0)
        k_end[g] = bus.read(k_ready, K)
        k_front = k_ready + K
        # the predictor takes a key per C cycles as the rows arrive (one per rb beats)
        p_last = max(k_end[g], max(k_end[g] - (K - 1) * rb, p_free) + (K - 1) * C)
        p_free = p_last + C
        # lists: after the tile's last key predicted, once the lanes took the previous lists
        prev = s_start[g - 1].max() + 1 if g else 0
        # (sparse: the union's bit-set is built first, a cycle per entry of the longest list)
        build = dense_union_cycles(cfg) if dense else counts.max() + 1
        lists[g] = max(p_last + list_lat + build, prev)
        # V rows of the union: a V slot (every lane's accumulate stage of tile g-2 done)
        v_ready = max(lists[g] + v_req,
                      a_end[g - ks].max() + RELEASE_CYCLES if g >= ks else 0)
        v_fill[g] = bus.read(v_ready, U) if U else max(v_ready, v_fill[g - 1] if g else 0) + 1
        # score stage per lane: the list, the previous tile's issue, a free score slot
        s_iss[g] = np.maximum(1, counts) * G
        s_free = s_start[g - 1] + s_iss[g - 1] + 1 if g else np.zeros(T)
        slot = a_end[g - 2] + 1 if g >= 2 else np.zeros(T)
        s_start[g] = np.maximum(np.maximum(lists[g] + 1, s_free), slot)
        s_done[g] = s_start[g] + s_iss[g] + s_lat
        # accumulate stage per lane
        a_prev = a_end[g - 1] + TILE_GAP + turn if g else np.zeros(T)
        if j == 0:
            a_prev = np.maximum(a_prev, block_free)
        # ... once the tile's max is known (sparse: its first two keys scored), never ahead of
        # the scores
        known = s_done[g] if dense else np.where(counts >= 2, s_start[g] + 2 * G + s_lat,
                                                 s_done[g])
        # (a lane that waited for the scores or the V rows meets its exp2 turn at any phase:
        # half the longest wait, on average)
        a_start = np.maximum(np.maximum(known + 1, v_fill[g] + 1) + exp_wait(cfg) / 2, a_prev)
        a_end[g] = np.maximum(a_start + counts * G + events * ev, s_done[g] + 2) + (counts == 0)
        if j == len(blk["union"]) - 1:  # the block's end: O / L, then T output rows
            block_free = a_end[g].max() + norm + T * (rb + OUT_CYCLES)
            end = block_free
    q_len = sum(b["rows"] for b in blocks)
    cycles = end + mem.write_latency
    beats = bus.beats
    return {"cycles": int(round(cycles)), "bus_beats": beats,
            "sufa_cycles": int(sufa_bound), "pred_cycles": keys_k,
            "bytes_read": beats * fmt.bus_bytes, "bytes_written": q_len * fmt.row_bytes,
            "kv_rows": kv, "tiles": n, "buffers": buffers(cfg)}


def uniform_blocks(cfg, q_len: int, seq_len: int, union: float, events: float = 0.0,
                   causal: bool = False, frac: float = 1.0) -> list[dict]:
    """Per-block work for a projection without data: every lane walks ``frac`` of each tile's
    visible keys (at least 1; 1.0 = dense), the tile's union is ``union`` × its keys (at least
    1), ``events`` rescale events per lane and tile on average (spread evenly); causal skips the
    tiles past each block's last query, as the core does."""
    T, Bc = cfg.lanes, cfg.tile
    out, acc = [], 0.0
    for b0 in range(0, q_len, T):
        rows = min(T, q_len - b0)
        n = tiles_to(key_limit(b0 + rows - 1, seq_len - q_len, seq_len, causal),
                     cfg.formats.log2_tile)
        ev, counts, union_t = [], [], []
        for j in range(n):
            acc += events
            ev.append([int(acc)] * rows + [0] * (T - rows))
            acc -= int(acc)
            row_counts = []
            for t in range(T):
                vis = 0
                if t < rows:
                    last = key_limit(b0 + t, seq_len - q_len, seq_len, causal)
                    vis = max(0, min(Bc, last - j * Bc + 1))
                row_counts.append(max(1, round(frac * vis)) if vis else 0)
            counts.append(row_counts)
            union_t.append(max(1, round(union * min(Bc, seq_len - j * Bc))))
        out.append({"rows": rows, "union": union_t, "counts": counts, "events": ev})
    return out


def buffers(cfg) -> dict:
    """On-chip buffers of the core in bits (their occupancy bound): the two-tile K and V stores,
    each lane's two-tile score memory, and the query store (every lane's current and next row)."""
    fmt = cfg.formats
    row = cfg.head_dim * cfg.data_bits
    lb = cfg.formats.log2_tile
    return {"k_store": tilebuf.SLOTS * cfg.tile * row, "v_store": tilebuf.SLOTS * cfg.tile * row,
            "scores": cfg.lanes * 2 * cfg.tile * (fmt.score_bits + lb),
            "q_store": 2 * cfg.lanes * row}
