"""Cycle and traffic model of the STAR core (``hw/core.py``): no simulation, calibrated to the RTL.

Given a config and a job's work per query block (``golden.core.block_schedule`` +
``add_events``: the union of selected keys per tile and the SU-FA rescale events) it returns the
job's cycles, each stage's busy cycles, the bytes read and written, and the on-chip buffers.
tests/test_cycle_model.py compares it with the Verilator cycle counts and AXI byte counters of
the core (at most 5 % error); ``make bench-model`` reports the agreement on more configs and on
captured MiniLM attention, and projects the paper-scale core.

The recurrence, per query block and key tile j (K_j keys, U_j = union of the lanes' selected
keys, E_j = rescale events), with rb = bus beats per row, in cycles:

* bus (the AXI read data channel, one beat per cycle, reads return in order): the block's Q
  rows and K_0; then window j: the K rows of tile j+1 (the front reads one tile ahead, once the
  scheduler has finished tile j-1) and the V rows of tile j, which come no earlier than
  ``v_first`` = K_j read + DLZS tree + the list path (SADS, lane masks) + the V request path +
  the memory's read latency; V rows wait in a FIFO of ``tile`` rows, so the window cannot end
  before SU-FA has taken all but ``tile`` of them;
* scheduler: one union beat per cycle while SU-FA's beat FIFO (two tiles) has room;
* SU-FA accumulate stage: starts tile j once its record (written at the tile's last K beat)
  has left the dot products, then U_j beats at one per cycle (never ahead of the V rows) plus
  (d + 9) cycles per rescale event (a tile merge or a max-assurance rescale stall the engine);
* blocks: the next block's Q reads start ``dot_latency + 2`` cycles after the last union beat
  (the DRAIN state) plus the controller's state changes; its SU-FA work starts after this
  block's normalisation (pipeline drain + reciprocal + d + T output rows);
* the job ends after the last normalisation, the last O writes and their responses.

The memory is the testbench's cocotbext-axi AxiRam (``Memory``: no stalls). The constants
below are the RTL's fixed state-machine and handshake delays that the units' latency
attributes do not give; they were fitted once to Verilator runs of four configurations (tiny,
tiny with 8 lanes and a row-wide bus, 16-bit d = 32 with an 8-beat row, 16 lanes with 8-key
tiles) and checked on two held-out ones (the bench config with tiles 16 and 64 on MiniLM
attention): docs/results/cycle_model/report.md lists every point. What the model leaves out:
the bus interleaves K and V rows beat by beat (modelled as V first), and jobs of one tile
(~100 cycles) are dominated by those fixed delays (error up to 8 %).
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.arith import tree_latency
from hw.dot import dot_latency

from .formats import Formats

__all__ = ["Memory", "job_cycles", "uniform_blocks", "buffers"]

# RTL pipeline constants beyond the units' own latencies (tree_latency, dot_latency, reciprocal),
# in cycles; calibrated once against Verilator traces of the core (docs/results/cycle_model/)
CHECK_CYCLES = 3        # START -> CHECK_ENDS -> CHECK -> BLOCK: the first Q request
LIST_CYCLES = 4         # last K row predicted -> SADS list -> lane masks -> first union beat
V_REQUEST_CYCLES = 1    # union beat issued -> V request FIFO -> V address register -> AR
TILE_RECORD_CYCLES = 2  # a tile's last K beat scored -> its record (fixed max) in the tile FIFO
BLOCK_CYCLES = 6        # DRAIN -> BLOCK -> QREAD: the next block's first Q request
RESCALE_EXTRA = 9       # a rescale event stalls SU-FA's accumulate stage d + 9 cycles
FINAL_EXTRA = 8         # the accumulate pipeline empties before the reciprocal starts


@dataclass(frozen=True)
class Memory:
    """The memory behind the AXI4 master: cycles from an accepted read request to its first
    data beat, and from the last write beat to the write response."""

    read_latency: int = 2
    write_latency: int = 2


def job_cycles(cfg, blocks: list[dict], seq_len: int, mem: Memory = Memory()) -> dict:
    """Model one job (non-spatial core) from its per-block work.

    ``blocks``: per query block ``{"rows", "union": [U_j], "merge": [0/1 per tile], "over":
    [events per tile]}`` (golden.core.block_schedule + add_events, or :func:`uniform_blocks`).
    Returns ``{"cycles", "bus_beats", "sufa_cycles", "pred_cycles", "bytes_read",
    "bytes_written", "kv_rows", "tiles", "block_starts", "buffers"}`` (``buffers``: on-chip
    buffer bits, the bound of their occupancy: :func:`buffers`).
    """
    fmt = Formats(cfg)
    d, Bc, T, rb = cfg.head_dim, cfg.tile, cfg.lanes, fmt.row_beats
    lat = mem.read_latency
    list_lat = tree_latency(d) + LIST_CYCLES
    v_lat = V_REQUEST_CYCLES + lat
    score_lat = dot_latency(d) + TILE_RECORD_CYCLES
    drain = dot_latency(d) + 2 + BLOCK_CYCLES
    recip = cfg.recip_bits + 2
    normalise = FINAL_EXTRA + recip + d + T
    event = d + RESCALE_EXTRA
    fifo = Bc                       # V rows that may wait for SU-FA (hw/core.py vfifo)
    beat_fifo = 2 * Bc              # K beats that may wait in SU-FA's score stage

    q_start = CHECK_CYCLES          # the block's first Q request
    bus = 0                         # the read data channel is busy until
    sufa = 0                        # SU-FA's accumulate stage is busy until
    sufa_free = 0                   # ... and may start the next block (normalised)
    beats = sufa_busy = keys = kv = tiles = 0
    starts = []
    for b in blocks:
        starts.append(q_start)
        n = len(b["union"])
        K = [min(Bc, seq_len - j * Bc) for j in range(n)]
        U, E = b["union"], [m + o for m, o in zip(b["merge"], b["over"])]
        beats += (b["rows"] + sum(K) + sum(U)) * rb
        sufa_busy += sum(U) + sum(E) * event
        keys += sum(K)
        kv += sum(U)
        tiles += n
        bus = max(bus, q_start + lat) + (b["rows"] + K[0]) * rb
        k_done = bus
        sufa = max(sufa, sufa_free)
        last_issue = 0
        taken = []                  # per tile: (first beat time, first V arrival, rows before)
        rows = 0

        def consumed(r):
            """When SU-FA took V row r of the block (-inf before the block)."""
            for t0, v0, r0 in reversed(taken):
                if r >= r0:
                    return max(t0 + (r - r0), v0 + (r - r0 + 1) * rb)
            return float("-inf")

        issued = [float("-inf")] * (n + 1)           # the scheduler finished tile j
        for j in range(n):
            ready = max(k_done + list_lat, issued[j - 1] if j else 0)   # tile j's lists
            v_first = ready + v_lat
            # the scheduler issues one beat per cycle while SU-FA's beat FIFO has room
            issued[j] = max(ready + U[j], consumed(rows + U[j] - beat_fifo) + 1)
            # the accumulate stage takes a tile once its record (the fixed max, written at
            # the tile's last K beat) has left the dot products
            start = max(sufa, v_first, issued[j] + score_lat) + E[j] * event
            taken.append((start, v_first, rows))
            rows += U[j]
            # window j: the K rows of tile j+1 (after the scheduler finished tile j-1) and
            # the V rows of tile j (while the V FIFO has room)
            k_next = K[j + 1] * rb if j + 1 < n else 0
            k_start = max(bus, issued[j - 1] if j else 0)
            # V rows have the request priority over K rows
            v_end = max(v_first, k_start) + U[j] * rb
            end = max(k_start + k_next + U[j] * rb, v_end, consumed(rows - fifo) + rb)
            sufa = max(start + U[j], v_end + 1)
            k_done = k_start + k_next if k_next else end
            bus = end
            last_issue = issued[j]
        q_start = max(last_issue, bus) + drain
        sufa_free = sufa + normalise
    last_rows = blocks[-1]["rows"] if blocks else 0
    cycles = sufa_free + last_rows * rb + mem.write_latency
    q_len = sum(b["rows"] for b in blocks)
    return {"cycles": int(round(cycles)), "bus_beats": beats, "sufa_cycles": sufa_busy,
            "pred_cycles": keys, "bytes_read": beats * fmt.bus_bytes,
            "bytes_written": q_len * fmt.row_bytes, "kv_rows": kv, "tiles": tiles,
            "block_starts": starts, "buffers": buffers(cfg)}


def uniform_blocks(cfg, q_len: int, seq_len: int, union: float, events: float = 0.0,
                   causal: bool = False) -> list[dict]:
    """Per-block work for a projection without data: every tile's union = ``union`` × its keys
    (at least 1), ``events`` rescale events per tile on average (spread evenly); causal skips
    the tiles past each block's last query, as the core does."""
    T, Bc = cfg.lanes, cfg.tile
    out, acc = [], 0.0
    for b0 in range(0, q_len, T):
        rows = min(T, q_len - b0)
        lim = (b0 + rows - 1 + seq_len - q_len) if causal else seq_len - 1
        n = min(seq_len - 1, lim) // Bc + 1
        merge = []
        for _ in range(n):
            acc += events
            merge.append(int(acc))
            acc -= int(acc)
        out.append({"rows": rows, "merge": merge, "over": [0] * n,
                    "union": [max(1, round(union * min(Bc, seq_len - j * Bc)))
                              for j in range(n)]})
    return out


def buffers(cfg) -> dict:
    """On-chip buffers of the core in bits (their occupancy bound): the two-tile K store, the V
    row FIFO, the V request FIFO and the lanes' query registers."""
    fmt = Formats(cfg)
    row = cfg.head_dim * cfg.data_bits
    key_bits = (cfg.max_seq + cfg.tile - 1).bit_length()
    return {"k_store": 2 * cfg.tile * row, "v_fifo": cfg.tile * fmt.row_beats * fmt.bus_bytes * 8,
            "v_requests": cfg.tile * key_bits, "query_lanes": 2 * cfg.lanes * row}
