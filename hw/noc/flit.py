"""The flit format and the NI word formats: defined once, used by the RTL, the model and the tests.

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

from amaranth import Cat
from amaranth.lib import data, enum

__all__ = ["FlitKind", "coord_layout", "flit_layout", "inject_layout", "eject_layout",
           "kind_value", "is_head", "is_tail"]


class FlitKind(enum.Enum, shape=2):
    """Position of a flit in its packet: bit 0 = head, bit 1 = tail."""

    BODY = 0b00
    HEAD = 0b01
    TAIL = 0b10
    SINGLE = 0b11

    @staticmethod
    def of(first: bool, last: bool) -> "FlitKind":
        """Return the kind of a flit that is (or is not) first and last in its packet."""
        return FlitKind(int(first) | int(last) << 1)


def coord_layout(cfg) -> data.StructLayout:
    """A node coordinate {x, y} of the mesh ``cfg``."""
    return data.StructLayout({"x": cfg.x_bits, "y": cfg.y_bits})


def flit_layout(cfg) -> data.StructLayout:
    """One flit on a link: {kind, dst, src, data}."""
    return data.StructLayout({"kind": FlitKind, "dst": coord_layout(cfg),
                              "src": coord_layout(cfg), "data": cfg.flit_bits})


def kind_value(first, last):
    """The ``kind`` bits (:class:`FlitKind`) of a flit that is (not) first / last in its packet."""
    return Cat(first, last)


def is_head(flit):
    """The head bit of a flit view (1 for HEAD and SINGLE)."""
    return flit.kind.as_value()[0]


def is_tail(flit):
    """The tail bit of a flit view (1 for TAIL and SINGLE)."""
    return flit.kind.as_value()[1]


def inject_layout(cfg) -> data.StructLayout:
    """A word a node sends: {dst, data, last}; ``dst`` is read from a packet's first word only."""
    return data.StructLayout({"dst": coord_layout(cfg), "data": cfg.flit_bits, "last": 1})


def eject_layout(cfg) -> data.StructLayout:
    """A word a node receives: {src, data, last}; ``src`` is the sender of the word's packet."""
    return data.StructLayout({"src": coord_layout(cfg), "data": cfg.flit_bits, "last": 1})
