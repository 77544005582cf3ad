"""Shared arithmetic building blocks: a pipelined adder tree."""

from __future__ import annotations

from amaranth import Module, Signal, signed

__all__ = ["adder_tree", "tree_latency"]


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
