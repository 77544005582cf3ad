"""Formal proofs of the small control pieces (sim/formal.py: SymbiYosys + Z3, seconds each).

- :class:`hw.turns.Turns`, the fixed turns at a shared exp2 unit: exactly one user's turn per
  cycle, no user waits more than n - 1 cycles (the worst case the cycle model and the SU-FA
  testbench's bound charge, ``exp_wait``), and the unit's input is the value of the user whose
  turn it was a cycle earlier.
- :class:`hw.read_arbiter.ReadArbiter`: AXI's rule that a read request, once presented, stays
  until taken (whatever the other requesters do), one requester served per transfer, its own
  address and tag.
- :class:`hw.pipe.StreamRegister`: the stream rule on its output, and every transfer out once, in
  order (a producer sending a counting sequence); bounded model checking to 12 cycles.
- :class:`hw.sufa_records.RecordQueue`, a SU-FA lane's tile-record queue and its slot credits,
  against any score and accumulate stage that keep the protocol: no score slot reused before the
  accumulate stage frees it, one record per started tile and each slot's record its own tile's,
  a K tile returned once; bounded model checking to 12 cycles.

- :class:`hw.jobstart.JobStart`, the job start of the core and the array: each START while idle
  samples the job, which is launched or refused (its error code, done) exactly the checks'
  wait after, and done once when it finishes; START while busy reported; bounded model checking
  to 12 cycles.

The others are proved for every reachable state (k-induction).

The checker fails where it should: a turn counter that does not wrap at n is shown to break the
one-turn-per-cycle property, a record queue that starts a tile without a free slot to
reuse one, and a job start that decides a cycle before the checks have settled.
"""

from dataclasses import replace
from pathlib import Path

import pytest
from amaranth import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.hdl import Assert, Assume

from star.hw.jobstart import JobStart
from star.hw.pipe import StreamRegister
from star.hw.sufa_records import RecordQueue
from star.hw.tilebuf import SLOTS
from star.hw.read_arbiter import DEST_K, DEST_Q, DEST_V, ReadArbiter
from star.hw.turns import Turns
from star.sim.formal import prove
from star.spec.config import preset
from star.spec.regmap import ErrorCode

WORK = Path(__file__).resolve().parent.parent / "build" / "formal"


def _prev(m, value, name):
    """``value`` a cycle ago (its reset value in the first cycle)."""
    reg = Signal.like(value, name=name)
    m.d.sync += reg.eq(value)
    return reg


def _stable_while_stalled(m, s, name):
    """(was stalled, valid now, payload unchanged): a stream's rule, for Assert or Assume."""
    stalled = _prev(m, s.valid & ~s.ready, f"{name}_stalled")
    payload = _prev(m, Value.cast(s.payload), f"{name}_payload")
    return stalled, s.valid & (Value.cast(s.payload) == payload)


class CheckedTurns(Turns):
    def elaborate(self, platform):
        m = super().elaborate(platform)
        n = self.n
        m.d.comb += Assert(sum(self.turn) == 1)
        for j in range(n):
            m.d.comb += Assume(self.turn[j] | (self.i[j] == 0))
            since = Signal(range(n + 2), name=f"since_{j}")      # cycles since j's last turn
            m.d.sync += since.eq(Mux(self.turn[j], 0, Mux(since == n + 1, since, since + 1)))
            m.d.comb += Assert(since <= n - 1)
        sent = Signal.like(self.o, name="sent")
        m.d.sync += sent.eq(Mux(self.turn.any(), self.i[_onehot_index(self.turn)], 0))
        m.d.comb += Assert(self.o == sent)
        return m


def _onehot_index(bits):
    """The index of a one-hot vector's set bit (as a value)."""
    index = 0
    for j in range(len(bits)):
        index = Mux(bits[j], j, index)
    return index


class UnwrappedTurns(Turns):
    """A broken variant: the turn counter runs over its full width instead of wrapping at n."""

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.n), name="turn_count")
        m.d.sync += count.eq(count + 1)
        m.d.comb += [self.turn[j].eq(count == j) for j in range(self.n)]
        m.d.comb += Assert(sum(self.turn) == 1)
        return m


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_turns_every_user_within_n_cycles(n):
    assert prove(CheckedTurns(unsigned(5), n), f"turns_{n}", WORK, depth=n + 2) == "PASS"


def test_turns_proof_catches_a_counter_that_does_not_wrap():
    assert prove(UnwrappedTurns(unsigned(5), 3), "turns_unwrapped", WORK, depth=6,
                 mode="bmc") == "FAIL"


class CheckedReadArbiter(ReadArbiter):
    def elaborate(self, platform):
        m = super().elaborate(platform)
        ports = {DEST_Q: self.q, DEST_K: self.k, DEST_V: self.v}
        for dest, port in ports.items():       # requesters follow the stream rule
            stalled, kept = _stable_while_stalled(m, port, f"req{dest}")
            m.d.comb += Assume(~stalled | kept)
        stalled, kept = _stable_while_stalled(m, self.out, "out")
        m.d.comb += Assert(~stalled | kept)
        taken = [port.valid & port.ready for port in ports.values()]
        m.d.comb += Assert(sum(taken) == (self.out.valid & self.out.ready))
        for dest, port in ports.items():
            with m.If(port.valid & port.ready):
                m.d.comb += [Assert(self.out.payload.addr == port.payload.addr),
                             Assert(self.out.payload.tag[:2] == dest)]
        return m


def test_read_arbiter_keeps_a_presented_request():
    arb = CheckedReadArbiter(preset("tiny"))
    assert prove(arb, "read_arbiter", WORK, depth=4) == "PASS"


class CheckedStreamRegister(StreamRegister):
    def elaborate(self, platform):
        m = super().elaborate(platform)
        w = len(self.i.payload)
        sent, got = Signal(w, name="sent"), Signal(w, name="got")
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += sent.eq(sent + 1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += got.eq(got + 1)
        stalled, kept = _stable_while_stalled(m, self.i, "in")
        m.d.comb += [Assume(~stalled | kept), Assume(~self.i.valid | (self.i.payload == sent))]
        stalled, kept = _stable_while_stalled(m, self.o, "out")
        m.d.comb += [Assert(~stalled | kept), Assert(~self.o.valid | (self.o.payload == got)),
                     Assert((sent - got)[:w] <= 2)]
        return m


def test_stream_register_passes_every_transfer_once_in_order():
    # bounded (every trace of 12 cycles from reset, skid entry filled and drained several
    # times): the skid entry's content is internal, so the ports alone are not k-inductive
    assert prove(CheckedStreamRegister(unsigned(4)), "stream_register", WORK, depth=12,
                 mode="bmc") == "PASS"


def _small():
    """A small config for the tile-record queue: tiles of 4 keys."""
    return replace(preset("tiny"), head_dim=4, tile=4, k_tile=2, axi_data_bits=32)


class CheckedRecordQueue(RecordQueue):
    """The tile-record queue against any score stage and accumulate stage that keep their side
    of the protocol. S: a tile started only while ``can_start`` and no other is started and not
    yet ended (its events may still follow the next start), in alternating slots; its events
    in entry order for the oldest tile not ended, the candidates entries 0 and 1 (all with
    exact_max), ``end`` with its last entry (alone for an empty list). A: a record taken only
    while one is ready, a slot freed only after its record was taken. The engine: a K tile
    released only while S has one pending."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        rd, ev, ks = self.records, self.event, self.k_slots
        n = range(16)
        started, ended, taken, freed, released = (
            Signal(n, name=x) for x in ("started", "ended", "taken", "freed", "released"))
        count = [Signal.like(self.count, name=f"count_{i}") for i in range(SLOTS)]
        e = Signal.like(ev.e, name="model_e")                # events of the oldest tile
        m.d.sync += [started.eq(started + self.start), ended.eq(ended + ev.end),
                     taken.eq(taken + rd.take), freed.eq(freed + rd.free),
                     released.eq(released + ks.release)]
        with m.If(self.start):
            m.d.sync += count[0].eq(self.count) if SLOTS == 1 else \
                Cat(*count).word_select(self.slot, len(self.count)).eq(self.count)
        with m.If(ev.end):
            m.d.sync += e.eq(0)
        with m.Elif(ev.valid):
            m.d.sync += e.eq(e + 1)
        oldest = Signal.like(self.count, name="oldest_count")
        m.d.comb += oldest.eq(Cat(*count).word_select(ended[0], len(self.count)))
        scoring = started != ended                            # a tile started in an earlier cycle
        m.d.comb += [
            Assume(~self.start | (self.can_start & (started - ended <= 1)
                                  & (started - released < SLOTS) & (self.slot == started[0]))),
            Assume(~(ev.valid | ev.end) | (scoring & (ev.slot == ended[0]))),
            Assume(~ev.valid | ((ev.e == e) & (e < oldest))),
            Assume(ev.cand == (self.exact_max | (ev.e < 2))),
            Assume(~ev.end | Mux(ev.valid, e == oldest - 1, oldest == 0)),
            Assume(~ev.valid | ~(e == oldest - 1) | ev.end),
            Assume(self.exact_max == _prev(m, self.exact_max, "exact_max_prev")),
            Assume(~rd.take | rd.ready), Assume(~rd.free | (taken != freed)),
            Assume(~ks.release | ks.pend), Assume(started < 12),
            Assume(ev.s == 0), Assume(ev.key == 0)]       # (the values play no part here)
        known = Signal(n, name="known")                       # tiles whose max is known
        m.d.comb += known.eq(ended + (~self.exact_max & (e >= 2)))
        m.d.comb += [                                         # the model's own order
            Assert(freed <= taken), Assert(taken <= known), Assert(known <= started),
            Assert(released <= ended), Assert(ended <= started), Assert(e <= oldest)]
        m.d.comb += [
            Assert(started - freed <= SLOTS),                # no slot reused before A frees it
            Assert(self.can_start == (started - freed < SLOTS)),
            Assert(rd.ready == (known != taken)),            # a record once per started tile
            Assert(rd.rec[0].count == count[0]),             # each slot: its own tile's count
            Assert(rd.rec[1].count == count[1]),
            Assert(ks.pend == (ended != released))]          # a K tile returned once
        return m


class UnguardedRecordQueue(CheckedRecordQueue):
    """A broken variant: ``can_start`` whether or not A has freed a slot."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.can_start.eq(1)
        return m


def test_record_queue_never_reuses_a_slot_too_early():
    # bounded: every trace of 12 cycles from reset (up to six tiles of 0..4 entries, one event
    # per cycle, records taken and slots freed whenever the protocol allows). The queue's
    # counters are internal, so the ports alone are not k-inductive
    assert prove(CheckedRecordQueue(_small()), "record_queue", WORK, depth=12,
                 mode="bmc") == "PASS"


def test_record_queue_proof_catches_a_start_without_a_free_slot():
    assert prove(UnguardedRecordQueue(_small()), "record_queue_unguarded", WORK, depth=12,
                 mode="bmc") == "FAIL"


class CheckedJobStart(JobStart):
    """The job start against any START, check result and finish: every START while idle
    samples the job; each sampled job is decided (launched with error 0, or refused with its
    error code and done) exactly ``claimed`` + 1 cycles later (the wait the top sizes its
    checks for), then done once when it finishes; busy from the sample to done; START while
    busy reported. ``claimed``: the wait the checker holds it to (its own, unless a test
    claims another)."""

    def __init__(self, wait_cycles, claimed=None):
        super().__init__(wait_cycles)
        self.claimed = wait_cycles if claimed is None else claimed

    def elaborate(self, platform):
        m = super().elaborate(platform)
        W = self.claimed
        since = Signal(range(W + 3), name="since")          # cycles since the sample (0: none)
        active, launched = Signal(name="active"), Signal(name="launched")
        refused = self.done_set & ~launched & ~self.launch
        m.d.sync += since.eq(Mux(self.sample, 1, Mux((since == 0) | (since == W + 2), since,
                                                      since + 1)))
        with m.If(self.sample):
            m.d.sync += [active.eq(1), launched.eq(0)]
        with m.Elif(self.done_set):
            m.d.sync += active.eq(0)
        with m.If(self.launch):
            m.d.sync += launched.eq(1)
        m.d.comb += [
            Assert(self.sample == (self.start & ~self.busy)),
            Assert(self.busy == active),
            Assert(~(self.launch | refused) | (active & ~launched & (since == W + 1))),
            Assert(~(active & ~launched & (since == W + 1)) | self.launch | refused),
            Assert(~self.launch | (self.error == 0) & ~self.done_set),
            Assert(~refused | (self.error != 0) & self.error_set
                   & (self.error_code == self.error)),
            Assert(~(launched & active) | (self.done_set == self.finish)),
            Assert(~(self.start & self.busy) | self.error_set),
            Assert(~self.error_set | refused | (self.start & self.busy)
                   & (self.error_code == ErrorCode.START_BUSY))]
        return m


@pytest.mark.parametrize("wait", [1, 3])
def test_job_start_decides_each_job_once_after_its_checks(wait):
    # bounded: every trace of 12 cycles from reset (several jobs, refused and launched, STARTs
    # at any time): the wait counter is internal, so the ports alone are not k-inductive
    assert prove(CheckedJobStart(wait), f"job_start_{wait}", WORK, depth=12,
                 mode="bmc") == "PASS"


def test_job_start_proof_catches_a_decision_a_cycle_early():
    assert prove(CheckedJobStart(2, claimed=3), "job_start_early", WORK, depth=12,
                 mode="bmc") == "FAIL"
