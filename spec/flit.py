"""The flit format of the mesh NoC: defined once, for the RTL (``hw/noc/flit.py`` builds its
Amaranth layouts from it), the model (``golden/noc.py``) and the tests.

A flit is one link transfer::

    flit = {kind: FlitKind (2 bits), dst: {x, y}, src: {x, y}, data: flit_bits}   (LSB first)

``kind`` bit 0 marks the head of a packet and bit 1 its tail, so a one-flit packet is ``SINGLE``
(head and tail). The header (``dst``, ``src``) travels beside the data on its own wires, so every
flit carries one data word and a packet of n words is n flits (no header-only flit). The header is
defined in head flits only: routers route on the head's ``dst`` and ignore the header of body and
tail flits, which follow the path the head reserved (wormhole). The NI leaves the inject word's
header on every flit, so no register holds it.

Coordinates: x = column (0 = west edge, grows east), y = row (0 = north edge, grows south); the
node index is ``y * cols + x``.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["FlitKind", "KIND_BITS", "HEAD_BIT", "TAIL_BIT"]

KIND_BITS = 2       # width of the kind field
HEAD_BIT = 0        # kind bit set on the first flit of a packet
TAIL_BIT = 1        # kind bit set on the last flit of a packet


class FlitKind(IntEnum):
    """Position of a flit in its packet: bit 0 = head, bit 1 = tail."""

    BODY = 0b00
    HEAD = 1 << HEAD_BIT
    TAIL = 1 << TAIL_BIT
    SINGLE = HEAD | TAIL

    @staticmethod
    def of(first: bool, last: bool) -> "FlitKind":
        """Return the kind of a flit that is (or is not) first and last in its packet."""
        return FlitKind(int(first) << HEAD_BIT | int(last) << TAIL_BIT)
