"""The state pass of a SU-FA lane: O and L through one state multiplier, an element per cycle.

Model: :func:`golden.sufa.attend` (the rescale of rule 4, the normalisation of rule 5 in
``hw/rules.py``). Part of the accumulate stage (``hw/sufa_accumulate.py``), which owns O
(:class:`OState`) and L and writes the pass's results back.

Three passes over the d elements of O (and L after them, as element d):
- rescale (``scale`` with the factor ``f``): x·f rounded half up by 2**W (W = ``exp_out_bits``),
  written back; the tile merge and the max assurance;
- the final pass (``unload``), by the lane's final-pass component (:class:`Normalise` in a
  core's lanes, :class:`Unload` in a Spatial-STAR node's): its factor, then every element
  through it into the lane's ``result``:
  - :class:`Normalise`: the reciprocal of L (:class:`hw.recip.Reciprocal`), then x·r rounded
    half up by 2**shift and saturated to ``data_bits``: the O row;
  - :class:`Unload`: O as it is, with M and L: the partial state {has, m, l, o}.

Element e is addressed in one cycle (``o_addr``, its chunk of O), its value x is there
``O_READ_LATENCY`` cycles later and its result ``state_latency(cfg)`` cycles after the address.
A pass addresses one element per cycle without stalls. ``scaled`` (combinational) is high in the
cycle the walk may resume after a rescale: every result still in flight will be written before
the walk's first O read, ``resume_lead`` cycles later. ``unloaded`` (combinational) is
high in the cycle the last result of the final pass is in ``result``.
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

__all__ = ["StatePass", "OState", "O_READ_LATENCY", "state_latency", "FinalPass", "Normalise",
           "Unload"]

#: cycles from an OState address to its data: the memory's read port, then a register
O_READ_LATENCY = 2


def state_latency(cfg) -> int:
    """Cycles of the state pass from an element's address to its result (written back to O or
    L, or shifted into the row out): the O read (``O_READ_LATENCY``), the multiplier
    (:func:`hw.arith.mul_latency`), then the rounding's shift and add registers."""
    fmt = cfg.formats
    return O_READ_LATENCY + mul_latency(fmt.o_bits, max(fmt.p_bits, fmt.recip_bits + 1)) + 2


def _factor_shapes(cfg) -> tuple:
    """The state multiplier's factor and the final pass's rounding shift."""
    fmt = cfg.formats
    return (unsigned(max(fmt.p_bits, fmt.recip_bits + 1)),
            unsigned(unsigned_bits(fmt.l_bits - 1 + fmt.recip_bits)))


def _mul_out_shape(cfg):
    """The state multiplier's rounded result (a rescaled element of O or L)."""
    fmt = cfg.formats
    return signed(max(fmt.o_bits, fmt.l_bits + 1))


class FinalPass(wiring.Signature):
    """A lane's final pass, seen from the state pass (:class:`Normalise` or :class:`Unload`):

    start       In: the pass begins (the state multiplier is free); ``l`` In: L.
    ready       Out: its factor ``f`` and shift ``shift`` are valid (the state pass latches them
                and walks the elements); ``normalize`` Out: the multiplier rounds by ``shift``
                (else by 2**W).
    x, x_valid  In: an element of O (or L) as read.
    y, y_over, y_under, y_valid In: that element times ``f``, rounded (and its saturation flags).
    has, m      In: the lane's state beside O and L.
    result      Out: the lane's output (``result_layout``), complete when the pass is over.
    """

    def __init__(self, cfg, result_layout):
        fmt = cfg.formats
        f, shift = _factor_shapes(cfg)
        super().__init__({
            "start": In(1), "l": In(fmt.l_bits),
            "ready": Out(1), "f": Out(f), "shift": Out(shift), "normalize": Out(1),
            "x": In(signed(fmt.o_bits)), "x_valid": In(1),
            "y": In(_mul_out_shape(cfg)), "y_over": In(1), "y_under": In(1), "y_valid": In(1),
            "has": In(1), "m": In(signed(fmt.score_bits)),
            "result": Out(result_layout)})


def _shift_in(m, row, value, width: int) -> None:
    """Shift ``value`` (``width`` bits) into the top of ``row`` (element 0 leaves first)."""
    m.d.sync += row.as_value().eq(Cat(row.as_value()[width:], value[:width]))


class Normalise(wiring.Component):
    """A core lane's final pass: r = 1/L by :class:`hw.recip.Reciprocal` (``recip_latency``
    cycles after ``start``), then each element's x·r rounded by 2**shift, saturated to
    ``data_bits``, into the O row (``result``, lane output field ``row``)."""

    FIELD = "row"

    @staticmethod
    def result_layout(cfg):
        return data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__(FinalPass(cfg, self.result_layout(cfg)))

    def elaborate(self, platform):
        m = Module()
        b = self.cfg.data_bits
        m.submodules.recip = recip = Reciprocal(self.cfg)
        m.d.comb += [recip.l.eq(self.l), recip.start.eq(self.start), self.ready.eq(recip.done),
                     self.f.eq(recip.r), self.shift.eq(recip.shift), self.normalize.eq(1)]
        with m.If(self.y_valid):
            _shift_in(m, self.result, saturate_flagged(self.y, self.y_over, self.y_under, b), b)
        return m


class Unload(wiring.Component):
    """A Spatial-STAR node lane's final pass: no factor (``ready`` with ``start``); O as read,
    with has, M and L, into the partial state (``result``, ``partial_layout``; lane output
    field ``part``), divided by l only at the array's root (:class:`hw.normalize.Normalize`)."""

    FIELD = "part"
    result_layout = staticmethod(partial_layout)

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__(FinalPass(cfg, self.result_layout(cfg)))

    def elaborate(self, platform):
        m = Module()
        res = self.result
        m.d.comb += [self.ready.eq(self.start), res.has.eq(self.has), res.m.eq(self.m),
                     res.l.eq(self.l)]
        with m.If(self.x_valid):
            _shift_in(m, res.o, self.x, self.cfg.formats.o_bits)
        return m


class StatePass(wiring.Component):
    """The state pass (module docstring). Ports:

    scale, f        In: start a rescale by ``f`` (a weight, W fraction bits).
    unload          In: start the block's final pass (``final``: :class:`Normalise` or
                    :class:`Unload`).
    l               In: L (the final pass's input, and x of element d); ``has``, ``m`` In: the
                    rest of the lane's state (for :class:`Unload`).
    o_addr          Out: the chunk of O the pass reads this cycle; ``o_data`` In, that chunk
                    ``O_READ_LATENCY`` cycles later.
    wb, wb_e, wb_data   Out: a rescaled element to write back (``wb_e`` = d: L).
    scaled, unloaded    Out: the rescale is over (the walk may resume) / the final pass is.
    result          Out: the final pass's ``result`` (``final.result_layout``).
    """

    def __init__(self, cfg, final, resume_lead: int):
        self.cfg, self.final, self.resume_lead = cfg, final, resume_lead
        fmt = cfg.formats
        d = cfg.head_dim
        chunk = data.ArrayLayout(signed(fmt.o_bits), fmt.sufa_macs)
        super().__init__({
            "scale": In(1), "f": In(fmt.p_bits), "unload": In(1),
            "l": In(fmt.l_bits), "has": In(1), "m": In(signed(fmt.score_bits)),
            "o_addr": Out(range(max(fmt.sufa_chunks, 2))), "o_data": In(chunk),
            "wb": Out(1), "wb_e": Out(range(d + 1)),
            "wb_data": Out(_mul_out_shape(cfg)),
            "scaled": Out(1), "unloaded": Out(1),
            "result": Out(final.result_layout(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.cfg.formats
        d, P = cfg.head_dim, fmt.sufa_macs
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
        f_shape, shift_shape = _factor_shapes(cfg)
        f_reg, nshift = Signal(f_shape), Signal(shift_shape)
        normalizing = Signal()
        mul_out, over, under = self._multiply(m, x, f_reg, nshift, normalizing)
        m.d.comb += [self.wb.eq(sp_out.valid & sp_out.wb), self.wb_e.eq(sp_out.e),
                     self.wb_data.eq(mul_out)]
        # the final pass: its factor, then every element as read and multiplied
        m.submodules.final = fin = self.final(cfg)
        m.d.comb += [fin.l.eq(self.l), fin.has.eq(self.has), fin.m.eq(self.m),
                     fin.x.eq(x), fin.x_valid.eq(sp_x.valid & ~sp_x.wb),
                     fin.y.eq(mul_out), fin.y_over.eq(over), fin.y_under.eq(under),
                     fin.y_valid.eq(sp_out.valid & ~sp_out.wb), self.result.eq(fin.result)]

        def factor_ready():
            with m.If(fin.ready):
                m.d.sync += [f_reg.eq(fin.f), nshift.eq(fin.shift),
                             normalizing.eq(fin.normalize)]
                m.next = "UNLOAD"

        with m.FSM(name="state_pass"):
            with m.State("IDLE"):
                with m.If(self.scale):
                    m.d.sync += [f_reg.eq(self.f), normalizing.eq(0), pe.eq(0)]
                    m.next = "SCALE"
                with m.If(self.unload):
                    m.d.sync += pe.eq(0)
                    m.d.comb += fin.start.eq(1)
                    m.next = "RECIP"
                    factor_ready()
            with m.State("SCALE"):
                m.d.comb += [issue_e.eq(1), write_back.eq(1)]
                with m.If(pe == d):
                    m.next = "SCALE_END"
            with m.State("SCALE_END"):
                with m.If(~early):
                    m.d.comb += self.scaled.eq(1)
                    m.next = "IDLE"
            with m.State("RECIP"):
                factor_ready()
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
        W = self.cfg.formats.exp_out_bits
        m.submodules.smul = smul = MulPipe(x.shape(), unsigned(len(f_reg)))
        m.d.comb += [smul.en.eq(1), smul.a.eq(x), smul.b.eq(f_reg)]
        rshift = Signal(max(len(nshift), unsigned_bits(W)))
        m.d.sync += rshift.eq(Mux(normalizing, nshift, W))
        mul_w = Signal(signed(len(smul.p) + 1), name="mul_w")
        # the rounding add only as wide as the state (a rescaled state fits its width)
        mul_out = Signal(_mul_out_shape(self.cfg), name="mul_out")
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
