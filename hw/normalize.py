"""Final normalisation unit: one partial softmax state {has, m, l, o[d]} -> the output row o / l.

Model: :func:`golden.recip.normalize` (bit-exact): r, shift = reciprocal(l) (r = floor(2**shift / l),
shift = bit_length(l) - 1 + R), then per element round_half_up(o·r / 2**shift) saturated to
``data_bits`` (rule 4, :func:`hw.rules.recip_normalize`, here in pipelined halves: a
:class:`hw.arith.MulPipe`, ``round_shift_start``, ``round_shift_finish``, ``round_finish_range`` and
``saturate_flagged``).
This is the arithmetic of the final normalisation in :class:`hw.sufa_state.StatePass`: the same
:class:`~hw.recip.Reciprocal` unit and the same multiply / round / saturate rules.
A state without keys (``has`` = 0, or l = 0, where the model is undefined) gives an all-zero row.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


from .layouts import partial_layout
from .recip import Reciprocal, recip_latency
from .arith import MulPipe, mul_latency
from .rules import round_finish_range, round_shift_finish, round_shift_start, saturate_flagged

__all__ = ["row_layout", "step_latency", "normalize_latency", "normalize_interval",
           "Normalize"]


def row_layout(cfg) -> data.StructLayout:
    """The output payload: {row[head_dim]} of ``data_bits`` signed each."""
    return data.StructLayout({"row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)})


def step_latency(cfg) -> int:
    """Steps from an element at the head of the shift registers to its result at their tail:
    the multiplier (:func:`hw.arith.mul_latency`), the rounding's shift, its add and the
    saturation."""
    fmt = cfg.formats
    return mul_latency(fmt.o_bits, fmt.recip_bits + 1) + 2


def normalize_latency(cfg) -> int:
    """Cycles from the input transfer to ``o.valid`` (no stalls): the reciprocal
    (:func:`hw.recip.recip_latency`), d multiply steps (the first in the reciprocal's done
    cycle) and ``step_latency`` more for the last results, one cycle to hand the row to the
    output register and one to present it."""
    return recip_latency(cfg) + cfg.head_dim - 1 + step_latency(cfg) + 2


def normalize_interval(cfg) -> int:
    """Cycles per row at full throughput (i always valid, o always ready): the next input is
    accepted in the cycle the finished row moves to the output register."""
    return normalize_latency(cfg) - 1


class Normalize(wiring.Component):
    """Normalise one partial state: O[e] = saturate(round_half_up(o[e]·r / 2**shift)).

    Ports
        i       In stream ``partial_layout(cfg)`` ({has, m, l, o[d]}; m is ignored): the state.
        o       Out stream ``row_layout(cfg)`` ({row[d]}, ``data_bits`` signed): the output row;
                all zeros when ``has`` = 0 or l = 0.
    Datapath: an input transfer loads o[0..d-1] into shift registers (``o_bits`` each) and starts
    the :class:`~hw.recip.Reciprocal` on l (R + 2 cycles; r and shift are held by the unit).
    Then one ``o_bits`` × (R + 1) multiplier (a :class:`hw.arith.MulPipe`) takes one element
    per cycle: the head register o[0] is multiplied, rounded, shifted by ``shift`` and saturated
    (a registered stage each: ``step_latency`` steps), and the registers shift by one element per
    step with the result of the element that left the head ``step_latency`` steps earlier
    entering at o[d-1] (no d:1 multiplexers); after d + ``step_latency`` steps the registers hold
    the results in order. Then the row moves to a separate output register, which frees the
    unit for the next input while the row waits to be taken.
    Latency: ``normalize_latency(cfg)`` cycles from the input transfer to o.valid.
    Throughput: one row per ``normalize_interval(cfg)`` cycles.
    Backpressure: i.ready is high while the unit is idle and in the cycle a finished row moves to
    an empty output register (it depends on neither i.valid nor o.ready); when o is stalled the
    unit holds one row in the output register and one finished row in the shift registers.
    o.valid holds with a stable payload until o.ready.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.fmt = cfg.formats
        super().__init__({
            "i": In(stream.Signature(partial_layout(cfg))),
            "o": Out(stream.Signature(row_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        d, b = cfg.head_dim, cfg.data_bits
        assert fmt.o_bits > b

        m.submodules.recip = recip = Reciprocal(cfg)
        load = Signal()                      # input transfer this cycle
        step = Signal()                      # one multiply step this cycle
        copy = Signal()                      # the finished row moves to the output register
        m.d.comb += [load.eq(self.i.valid & self.i.ready),
                     recip.start.eq(load), recip.l.eq(self.i.payload.l)]

        # the state's o elements: shift registers, head O[0]; results enter at O[d-1]
        O = [Signal(signed(fmt.o_bits), name=f"O_e{e}") for e in range(d)]
        nohas = Signal()
        with m.If(load):
            m.d.sync += [O[e].eq(self.i.payload.o[e]) for e in range(d)]
            m.d.sync += nohas.eq(~self.i.payload.has)

        # O[0]·r rounded half up by 2**shift, saturated (the state pass's normalisation arithmetic:
        # rule 4 in pipelined halves: the product, the shift, the add and saturation)
        m.submodules.mul = mul = MulPipe(signed(fmt.o_bits), unsigned(len(recip.r)))
        m.d.comb += [mul.en.eq(step), mul.a.eq(O[0]), mul.b.eq(recip.r)]
        w = Signal(signed(len(mul.p) + 1), name="mul_w")
        res = Signal(signed(b))
        with m.If(step):
            m.d.sync += [w.eq(round_shift_start(mul.p, recip.shift)),
                         res.eq(Mux(nohas | recip.zero, 0,
                                    saturate_flagged(round_shift_finish(w, b),
                                                     *round_finish_range(w, b), b)))]
        with m.If(step):
            m.d.sync += [O[e].eq(O[e + 1]) for e in range(d - 1)]
            m.d.sync += O[d - 1].eq(res)

        # output register
        out_full = Signal()
        m.d.comb += self.o.valid.eq(out_full)
        with m.If(copy):
            m.d.sync += [self.o.payload.row[e].eq(O[e][:b]) for e in range(d)]
            m.d.sync += out_full.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += out_full.eq(0)

        cnt = Signal(range(d + step_latency(cfg)))
        with m.FSM(name="normalize"):
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.next = "RECIP"
            with m.State("RECIP"):
                # r and shift are valid (and held) from the done cycle: first step now
                with m.If(recip.done):
                    m.d.comb += step.eq(1)
                    m.d.sync += cnt.eq(1)
                    m.next = "NORM"
            with m.State("NORM"):
                m.d.comb += step.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == d + step_latency(cfg) - 1):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(~out_full):
                    m.d.comb += [copy.eq(1), self.i.ready.eq(1)]
                    with m.If(self.i.valid):
                        m.next = "RECIP"
                    with m.Else():
                        m.next = "IDLE"
        return m
