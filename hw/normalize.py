"""Final normalisation unit: one partial softmax state {has, m, l, o[d]} -> the output row o / l.

Model: :func:`golden.recip.normalize` (bit-exact): r, shift = reciprocal(l) (r = floor(2**shift / l),
shift = bit_length(l) - 1 + R), then per element round_half_up(o·r / 2**shift) saturated to
``data_bits`` (:func:`hw.rules.recip_normalize`). This is the arithmetic of the final normalisation
in :class:`hw.sufa.SufaLane`: the same :class:`~hw.recip.Reciprocal` unit and the same multiply /
round / saturate rules.
A state without keys (``has`` = 0, or l = 0, where the model is undefined) gives an all-zero row.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


from .merge import partial_layout
from .recip import Reciprocal
from .rules import recip_normalize

__all__ = ["row_layout", "normalize_latency", "normalize_interval", "Normalize"]


def row_layout(cfg) -> data.StructLayout:
    """The output payload: {row[head_dim]} of ``data_bits`` signed each."""
    return data.StructLayout({"row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)})


def normalize_latency(cfg) -> int:
    """Cycles from the input transfer to ``o.valid`` (no stalls): the reciprocal (R + 2), d
    multiply steps (the first in the reciprocal's done cycle), one cycle to hand the row to the
    output register and one to present it (transfer in cycle k: o valid from k + R + d + 3)."""
    return cfg.recip_bits + cfg.head_dim + 3


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
    Then one ``o_bits`` × (R + 1) multiplier does one element per cycle: the head register
    o[0] is multiplied, rounded, shifted by ``shift`` and saturated, and the registers shift by
    one element with the result entering at o[d-1] (no d:1 multiplexers). After d steps the row
    moves to a separate output register, which frees the unit for the next input while the row
    waits to be taken.
    Latency: ``normalize_latency(cfg)`` = R + d + 3 cycles from the input transfer to o.valid.
    Throughput: one row per ``normalize_interval(cfg)`` = R + d + 2 cycles.
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

        # O[0]·r rounded half up by 2**shift, saturated (SufaLane's normalisation arithmetic)
        sat = recip_normalize(m, O[0], recip.r, recip.shift, b, name="mul_out")
        res = Signal(signed(b))
        m.d.comb += res.eq(Mux(nohas | recip.zero, 0, sat))
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

        cnt = Signal(range(d))
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
                with m.If(cnt == d - 1):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(~out_full):
                    m.d.comb += [copy.eq(1), self.i.ready.eq(1)]
                    with m.If(self.i.valid):
                        m.next = "RECIP"
                    with m.Else():
                        m.next = "IDLE"
        return m
