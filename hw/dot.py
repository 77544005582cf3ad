"""Dot-product lanes: the exact score s = q·k of one broadcast key row for every query lane."""

from __future__ import annotations

from amaranth import Const, Module, Signal, signed

from .arith import adder_tree, tree_latency

__all__ = ["dot_latency", "dot_lanes"]


def dot_latency(head_dim: int) -> int:
    """Return the latency of :func:`dot_lanes` in enabled cycles: a product register + the tree."""
    return 1 + tree_latency(head_dim)


def dot_lanes(m: Module, queries, row, en, data_bits: int) -> list:
    """Return s[t] = Σ_e queries[t][e]·row[e] for every lane t (exact, ``score_bits`` wide).

    d signed data_bits × data_bits multipliers per lane, registered, then a pipelined adder tree;
    every register loads only while ``en``. Throughput: one row per enabled cycle.
    """
    scores = []
    for t, q in enumerate(queries):
        prods = []
        for e, (qe, ke) in enumerate(zip(q, row)):
            pr = Signal(signed(2 * data_bits), name=f"qk_l{t}_e{e}")
            with m.If(en):
                m.d.sync += pr.eq(qe * ke)
            prods.append(pr)
        scores.append(adder_tree(m, prods, Const(0, 1), en, f"dot_l{t}"))
    return scores
