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

The others are proved for every reachable state (k-induction).

The checker fails where it should: a turn counter that does not wrap at n is shown to break the
one-turn-per-cycle property.
"""

from pathlib import Path

import pytest
from amaranth import Module, Mux, Signal, Value, unsigned
from amaranth.hdl import Assert, Assume

from star.hw.pipe import StreamRegister
from star.hw.read_arbiter import DEST_K, DEST_Q, DEST_V, ReadArbiter
from star.hw.turns import Turns
from star.sim.formal import prove
from star.spec.config import preset

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
