"""Shared arithmetic building blocks: a pipelined adder tree, a pipelined multiplier, and a
balanced reduction tree of signals."""

from __future__ import annotations

from amaranth import Const, Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["reduce_tree", "adder_tree", "tree_latency", "MulPipe", "mul_latency", "mul_split",
           "MUL_SPLIT_BITS", "MUL_PIECE_BITS", "MUL_PIECE_PRODUCT_BITS"]


def _pairs(level: list) -> list:
    """One level of a balanced adder tree: neighbours summed, an odd last one passed on."""
    return [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)]


def reduce_tree(m: Module, items: list, op, name: str, sync_levels=()):
    """``op`` over ``items`` as a balanced tree, each node a signal shaped like its left operand
    (an expression tree that uses its operands twice, as max does, would double at every level).
    Combinational, but for the levels in ``sync_levels`` (1 = the first above the items), which
    are registered (an odd item passed on with them): latency the number of those levels in
    the tree's depth, ceil(log2(len(items)))."""
    level = 0
    while len(items) > 1:
        level += 1
        domain = m.d.sync if level in sync_levels else m.d.comb
        nxt = []
        for i in range(0, len(items), 2):
            node = Signal.like(items[i], name=f"{name}_t{level}_{i // 2}")
            domain += node.eq(op(items[i], items[i + 1]) if i + 1 < len(items) else items[i])
            nxt.append(node)
        items = nxt
    return items[0]


def adder_tree(m: Module, terms, carries, en, tag: str):
    """Sum ``terms`` + ``carries`` with a register after every second level and after the root.

    Registers load only while ``en``. ``carries`` (e.g. one bit per negated term) are summed by a
    tree of their own beside the terms' tree, registered with it, and added at the root.
    Latency: ceil(log2(len(terms)) / 2) cycles (at least 1).
    """
    carries = list(carries) or [Const(0, 1)]
    level = 0
    while True:
        if len(terms) > 1:
            terms, carries = _pairs(terms), _pairs(carries)
        level += 1
        if len(terms) == 1:
            terms, carries = [terms[0] + sum(carries)], []
        if level % 2 == 0 or len(terms) == 1:
            regs = [Signal(signed(len(t)), name=f"sum_{tag}_v{level}_{i}")
                    for i, t in enumerate(terms)]
            cregs = [Signal(len(c), name=f"carry_{tag}_v{level}_{i}")
                     for i, c in enumerate(carries)]
            with m.If(en):
                m.d.sync += [r.eq(t) for r, t in zip(regs, terms)]
                m.d.sync += [r.eq(c) for r, c in zip(cregs, carries)]
            terms, carries = regs, cregs
        if len(terms) == 1:
            return terms[0]


def tree_latency(n_terms: int) -> int:
    """Return the latency in cycles of :func:`adder_tree` over ``n_terms`` terms."""
    return max(1, -(-(n_terms - 1).bit_length() // 2))


#: the widest operand a multiplier of :class:`MulPipe` takes in one cycle; beyond it the wider
#: operand is split into pieces of at most ``MUL_PIECE_BITS`` bits whose partial products are
#: summed in a cycle of their own (measured with `star timing`'s flow in context: 16 x 16 meets
#: 5 ns; 24 x 12 takes 5.35 ns, 19 x 16 5.13 ns, 22 x 17 5.11 ns; 24 x 24 alone takes Yosys's
#: Booth mapping over 10 minutes)
MUL_SPLIT_BITS = 20
#: the widest piece of a split operand
MUL_PIECE_BITS = 16
#: the widest partial product of a piece and the other operand (15 x 17 took 5.07 ns in the
#: default preset's lane, 15 x 13 4.54 ns)
MUL_PIECE_PRODUCT_BITS = 30


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
    operand: registered partial products of the wider operand's pieces of at most
    ``MUL_PIECE_BITS`` bits, and at most ``MUL_PIECE_PRODUCT_BITS`` with the other operand, then
    their registered sum).

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
        # pieces of at most MUL_PIECE_BITS bits and MUL_PIECE_PRODUCT_BITS with the other operand
        n = -(-len(a) // min(MUL_PIECE_BITS, max(1, MUL_PIECE_PRODUCT_BITS - len(b))))
        h = -(-len(a) // n)
        pps = []
        for i, lo in enumerate(range(0, len(a), h)):
            piece = a[lo:lo + h]
            top = lo + h >= len(a)
            if top and a.shape().signed:
                piece = piece.as_signed()
            pp = Signal(Shape(len(piece) + len(b), (top and a.shape().signed) or
                              b.shape().signed), name=f"pp{i}")
            with m.If(self.en):
                m.d.sync += pp.eq(piece * b)
            pps.append(pp << lo)
        while len(pps) > 1:                         # a balanced tree of adds
            pps = _pairs(pps)
        with m.If(self.en):
            m.d.sync += self.p.eq(pps[0])
        return m
