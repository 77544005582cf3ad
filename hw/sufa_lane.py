"""One SU-FA query lane: a score stage and an accumulate stage joined by a queue of tile records.

Model: :func:`golden.sufa.attend` (one row of it). Used by :class:`hw.sufa.SufaEngine`, which
owns the tile stores (``hw/tilebuf.py``), the shared exp2 units, and hands each lane its list of
every tile.

- Score stage S (:class:`hw.sufa_score.ScoreStage`, P multipliers for q·k): per tile, s = q·k of
  each key of the lane's list, one key per G = head_dim / P cycles, into a score memory of
  ``SLOTS`` tiles and a record per tile (its fixed max).
- Accumulate stage A (:class:`hw.sufa_accumulate.AccumulateStage`, P multipliers for p·v, a turn
  at the group's exp2 unit): takes the records in order; per key p = w(M - s), L += p,
  O += p·v; rescales and the final normalisation go through its state pass
  (:class:`hw.sufa_state.StatePass`, one state multiplier).
- Between them :class:`hw.sufa_score.TileRecords`: the records, the scored entries per slot (A
  never reads a score ahead of S), the score memory's read port, and A's ``take`` / ``free``
  (a slot is reused only after A has read all its scores: S runs at most ``SLOTS`` tiles ahead).

S scores tile j+1 while A accumulates tile j; A follows S through a tile a few cycles behind (it
needs entries 0 and 1 for the fixed max). Latencies: ``score_latency``, ``accumulate_latency``,
``state_latency``; a rescale ``rescale_cycles``, the final pass ``norm_cycles``.

Every lane is the same module (no lane index inside), so synthesis can map one and instance it.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .sufa_accumulate import (EXP_LANES, AccumulateStage, ExpTurn, accumulate_latency,
                              exp_group, exp_latency, exp_wait, norm_cycles, rescale_cycles)
from .sufa_score import ListQueue, QueryRow, ScoreStage, score_latency
from .sufa_state import Normalise, state_latency
from .tilebuf import SlotReturn, StoreRead

__all__ = ["SufaLane", "score_latency", "accumulate_latency", "state_latency",
           "rescale_cycles", "norm_cycles", "exp_latency", "exp_group", "exp_wait", "EXP_LANES"]


class SufaLane(wiring.Component):
    """A query lane (see the module docstring). Ports, driven by :class:`hw.sufa.SufaEngine`:

    q           :class:`hw.sufa_score.QueryRow`: the next block's query row written to the Q
                store, and the chunk of the current one.
    list        :class:`hw.sufa_score.ListQueue`: the lane's list of the next tile.
    k, v        :class:`hw.tilebuf.StoreRead` of the K / V tile store.
    k_slots, v_slots    :class:`hw.tilebuf.SlotReturn`: S / A is done with a K / V tile.
    v_filled    In: a tile's V rows are all in the V store (tiles in order).
    exp         :class:`hw.sufa_accumulate.ExpTurn`: the lane's turn at its group's exp2 unit.
    exact_max, clear    In: dense mode (the exact tile max, every entry in index order); the
                core's clear.
    done        Out: the block's ``result`` is ready; ``clear_block`` In (the engine took it)
                starts the next block.
    result      Out: the lane's output, by its final pass ``final``
                (:class:`hw.sufa_state.Normalise`: the O row; :class:`hw.sufa_state.Unload`:
                the partial state {has, m, l, o}).
    over, grow  Out, one-cycle pulses: a max-assurance rescale, a tile merge.
    mac_busy, stalled, v_wait   Out: the p·v multipliers take a chunk; a rescale holds the lane;
                a record is ready but its tile's V rows are not all there.
    """

    def __init__(self, cfg, final=Normalise):
        self.cfg, self.final = cfg, final
        super().__init__({
            "q": Out(QueryRow(cfg)), "list": Out(ListQueue(cfg)),
            "k": Out(StoreRead(cfg)), "k_slots": Out(SlotReturn()),
            "v": Out(StoreRead(cfg)), "v_slots": Out(SlotReturn()), "v_filled": In(1),
            "exp": Out(ExpTurn(cfg)),
            "exact_max": In(1), "clear": In(1),
            "done": Out(1), "clear_block": In(1),
            "result": Out(final.result_layout(cfg)),
            "over": Out(1), "grow": Out(1),
            "mac_busy": Out(1), "stalled": Out(1), "v_wait": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.score = s = ScoreStage(self.cfg)
        m.submodules.accumulate = a = AccumulateStage(self.cfg, self.final)
        connect(m, s.records, a.records)
        for name in ("q", "list", "k", "k_slots"):
            connect(m, flipped(getattr(self, name)), getattr(s, name))
        for name in ("v", "v_slots", "exp"):
            connect(m, flipped(getattr(self, name)), getattr(a, name))
        m.d.comb += [s.exact_max.eq(self.exact_max), s.clear.eq(self.clear),
                     a.clear.eq(self.clear), a.v_filled.eq(self.v_filled),
                     a.clear_block.eq(self.clear_block)]
        for name in ("done", "result", "over", "grow", "mac_busy", "stalled", "v_wait"):
            m.d.comb += getattr(self, name).eq(getattr(a, name))
        return m
