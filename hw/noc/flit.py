"""Amaranth layouts of a flit and of the NI words, from the format in :mod:`star.spec.flit`."""

from __future__ import annotations

from amaranth import Cat
from amaranth.lib import data, enum

from star.spec import flit as spec

__all__ = ["FlitKind", "coord_layout", "flit_layout", "inject_layout", "eject_layout",
           "kind_value", "is_head", "is_tail"]


class FlitKind(enum.Enum, shape=spec.KIND_BITS):
    """:class:`star.spec.flit.FlitKind` as an Amaranth shape (the same members and values)."""

    BODY = spec.FlitKind.BODY.value
    HEAD = spec.FlitKind.HEAD.value
    TAIL = spec.FlitKind.TAIL.value
    SINGLE = spec.FlitKind.SINGLE.value


def coord_layout(cfg) -> data.StructLayout:
    """A node coordinate {x, y} of the mesh ``cfg``."""
    return data.StructLayout({"x": cfg.x_bits, "y": cfg.y_bits})


def flit_layout(cfg) -> data.StructLayout:
    """One flit on a link: {kind, dst, src, data}."""
    return data.StructLayout({"kind": FlitKind, "dst": coord_layout(cfg),
                              "src": coord_layout(cfg), "data": cfg.flit_bits})


def kind_value(first, last):
    """The ``kind`` bits (:class:`FlitKind`) of a flit that is (not) first / last in its packet."""
    assert (spec.HEAD_BIT, spec.TAIL_BIT) == (0, 1)
    return Cat(first, last)


def is_head(flit):
    """The head bit of a flit view (1 for HEAD and SINGLE)."""
    return flit.kind.as_value()[spec.HEAD_BIT]


def is_tail(flit):
    """The tail bit of a flit view (1 for TAIL and SINGLE)."""
    return flit.kind.as_value()[spec.TAIL_BIT]


def inject_layout(cfg) -> data.StructLayout:
    """A word a node sends: {dst, data, last}; ``dst`` is read from a packet's first word only."""
    return data.StructLayout({"dst": coord_layout(cfg), "data": cfg.flit_bits, "last": 1})


def eject_layout(cfg) -> data.StructLayout:
    """A word a node receives: {src, data, last}; ``src`` is the sender of the word's packet."""
    return data.StructLayout({"src": coord_layout(cfg), "data": cfg.flit_bits, "last": 1})
