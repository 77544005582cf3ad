"""Parameters of the mesh network-on-chip (:mod:`hw.noc`): a frozen dataclass and its validation.

The RTL generators (:mod:`hw.noc`), the model (:mod:`golden.noc`), the testbenches and the benchmark
all read their parameters from one :class:`NocConfig`. Invalid values raise
:class:`star.spec.validate.ConfigError` with a one-line message naming the field and its
allowed range. This module imports neither amaranth nor numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .validate import check_types, require

__all__ = ["NocConfig", "MAX_DIM"]

MAX_DIM = 8  # largest mesh side (8×8 = 64 nodes)


@dataclass(frozen=True)
class NocConfig:
    """An R×C 2-D mesh of wormhole routers, one network interface (NI) per node.

    Mesh
        rows              R, routers per column (the y coordinate, 0 = north edge), in [1, 8].
        cols              C, routers per row (the x coordinate, 0 = west edge), in [1, 8];
                          rows × cols ≥ 2.
    Links and buffers
        flit_bits         payload (data) bits per flit, i.e. per word an NI carries, in [8, 512].
                          Every link is wider by the header (see :func:`hw.noc.flit.flit_layout`).
        fifo_depth        flits per router input FIFO, in [2, 64]; 2 is the least that sustains
                          one flit per cycle per link.
        max_packet_flits  longest packet in flits, in [1, 256]: the NI ends a packet after this
                          many words even without ``last``, which bounds how long one packet can
                          hold a router output.
    """

    rows: int = 4
    cols: int = 4
    flit_bits: int = 32
    fifo_depth: int = 4
    max_packet_flits: int = 16

    def __post_init__(self):
        check_types(self)

        def c(ok, field, rule):
            require(self, ok, field, rule)
        c(1 <= self.rows <= MAX_DIM, "rows", f"in [1, {MAX_DIM}]")
        c(1 <= self.cols <= MAX_DIM, "cols", f"in [1, {MAX_DIM}]")
        c(self.rows * self.cols >= 2, "cols", f"in [2, {MAX_DIM}] when rows=1 (at least 2 nodes)")
        c(8 <= self.flit_bits <= 512, "flit_bits", "in [8, 512]")
        c(2 <= self.fifo_depth <= 64, "fifo_depth", "in [2, 64]")
        c(1 <= self.max_packet_flits <= 256, "max_packet_flits", "in [1, 256]")

    @property
    def nodes(self) -> int:
        """Number of nodes, rows × cols."""
        return self.rows * self.cols

    @property
    def x_bits(self) -> int:
        """Bits of an x coordinate (at least 1)."""
        return max(1, (self.cols - 1).bit_length())

    @property
    def y_bits(self) -> int:
        """Bits of a y coordinate (at least 1)."""
        return max(1, (self.rows - 1).bit_length())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
