"""A SU-FA lane's tile-record queue: the score stage's scores and tile records, in ``SLOTS``
slots, for the accumulate stage.

Part of :class:`hw.sufa_score.ScoreStage` (S); the accumulate stage
(:class:`hw.sufa_accumulate.AccumulateStage`, A) holds the flipped :class:`TileRecords`. S starts
a tile in a slot (``start``: the list's entry count and block flag) only while ``can_start``:
fewer than ``SLOTS`` tiles between S starting one and A freeing it, so S never overwrites a
score A has not read. Each key's score then arrives as an ``event`` (the score memory, in list
order); the tile's fixed max (over its candidates: entries 0 and 1, or every entry with
``exact_max``) makes the slot's record ready for A once entry 1 is scored (with ``exact_max``,
or a shorter list: once S ends the tile). S's end of a tile also counts towards the K store's
slot return (``k_slots``). Every part is registered: a record is ready the cycle after its
event, a score readable the cycle after it is written. Proved in tests/test_formal.py: no slot
is overwritten, no record is ready without a tile, no K tile is returned twice.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

from .tilebuf import SLOTS, SlotReturn, count_returns

__all__ = ["RecordQueue", "TileRecords", "record_layout", "score_event_layout"]


def record_layout(cfg) -> data.StructLayout:
    """A tile record: the tile's fixed max ``m`` (``has``: any candidate scored), the list's
    entry ``count``, ``final`` (the block's last tile)."""
    return data.StructLayout({"m": signed(cfg.formats.score_bits), "has": 1,
                              "count": unsigned_bits(cfg.tile), "final": 1})


def score_event_layout(cfg) -> data.StructLayout:
    """S's output per cycle: ``valid``, entry ``e`` of the tile in ``slot`` (key ``key`` of the
    tile) has score ``s``, ``cand`` it is a candidate for the fixed max; ``end``, the tile's
    last event (with ``valid``, or alone for an empty list)."""
    return data.StructLayout({"valid": 1, "end": 1, "slot": 1, "cand": 1,
                              "e": unsigned_bits(cfg.tile),
                              "key": cfg.formats.log2_tile,
                              "s": signed(cfg.formats.score_bits)})


class TileRecords(wiring.Signature):
    """S's tile records and scores, seen from S (A holds the flipped side).

    ready       Out: a record whose max is known waits (A takes the records in slot order).
    rec[SLOTS]  Out: each slot's record (``record_layout``).
    scored[SLOTS]   Out: entries of each slot's tile scored (as the score memory shows them:
                a score A may read).
    take        In: A takes the oldest ready record.
    free        In: A has read every score of its oldest slot; S may start a tile in it.
    addr        In: score memory read, ``slot·tile + entry``; ``score`` and ``key`` Out a cycle
                later (the entry's score and key index).
    """

    def __init__(self, cfg):
        super().__init__({
            "ready": Out(1),
            "rec": Out(data.ArrayLayout(record_layout(cfg), SLOTS)),
            "scored": Out(data.ArrayLayout(unsigned_bits(cfg.tile), SLOTS)),
            "take": In(1), "free": In(1),
            "addr": In(unsigned_bits(SLOTS * cfg.tile - 1)),
            "score": Out(signed(cfg.formats.score_bits)), "key": Out(cfg.formats.log2_tile),
        })


class RecordQueue(wiring.Component):
    """The tile-record queue (module docstring). Ports: ``can_start`` Out; ``start``, ``slot``,
    ``count``, ``final`` In (S starts a tile in ``slot``); ``event`` In
    (``score_event_layout``); ``exact_max`` In; ``records`` (:class:`TileRecords`);
    ``k_slots`` (:class:`hw.tilebuf.SlotReturn`)."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "can_start": Out(1), "start": In(1), "slot": In(1),
            "count": In(unsigned_bits(cfg.tile)), "final": In(1),
            "event": In(score_event_layout(cfg)), "exact_max": In(1),
            "records": Out(TileRecords(cfg)), "k_slots": Out(SlotReturn()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, sb = self.cfg, self.cfg.formats.score_bits
        lb = cfg.formats.log2_tile
        rd, ev, rec = self.records, self.event, self.records.rec

        used = Signal(range(SLOTS + 1))       # slots S started and A has not freed
        m.d.sync += used.eq(used + self.start - rd.free)
        m.d.comb += self.can_start.eq(used < SLOTS)

        m.submodules.scores = scores = Memory(shape=sb + lb, depth=SLOTS * cfg.tile, init=[])
        sw, sr = scores.write_port(), scores.read_port()
        m.d.comb += [sw.en.eq(ev.valid), sw.addr.eq(Cat(ev.e[:lb], ev.slot)),
                     sw.data.eq(Cat(ev.s, ev.key)),
                     sr.addr.eq(rd.addr), rd.score.eq(sr.data[:sb]), rd.key.eq(sr.data[sb:])]
        with m.If(self.start):        # the slot's count and flags are known when S starts it
            for i in range(SLOTS):
                with m.If(self.slot == i):
                    m.d.sync += [rec[i].count.eq(self.count), rec[i].final.eq(self.final)]
        # scored entries per slot (shown to A a cycle late: the score memory is not
        # transparent), reset when S starts the slot's next tile
        scored = [Signal(unsigned_bits(cfg.tile), name=f"scored{i}") for i in range(SLOTS)]
        m.d.sync += [rd.scored[i].eq(scored[i]) for i in range(SLOTS)]
        for i in range(SLOTS):
            with m.If(self.start & (self.slot == i)):
                m.d.sync += scored[i].eq(0)
            with m.Elif(ev.valid & (ev.slot == i)):
                m.d.sync += scored[i].eq(scored[i] + 1)

        # the tile's max over its candidates; known once entries 0 and 1 (the predicted top-1
        # and top-2) are scored, so A may start the tile then; with exact_max once every entry is
        tm, th = Signal(signed(sb)), Signal()
        tm_new, th_new = Signal(signed(sb)), Signal()
        cand = ev.valid & ev.cand
        m.d.comb += [tm_new.eq(Mux(cand & (~th | (ev.s > tm)), ev.s, tm)), th_new.eq(th | cand)]
        m.d.sync += [tm.eq(tm_new), th.eq(th_new)]
        known, fired = Signal(), Signal()
        m.d.comb += known.eq(~fired & (ev.end | (~self.exact_max & ev.valid & (ev.e == 1))))
        with m.If(known):
            m.d.sync += fired.eq(1)
            for i in range(SLOTS):
                with m.If(ev.slot == i):
                    m.d.sync += [rec[i].m.eq(tm_new), rec[i].has.eq(th_new)]
        with m.If(ev.end):
            m.d.sync += [tm.eq(0), th.eq(0), fired.eq(0)]

        ready = Signal(range(SLOTS + 1))
        m.d.sync += ready.eq(ready + known - rd.take)
        m.d.comb += rd.ready.eq(ready != 0)
        count_returns(m, self.k_slots, ev.end)
        return m
