"""The state pass of a SU-FA lane: O and L through one state multiplier, an element per cycle.

Model: :func:`golden.sufa.attend` (the rescale of rule 4, the normalisation of rule 5 in
``hw/rules.py``). Part of the accumulate stage (``hw/sufa_accumulate.py``), which owns O
(:class:`OState`) and L and writes the pass's results back.

Three passes over the d elements of O (and L after them, as element d):
- rescale (``scale`` with the factor ``f``): x·f rounded half up by 2**W (W = ``exp_out_bits``),
  written back; the tile merge and the max assurance;
- normalise (``unload``, a full lane): the reciprocal of L (:class:`hw.recip.Reciprocal`), then
  x·r rounded half up by 2**shift and saturated to ``data_bits``, shifted into ``row``;
- unload (``unload``, a partial lane, Spatial-STAR): O as it is, shifted into ``row``.

Element e is addressed in one cycle (``o_addr``, its chunk of O), its value x is there
``O_READ_LATENCY`` cycles later and its result ``state_latency(cfg)`` cycles after the address.
A pass addresses one element per cycle without stalls. ``scaled`` (combinational) is high in the
cycle the walk may resume after a rescale: every result still in flight will be written before
the walk's first O read, ``resume_lead`` cycles later. ``unloaded`` (combinational) is
high in the cycle the last result of the final pass is in ``row``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from star.spec.formats import unsigned_bits

from .arith import MulPipe, mul_latency
from .layouts import partial_layout
from .recip import Reciprocal
from .rules import round_finish_range, round_shift_finish, round_shift_start, saturate_flagged

__all__ = ["StatePass", "OState", "O_READ_LATENCY", "state_latency"]

#: cycles from an OState address to its data: the memory's read port, then a register
O_READ_LATENCY = 2


def state_latency(cfg) -> int:
    """Cycles of the state pass from an element's address to its result (written back to O or
    L, or shifted into the row out): the O read (``O_READ_LATENCY``), the multiplier
    (:func:`hw.arith.mul_latency`), then the rounding's shift and add registers."""
    fmt = cfg.formats
    return O_READ_LATENCY + mul_latency(fmt.o_bits, max(fmt.p_bits, fmt.recip_bits + 1)) + 2


class StatePass(wiring.Component):
    """The state pass (module docstring). Ports:

    scale, f        In: start a rescale by ``f`` (a weight, W fraction bits).
    unload          In: start the block's final pass (normalise, or a partial lane's unload).
    l               In: L (the reciprocal's input, and x of element d).
    o_addr          Out: the chunk of O the pass reads this cycle; ``o_data`` In, that chunk
                    ``O_READ_LATENCY`` cycles later.
    wb, wb_e, wb_data   Out: a rescaled element to write back (``wb_e`` = d: L).
    scaled, unloaded    Out: the rescale is over (the walk may resume) / the final pass is.
    row             Out: the normalised row (``data_bits`` elements), or with ``partial`` the
                    unscaled O (``o_bits`` elements), shifted in element by element.
    """

    def __init__(self, cfg, partial: bool, resume_lead: int):
        self.cfg, self.partial, self.resume_lead = cfg, partial, resume_lead
        fmt = cfg.formats
        d = cfg.head_dim
        chunk = data.ArrayLayout(signed(fmt.o_bits), fmt.sufa_macs)
        row = partial_layout(cfg)["o"].shape if partial else \
            data.ArrayLayout(signed(cfg.data_bits), d)
        super().__init__({
            "scale": In(1), "f": In(fmt.p_bits), "unload": In(1),
            "l": In(fmt.l_bits),
            "o_addr": Out(range(max(fmt.sufa_chunks, 2))), "o_data": In(chunk),
            "wb": Out(1), "wb_e": Out(range(d + 1)),
            "wb_data": Out(signed(max(fmt.o_bits, fmt.l_bits + 1))),
            "scaled": Out(1), "unloaded": Out(1),
            "row": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.cfg.formats
        d, P, R = cfg.head_dim, fmt.sufa_macs, fmt.recip_bits
        lp, lg = P.bit_length() - 1, fmt.sufa_chunks.bit_length() - 1

        # element pe addressed per cycle, a tag (valid, e, write back) alongside: sp[i], i
        # cycles on
        pe = Signal(range(d + 1))
        issue_e, write_back = Signal(), Signal()
        tag = data.StructLayout({"valid": 1, "e": range(d + 1), "wb": 1})
        sp = [Signal(tag, name=f"sp_{i}") for i in range(state_latency(cfg) + 1)]
        m.d.comb += [sp[0].valid.eq(issue_e), sp[0].e.eq(pe), sp[0].wb.eq(write_back),
                     self.o_addr.eq(pe[lp:lp + lg] if lg else 0)]
        m.d.sync += [sp[i + 1].eq(sp[i]) for i in range(len(sp) - 1)]
        with m.If(issue_e):
            m.d.sync += pe.eq(pe + 1)
        sp_x, sp_out = sp[O_READ_LATENCY], sp[-1]
        busy, early = Signal(), Signal()
        m.d.comb += busy.eq(Cat(*(t.valid for t in sp[1:])).any())
        # results that would land after a resumed walk's first O read
        late = sp[1:max(1, len(sp) - 1 - self.resume_lead)]
        m.d.comb += early.eq(Cat(*(t.valid for t in late)).any() if late else 0)

        x = Signal(signed(fmt.o_bits))
        word = self.o_data.as_value().word_select(sp_x.e[:lp], fmt.o_bits) if P > 1 \
            else self.o_data[0]
        m.d.comb += x.eq(Mux(sp_x.e == d, self.l, word))
        f_reg = Signal(max(fmt.p_bits, R + 1))
        nshift = Signal(unsigned_bits(fmt.l_bits - 1 + R))
        normalizing = Signal()
        mul_out, over, under = self._multiply(m, x, f_reg, nshift, normalizing)
        m.d.comb += [self.wb.eq(sp_out.valid & sp_out.wb), self.wb_e.eq(sp_out.e),
                     self.wb_data.eq(mul_out)]
        # the row out (normalised and saturated; partial: O unscaled, read straight from O),
        # shifted in element-wise
        new_e = x if self.partial else saturate_flagged(mul_out, over, under, cfg.data_bits)
        ew = fmt.o_bits if self.partial else cfg.data_bits
        out_tag = sp_x if self.partial else sp_out
        with m.If(out_tag.valid & ~out_tag.wb):
            m.d.sync += self.row.as_value().eq(Cat(self.row.as_value()[ew:], new_e[:ew]))

        if not self.partial:
            m.submodules.recip = recip = Reciprocal(cfg)
            m.d.comb += recip.l.eq(self.l)
        with m.FSM(name="state_pass"):
            with m.State("IDLE"):
                with m.If(self.scale):
                    m.d.sync += [f_reg.eq(self.f), normalizing.eq(0), pe.eq(0)]
                    m.next = "SCALE"
                with m.If(self.unload):
                    m.d.sync += pe.eq(0)
                    if self.partial:
                        m.next = "UNLOAD"
                    else:
                        m.d.comb += recip.start.eq(1)
                        m.next = "RECIP"
            with m.State("SCALE"):
                m.d.comb += [issue_e.eq(1), write_back.eq(1)]
                with m.If(pe == d):
                    m.next = "SCALE_END"
            with m.State("SCALE_END"):
                with m.If(~early):
                    m.d.comb += self.scaled.eq(1)
                    m.next = "IDLE"
            if not self.partial:
                with m.State("RECIP"):
                    with m.If(recip.done):
                        m.d.sync += [f_reg.eq(recip.r), nshift.eq(recip.shift),
                                     normalizing.eq(1)]
                        m.next = "UNLOAD"
            with m.State("UNLOAD"):
                m.d.comb += issue_e.eq(1)
                with m.If(pe == d - 1):
                    m.next = "UNLOAD_END"
            with m.State("UNLOAD_END"):
                with m.If(~busy):
                    m.d.comb += self.unloaded.eq(1)
                    m.d.sync += normalizing.eq(0)
                    m.next = "IDLE"
        return m

    def _multiply(self, m, x, f_reg, nshift, normalizing):
        """x·f_reg rounded half up: by 2**W (rescale), by 2**nshift (normalise: then the
        saturation flags beside it), in two halves (the shift, registered; the add) by a shift
        that is static during the pass (registered too)."""
        fmt, W = self.cfg.formats, self.cfg.formats.exp_out_bits
        m.submodules.smul = smul = MulPipe(x.shape(), unsigned(len(f_reg)))
        m.d.comb += [smul.en.eq(1), smul.a.eq(x), smul.b.eq(f_reg)]
        rshift = Signal(max(len(nshift), unsigned_bits(W)))
        m.d.sync += rshift.eq(W if self.partial else Mux(normalizing, nshift, W))
        mul_w = Signal(signed(len(smul.p) + 1), name="mul_w")
        # the rounding add only as wide as the state (a rescaled state fits its width)
        mul_out = Signal(signed(max(fmt.o_bits, fmt.l_bits + 1)), name="mul_out")
        over, under = Signal(name="mul_over"), Signal(name="mul_under")
        m.d.sync += [mul_w.eq(round_shift_start(smul.p, rshift)),
                     mul_out.eq(round_shift_finish(mul_w, len(mul_out))),
                     Cat(over, under).eq(Cat(*round_finish_range(mul_w, self.cfg.data_bits)))]
        return mul_out, over, under


class OState(wiring.Component):
    """A lane's output accumulator O[head_dim] in a memory of G = head_dim / P chunks of P
    elements (no flip-flop per element, P adders instead of head_dim).

    addr        In: the chunk read this cycle; ``data`` gives it ``O_READ_LATENCY`` = 2 cycles
                later, registered (a chunk not written since ``clear`` reads as zeros; every
                write up to the cycle before ``data`` shows is in it, the last one forwarded).
    rd_chunk    Out: the chunk ``data`` gives this cycle.
    w_addr, w_en, w_data    In: per element, write chunk ``w_addr``: the read-modify-write of
                O[chunk] += p·v[chunk] (``w_addr`` = ``rd_chunk``) and the state pass's one
                element per cycle.
    mark        In: the write makes the whole chunk valid (every element written).
    clear       In: every chunk reads as zeros from the next cycle.
    """

    def __init__(self, cfg):
        fmt = cfg.formats
        self.P, self.ob = fmt.sufa_macs, fmt.o_bits
        self.G = max(fmt.sufa_chunks, 2)              # (G = 1: one chunk used, no 0-bit address)
        chunk = data.ArrayLayout(signed(self.ob), self.P)
        super().__init__({"addr": In(range(self.G)), "data": Out(chunk),
                          "rd_chunk": Out(range(self.G)), "w_addr": In(range(self.G)),
                          "w_en": In(self.P), "w_data": In(chunk), "mark": In(1),
                          "clear": In(1)})

    def elaborate(self, platform):
        m = Module()
        width = self.P * self.ob
        m.submodules.mem = mem = Memory(shape=width, depth=self.G, init=[])
        wp = mem.write_port(granularity=self.ob)
        rp = mem.read_port(transparent_for=(wp,))
        chunk = Signal(range(self.G))                 # the chunk rp.data holds
        valid = Signal(self.G)                        # chunks written since clear
        m.d.sync += [chunk.eq(self.addr), self.rd_chunk.eq(chunk)]
        m.d.comb += [rp.addr.eq(self.addr), wp.addr.eq(self.w_addr), wp.en.eq(self.w_en),
                     wp.data.eq(self.w_data.as_value())]
        # the register after the read port takes this cycle's write to its chunk (the write
        # the memory shows only from the next read on)
        stored = Mux(valid.bit_select(chunk, 1), rp.data, 0)
        hit = self.w_addr == chunk
        for i in range(self.P):
            m.d.sync += self.data[i].eq(Mux(hit & self.w_en[i], self.w_data[i],
                                            stored[i * self.ob:(i + 1) * self.ob]))
        with m.If(self.clear):
            m.d.sync += valid.eq(0)
        with m.Elif(self.mark):
            m.d.sync += valid.eq(valid | (Const(1, self.G) << self.w_addr))
        return m
