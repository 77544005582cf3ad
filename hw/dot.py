"""Dot product: the exact score s = q·k of one query lane and a broadcast key row."""

from __future__ import annotations

from amaranth import Const, Module, Signal, signed

from .arith import adder_tree, tree_latency

__all__ = ["dot_latency", "dot_product"]


def dot_latency(head_dim: int) -> int:
    """Return the latency of :func:`dot_product` in enabled cycles: a product register + the tree."""
    return 1 + tree_latency(head_dim)


def dot_product(m: Module, q, row, en, data_bits: int):
    """Return s = Σ_e q[e]·row[e] (exact, ``score_bits`` wide) for one query lane.

    d signed data_bits × data_bits multipliers, registered, then a pipelined adder tree; every
    register loads only while ``en``. Throughput: one row per enabled cycle.
    """
    prods = []
    for e, (qe, ke) in enumerate(zip(q, row)):
        pr = Signal(signed(2 * data_bits), name=f"qk_e{e}")
        with m.If(en):
            m.d.sync += pr.eq(qe * ke)
        prods.append(pr)
    return adder_tree(m, prods, Const(0, 1), en, "dot")
