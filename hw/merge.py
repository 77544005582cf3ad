"""Partial-state merge unit of Spatial-STAR: two partial softmax states of one query row -> one.

Model: :func:`golden.spatial.merge` (bit-exact). Per pair (a, b):
m = max(ma, mb) when both have a state (else the one that has; b's when neither has);
l = rs(la, fa) + rs(lb, fb), o[e] likewise, with f = w(m - m_side) for a side that has a state
and 0 for one that has not; has = a.has | b.has. rs(x, f) = round_half_up(x·f / 2**W), with
W = exp_out_bits, is the rescale rule of ``hw/sufa.py`` (:func:`hw.rules.rescale`, model
``golden.rules.rescale``); w is the exp2 unit.

Only one side ever needs a real rescale: the side with the larger max (``big``; a on ties) has
f = w(0) = 2**W exactly, and rs(x, 2**W) = x, so it passes through unchanged (gated to 0 when it
has no state). So the unit has one :class:`~hw.exp2.Exp2Unit` (the factor of the other side,
``small``) and one state multiplier, shared by l and the d elements of o, one per cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


from .arith import MulPipe, mul_latency
from .exp2 import Exp2Unit, exp2_latency
from .layouts import partial_layout
from .rules import round_shift_finish, round_shift_start

__all__ = ["step_latency", "merge_latency", "merge_interval", "PartialMerge"]


def step_latency(cfg) -> int:
    """Steps from a value's issue (l or an o element at the head) to its merged result: the
    state multiplier (:func:`hw.arith.mul_latency`), the rounding's shift, then its add with
    the big side's value."""
    fmt = cfg.formats
    return mul_latency(max(fmt.o_bits, fmt.l_bits + 1), fmt.p_bits) + 2


def merge_latency(cfg) -> int:
    """Cycles from the later of the a/b transfers to ``out.valid`` (no stalls): the exp2 unit's
    latency from the first cycle with both inputs loaded, d + 1 multiply steps and
    ``step_latency`` more for the last result, and 1."""
    return exp2_latency(cfg) + cfg.head_dim + step_latency(cfg) + 2


def merge_interval(cfg) -> int:
    """Cycles per pair at full throughput (inputs always valid, out always ready)."""
    return merge_latency(cfg) + 1


class PartialMerge(wiring.Component):
    """Merge two partial states (a, b) of the same query row into one (``golden.spatial.merge``).

    Ports
        a, b    In stream ``partial_layout(cfg)``: the two states of a pair (the merge is
                commutative except for m when neither has a state: then m = b.m).
        out     Out stream ``partial_layout(cfg)``: the merged state; held until taken.
        mant, shift     In: runtime score scale, as :class:`~hw.exp2.Exp2Unit` (static while a
                pair is in flight).
    Datapath: a and b are each loaded into a register (a's also holds the result and drives
    ``out``). Once both are loaded, the exp2 unit computes f = w(m_big - m_small) (3 cycles;
    f = 0 when the small side has no state), then one multiplier does
    x = gate(x_big) + rs(x_small, f) for l and then o[0..d-1], one element per cycle, the o
    registers shifting by one element per step (no d:1 multiplexers). Results must fit the state
    widths (they do for the states of one job: l <= the l of the whole row, |o| likewise);
    wider values wrap.
    Latency: ``merge_latency(cfg)`` cycles from the later input transfer to out.valid.
    Throughput: one pair per ``merge_interval(cfg)`` cycles (a is accepted again the
    cycle after out is taken; b as soon as the last multiply step has read it).
    Backpressure: a and b are ready while their register is empty (ready does not depend on
    valid or on out.ready); out.valid holds with a stable payload until out.ready.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.fmt = fmt = cfg.formats
        layout = partial_layout(cfg)
        super().__init__({
            "a": In(stream.Signature(layout)),
            "b": In(stream.Signature(layout)),
            "out": Out(stream.Signature(layout)),
            "mant": In(unsigned(fmt.scale_bits)),
            "shift": In(unsigned(fmt.scale_shift_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        d, W = cfg.head_dim, fmt.exp_out_bits
        layout = partial_layout(cfg)
        assert exp2_latency(cfg) >= 2

        # input registers; A also accumulates the result and drives out
        A = Signal(layout)
        B = Signal(layout)
        a_full = Signal()
        b_full = Signal()
        m.d.comb += [self.a.ready.eq(~a_full), self.b.ready.eq(~b_full),
                     self.out.payload.eq(A)]
        with m.If(self.a.valid & ~a_full):
            m.d.sync += [A.eq(self.a.payload), a_full.eq(1)]
        with m.If(self.b.valid & ~b_full):
            m.d.sync += [B.eq(self.b.payload), b_full.eq(1)]

        # the side with the larger max (a on ties; b when neither has a state, as the model)
        big_a = Signal()
        m.d.comb += big_a.eq(A.has & (~B.has | (A.m >= B.m)))
        m_big = Mux(big_a, A.m, B.m)
        has_big = Mux(big_a, A.has, B.has)
        has_small = Mux(big_a, B.has, A.has)

        # factor of the small side: w(m_big - m_small); A.m, B.m are stable until the last step
        m.submodules.exp = exp = Exp2Unit(cfg)
        t = Signal(fmt.score_bits + 1)
        m.d.comb += t.eq(Mux(A.has & B.has, m_big - Mux(big_a, B.m, A.m), 0))
        m.d.comb += [exp.en.eq(1), exp.t.eq(t), exp.mant.eq(self.mant),
                     exp.shift.eq(self.shift)]
        f = Signal(fmt.p_bits)
        m.d.comb += f.eq(Mux(has_small, exp.p, 0))

        # one step: step 0 is l, step 1 + e is o[e] (the head of the shifting o registers)
        D = step_latency(cfg)
        step = Signal(range(d + D + 1))
        first = step == 0
        xw = max(fmt.o_bits, fmt.l_bits + 1)
        xa = Signal(signed(xw))
        xb = Signal(signed(xw))
        m.d.comb += [xa.eq(Mux(first, A.l, A.o[0])), xb.eq(Mux(first, B.l, B.o[0]))]
        x_big = Signal(signed(xw))
        x_small = Signal(signed(xw))
        m.d.comb += [x_big.eq(Mux(has_big, Mux(big_a, xa, xb), 0)),
                     x_small.eq(Mux(big_a, xb, xa))]
        # rs(x, f) = (x·f + 2**(W-1)) >> W, the arithmetic of the lane's state pass
        # (hw/sufa_state.py)
        # (rule 5 in pipelined halves: the product, the shift, then the add with the big side);
        # the pipeline advances on every step, the big side's value alongside
        stepping = Signal()
        m.submodules.mul = mul = MulPipe(signed(xw), unsigned(fmt.p_bits))
        m.d.comb += [mul.en.eq(stepping), mul.a.eq(x_small), mul.b.eq(f)]
        big = [Signal(signed(xw), name=f"x_big_{i}") for i in range(step_latency(cfg) - 1)]
        w = Signal(signed(len(mul.p) + 1), name="scaled_w")
        res = Signal(signed(xw + 1))
        with m.If(stepping):
            m.d.sync += [big[0].eq(x_big), w.eq(round_shift_start(mul.p, W)),
                         res.eq(big[-1] + round_shift_finish(w))]
            m.d.sync += [big[i + 1].eq(big[i]) for i in range(len(big) - 1)]

        wait = Signal(range(exp2_latency(cfg)))
        with m.FSM(name="merge"):
            with m.State("IDLE"):
                # t is valid from this cycle; p follows exp2_latency cycles later
                with m.If(a_full & b_full):
                    m.d.sync += wait.eq(exp2_latency(cfg) - 1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 1):
                    m.d.sync += step.eq(0)
                    m.next = "STEP"
            with m.State("STEP"):
                # step k issues l (k = 0) or o[k - 1] (the heads); its result comes back at
                # step k + D and enters the tail (o) or A.l (l): after d + D steps of shifting,
                # the D values shifted in before the first result are out again
                m.d.comb += stepping.eq(1)
                m.d.sync += step.eq(step + 1)
                with m.If(step == D):
                    m.d.sync += A.l.eq(res)
                with m.If(~first):
                    m.d.sync += [A.o[e].eq(A.o[e + 1]) for e in range(d - 1)]
                    m.d.sync += [B.o[e].eq(B.o[e + 1]) for e in range(d - 1)]
                    m.d.sync += A.o[d - 1].eq(res)
                with m.If(step == d + D):
                    m.d.sync += [A.m.eq(m_big), A.has.eq(A.has | B.has), b_full.eq(0)]
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.out.valid.eq(1)
                with m.If(self.out.ready):
                    m.d.sync += a_full.eq(0)
                    m.next = "IDLE"
        return m
