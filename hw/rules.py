"""The rounding and saturation rules of the datapath as Amaranth expressions, each written once.

Every hw unit that rounds or saturates calls these; :mod:`golden.rules` holds the numpy twin of
each helper (same name, same result), and ``tests/test_rules.py`` checks each pair against the
other. The rules are documented for users in ``docs/formats.md``. Widths follow Amaranth's
arithmetic: ``+`` widens by one bit, ``>> n`` by a constant narrows by n, by a signal keeps the
width; a helper that needs a named intermediate Signal takes the module ``m`` and adds its ``comb``
assignment.

round_shift(x, shift)
    Rule 1, round half up: (x + 2**(shift-1)) >> shift, an expression. ``shift`` >= 1 is an int
    or an unsigned Value (then 2**(shift-1) is ``1 << (shift - 1)`` cut to ``len(shift)`` bits).
saturate(x, bits), clamp_max(x, hi)
    Rule 2, saturation: x clamped to the ``bits``-bit two's-complement range; x clamped to at most
    ``hi`` (an unsigned value's upper bound). Expressions of x's width.
table_shift(m, x, n, name=)
    Rule 3, the exp2 unit's rounded shift by an unsigned Value n >= 0: (x + half) >> n, half =
    0 when n = 0 (no rounding), else 2**(n-1). ``half`` is a Signal called ``name``,
    ``len(x) + 1`` bits; returns the expression.
rescale(m, x, f, shift, name=)
    Rule 5, the state rescale: x·f rounded half up by 2**shift (shift = P for a rescale by an
    exp2 weight f). The product is a Signal ``prod`` of ``len(x) + len(f) + 1`` signed bits;
    returns the rounded Signal called ``name``, ``len(prod) + 1`` signed bits.
recip_normalize(m, o, r, shift, bits, name=)
    Rule 4, the reciprocal normalisation: saturate(rescale(o, r, shift), bits) with the variable
    shift >= 1 of the reciprocal unit; returns the saturated expression (``bits`` range, the
    rounded Signal's width).

:class:`hw.sufa_lane.SufaLane` has one state multiplier for both rule 4 and rule 5: it calls
``rescale`` with the shift ``Mux(normalizing, nshift, P)`` and saturates the normalised row.
"""

from __future__ import annotations

from amaranth import Mux, Signal, signed

__all__ = ["round_shift", "saturate", "clamp_max", "table_shift", "rescale", "recip_normalize"]


def round_shift(x, shift):
    """Return x / 2**shift rounded half up, (x + 2**(shift-1)) >> shift; ``shift`` >= 1 (int or
    unsigned Value)."""
    if isinstance(shift, int):
        return (x + (1 << (shift - 1))) >> shift
    return (x + (1 << (shift - 1)[:len(shift)])) >> shift


def saturate(x, bits: int):
    """Return x clamped to [-2**(bits-1), 2**(bits-1) - 1]."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(x > hi, hi, Mux(x < lo, lo, x))


def clamp_max(x, hi: int):
    """Return min(x, hi)."""
    return Mux(x > hi, hi, x)


def table_shift(m, x, n, *, name: str):
    """Return x / 2**n rounded half up for n >= 1, x itself for n = 0 (an unsigned Value n)."""
    half = Signal(len(x) + 1, name=name)
    m.d.comb += half.eq(Mux(n == 0, 0, 1 << (n - 1)[:len(n)]))
    return (x + half) >> n


def rescale(m, x, f, shift, *, name: str):
    """Return a Signal holding x·f / 2**shift rounded half up (``shift`` as :func:`round_shift`)."""
    prod = Signal(signed(len(x) + len(f) + 1))
    m.d.comb += prod.eq(x * f)
    out = Signal(signed(len(prod) + 1), name=name)
    m.d.comb += out.eq(round_shift(prod, shift))
    return out


def recip_normalize(m, o, r, shift, bits: int, *, name: str):
    """Return o·r / 2**shift rounded half up and saturated to ``bits`` (the output element)."""
    return saturate(rescale(m, o, r, shift, name=name), bits)
