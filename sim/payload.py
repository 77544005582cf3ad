"""Pack and unpack stream payloads: Python values <-> the flat bit vector of an Amaranth layout.

Amaranth flattens a ``lib.data`` payload into one port (fields LSB first, array element 0 lowest)
and loses signedness at the port; these helpers follow the layout so testbenches never hard-code
offsets. Values: a dict for a StructLayout, a list for an ArrayLayout, an int for a plain shape.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack"]


def pack(layout, value) -> int:
    """Return the unsigned integer holding ``value`` laid out as ``layout``."""
    if isinstance(layout, data.StructLayout):
        return sum(pack(f.shape, value[name]) << f.offset for name, f in layout)
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        if len(value) != layout.length:
            raise ValueError(f"expected {layout.length} elements, got {len(value)}")
        return sum(pack(layout.elem_shape, v) << (i * width) for i, v in enumerate(value))
    shape = Shape.cast(layout)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - (1 if shape.signed else 0))) - 1
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"value {v} does not fit {shape}")
    return v & ((1 << shape.width) - 1)


def unpack(layout, bits: int):
    """Return the Python value (dict / list / int, sign-extended) held in ``bits``."""
    if isinstance(layout, data.StructLayout):
        return {name: unpack(f.shape, bits >> f.offset) for name, f in layout}
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (i * width)) for i in range(layout.length)]
    shape = Shape.cast(layout)
    v = bits & ((1 << shape.width) - 1)
    if shape.signed and v >> (shape.width - 1):
        v -= 1 << shape.width
    return v
