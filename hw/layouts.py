"""Stream payload layouts shared by several components."""

from __future__ import annotations

from amaranth import signed, unsigned
from amaranth.lib import data

from star.spec.formats import unsigned_bits
from star.spec.regmap import ADDR_BITS

__all__ = ["lane_row_layout", "partial_layout", "score_layout", "read_request_layout", "write_request_layout"]


def lane_row_layout(cfg) -> data.StructLayout:
    """One query (or output) row addressed to a lane: {lane, row[head_dim]} of data_bits each."""
    return data.StructLayout({
        "lane": unsigned(unsigned_bits(max(cfg.lanes - 1, 1))),
        "row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)})


def partial_layout(cfg) -> data.StructLayout:
    """The partial softmax state of one query row: {has, m, l, o[head_dim]}, o not divided by l.

    has: 1 bit (false: the row selected nothing; m, l, o are then ignored);
    m: running max, ``score_bits`` signed; l: ``l_bits`` unsigned; o: ``o_bits`` signed each.
    """
    fmt = cfg.formats
    return data.StructLayout({
        "has": 1,
        "m": signed(fmt.score_bits),
        "l": unsigned(fmt.l_bits),
        "o": data.ArrayLayout(signed(fmt.o_bits), cfg.head_dim)})


def score_layout(cfg, score_bits: int, shift_bits: int = 0) -> data.StructLayout:
    """A key's predicted scores, predictor to SADS: {score[lanes], shift[lanes], last}. Lane t's
    score is score[t] << shift[t]; its shift is constant while the lane's query row is, so one
    row's scores compare as they are. No ``shift`` with ``shift_bits`` = 0."""
    shift = {"shift": data.ArrayLayout(unsigned(shift_bits), cfg.lanes)} if shift_bits else {}
    return data.StructLayout({
        "score": data.ArrayLayout(signed(score_bits), cfg.lanes), **shift, "last": 1})


def read_request_layout(tag_bits: int) -> data.StructLayout:
    """A row read request on the AXI master: {addr, tag} (the tag comes back with the row)."""
    return data.StructLayout({"addr": ADDR_BITS, "tag": tag_bits})


def write_request_layout(cfg) -> data.StructLayout:
    """A row write request on the AXI master: {addr, row} (the row as head_dim·data_bits bits)."""
    return data.StructLayout({"addr": ADDR_BITS, "row": cfg.head_dim * cfg.data_bits})
