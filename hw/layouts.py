"""Stream payload layouts shared by several components."""

from __future__ import annotations

from amaranth import signed, unsigned
from amaranth.lib import data

from star.spec.formats import unsigned_bits

__all__ = ["lane_row_layout"]


def lane_row_layout(cfg) -> data.StructLayout:
    """One query (or output) row addressed to a lane: {lane, row[head_dim]} of data_bits each."""
    return data.StructLayout({
        "lane": unsigned(unsigned_bits(max(cfg.lanes - 1, 1))),
        "row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)})
