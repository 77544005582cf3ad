"""Shared arithmetic building blocks: a pipelined adder tree and a pipelined multiplier."""

from __future__ import annotations

from amaranth import Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["adder_tree", "tree_latency", "MulPipe", "mul_latency", "mul_split",
           "MUL_SPLIT_BITS"]


def adder_tree(m: Module, terms, carry, en, tag: str):
    """Sum ``terms`` + ``carry`` with a register after every second level and after the root.

    Registers load only while ``en``. The carry (e.g. a count of negated terms) is added at the
    root, delayed alongside the tree. Latency: ceil(log2(len(terms)) / 2) cycles (at least 1).
    """
    level = 0
    while True:
        if len(terms) > 1:
            terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                     for i in range(0, len(terms), 2)]
        level += 1
        if len(terms) == 1:
            terms = [terms[0] + carry]
        if level % 2 == 0 or len(terms) == 1:
            regs = [Signal(signed(len(t)), name=f"sum_{tag}_v{level}_{i}")
                    for i, t in enumerate(terms)]
            c = Signal(len(carry), name=f"carry_{tag}_v{level}")
            with m.If(en):
                m.d.sync += [r.eq(t) for r, t in zip(regs, terms)]
                m.d.sync += c.eq(carry)
            terms, carry = regs, c
        if len(terms) == 1:
            return terms[0]


def tree_latency(n_terms: int) -> int:
    """Return the latency in cycles of :func:`adder_tree` over ``n_terms`` terms."""
    return max(1, -(-(n_terms - 1).bit_length() // 2))


#: the widest operand a multiplier of :class:`MulPipe` takes in one cycle; beyond it the wider
#: operand is split in two halves whose partial products are summed in a cycle of their own
#: (measured with `star timing`'s flow in context: 16 x 16 meets 5 ns; 24 x 12 takes 5.35 ns,
#: 32 x 12 and 29 x 13 miss it by 0.1 ns, 24 x 24 alone takes Yosys's Booth mapping over 10
#: minutes)
MUL_SPLIT_BITS = 20


def mul_split(a_bits: int, b_bits: int) -> bool:
    """Whether :class:`MulPipe` splits an a_bits x b_bits product (``MUL_SPLIT_BITS``)."""
    return max(a_bits, b_bits) > MUL_SPLIT_BITS


def mul_latency(a_bits: int, b_bits: int, registered: bool = False) -> int:
    """Cycles of :class:`MulPipe` from its operands to the product: the operand registers (not
    with ``registered`` operands), the product register, and the partial-sum register of a
    split product."""
    return (1 if registered else 2) + mul_split(a_bits, b_bits)


class MulPipe(wiring.Component):
    """p = a·b, pipelined: the operands registered, the product registered (a product of a wide
    operand: two registered partial products of the wider operand's halves, then their
    registered sum).

    Ports: ``en`` In (every register loads only while en); ``a``, ``b`` In (shapes given,
    signed or unsigned); ``p`` Out, ``len(a) + len(b)`` bits, signed if either is.
    ``registered``: the operands come straight from registers (static or registered by the
    caller), so they are not registered again.
    Latency ``mul_latency(len(a), len(b), registered)`` enabled cycles; throughput one product
    per enabled cycle; no backpressure.
    """

    def __init__(self, a_shape, b_shape, registered: bool = False):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self.split = mul_split(a_shape.width, b_shape.width)
        self.registered = registered
        signed_p = a_shape.signed or b_shape.signed
        super().__init__({"en": In(1), "a": In(a_shape), "b": In(b_shape),
                          "p": Out(Shape(a_shape.width + b_shape.width, signed_p))})

    def elaborate(self, platform):
        m = Module()
        if self.registered:
            a, b = self.a, self.b
        else:
            a, b = Signal.like(self.a), Signal.like(self.b)
            with m.If(self.en):
                m.d.sync += [a.eq(self.a), b.eq(self.b)]
        if not self.split:
            with m.If(self.en):
                m.d.sync += self.p.eq(a * b)
            return m
        if len(b) > len(a):                         # split the wider operand
            a, b = b, a
        h = len(a) // 2
        lo = Signal(Shape(h + len(b), b.shape().signed), name="pp_lo")
        hi = Signal(Shape(len(a) - h + len(b), a.shape().signed or b.shape().signed),
                    name="pp_hi")
        with m.If(self.en):
            m.d.sync += [lo.eq(a[:h] * b), hi.eq(a[h:].as_signed() * b if a.shape().signed
                                                   else a[h:] * b)]
            m.d.sync += self.p.eq((hi << h) + lo)
        return m
