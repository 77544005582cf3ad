"""The rounding and saturation rules of the datapath as Amaranth expressions, each written once.

Every hw unit that rounds or saturates calls these; :mod:`golden.rules` holds the numpy twin of
each helper (same name, same result), and ``tests/test_rules.py`` checks each pair against the
other. The rules are documented for users in ``docs/formats.md``. Expressions have Amaranth's
widths (wide enough for every result); a helper that needs a named intermediate Signal takes the
module ``m``, adds that Signal's ``comb`` assignment and takes its name (``name=``), so each unit
keeps its own signal names in the generated Verilog.

round_shift(x, shift)
    Rule 1, round half up: (x + 2**(shift-1)) >> shift, an expression. ``shift`` >= 1 is an int
    or an unsigned Value (then 2**(shift-1) is ``1 << (shift - 1)`` cut to ``len(shift)`` bits).
    Used by the 4-bit operands of ``hw/mac4.py``; its two halves ``round_shift_start`` (the
    shift, x / 2**(shift-1) truncated) and ``round_shift_finish`` (a one-bit rounding add) with
    a pipeline register between them by rules 4 and 5.
saturate(x, bits), clamp_max(x, hi)
    Rule 2, saturation: x clamped to the ``bits``-bit two's-complement range (``hw/mac4.py``, the
    output row of ``hw/sufa_state.py`` and ``hw/normalize.py``); x clamped to at most ``hi``
    (the exponent u at u_max in ``hw/exp2.py``, the runtime k at K in ``hw/sads.py``).
    Expressions of x's width. ``saturate`` of a rounded value in pipelined form:
    ``round_finish_range`` (the out-of-range flags, from the value before its rounding add),
    ``round_shift_finish(w, width)`` (the add only as wide as the bits kept) and
    ``saturate_flagged`` (``hw/sufa_state.py``, ``hw/normalize.py``); ``tests/test_rules.py``
    checks them against the golden ``saturate`` of ``round_shift``.
table_shift(m, x, n, name=)
    Rule 3, the exp2 unit's rounded shift by an unsigned Value n >= 0: (x + half) >> n, half =
    0 when n = 0 (no rounding), else 2**(n-1); computed as the shift (x << 1) >> n (a Signal
    called ``name``, ``len(x) + 1`` bits) and a one-bit rounding add; returns the expression.
    ``hw/exp2.py`` uses it twice: for u in its two halves, ``table_shift_start`` (the shift)
    and ``table_shift_finish`` (the add), with a pipeline register between them; for p whole.
Rule 5, the state rescale: x·f rounded half up by 2**shift (shift = P for a rescale by an
    exp2 weight f), is ``round_shift`` of the product of a :class:`hw.arith.MulPipe`, in its two
    halves (``hw/sufa_state.py``'s state multiplier, ``hw/merge.py``).
Rule 4, the reciprocal normalisation: ``saturate`` of rule 5 by the variable shift >= 1 of the
    reciprocal unit (``hw/sufa_state.py``, ``hw/normalize.py``).

:class:`hw.sufa_state.StatePass` has one state multiplier for both rule 4 and rule 5: it rounds
its product by ``Mux(normalizing, nshift, W)`` (W = exp_out_bits) and saturates the normalised row.
"""

from __future__ import annotations

from amaranth import Cat, Const, Mux, Signal

__all__ = ["round_shift", "round_shift_start", "round_shift_finish", "round_finish_range",
           "saturate", "saturate_flagged", "clamp_max", "table_shift", "table_shift_start",
           "table_shift_finish"]


def round_shift(x, shift):
    """Return x / 2**shift rounded half up, (x + 2**(shift-1)) >> shift; ``shift`` >= 1 (int or
    unsigned Value). Computed as :func:`round_shift_finish` of :func:`round_shift_start`."""
    return round_shift_finish(round_shift_start(x, shift))


def round_shift_start(x, shift):
    """The first half of :func:`round_shift`: x / 2**(shift - 1) truncated (floor), the shift
    alone (a pipeline may register it before the add)."""
    return (x << 1) >> shift


def round_shift_finish(w, width: int | None = None):
    """The second half of :func:`round_shift`: (w + 1) >> 1, a one-bit rounding add
    (floor((floor(x / 2**(s-1)) + 1) / 2) = floor((x + 2**(s-1)) / 2**s), negative x too).

    With ``width``: only the result's low ``width`` bits (signed), from an add as narrow (w's
    bits above ``width`` never reach them) — for a result known to fit, or saturated by
    :func:`round_finish_range`'s flags (:func:`saturate_flagged`)."""
    if width is not None:
        return ((w[:width + 1] + 1) >> 1)[:width].as_signed()
    return (w + 1) >> 1


def round_finish_range(w, bits: int):
    """(over, under): whether :func:`round_shift_finish` (w) lies above / below the ``bits``-bit
    two's-complement range, decided from w without the rounding add: floor((w + 1) / 2) >
    2**(bits-1) - 1 iff w >= 2**bits - 1, and < -2**(bits-1) iff w < -2**bits - 1."""
    return w >= (1 << bits) - 1, w < -(1 << bits) - 1


def saturate_flagged(x, over, under, bits: int):
    """x clamped to the ``bits``-bit two's-complement range by flags computed elsewhere (x itself
    may be a narrow copy of the value the flags were computed from)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(over, hi, Mux(under, lo, x))


def saturate(x, bits: int):
    """Return x clamped to [-2**(bits-1), 2**(bits-1) - 1]."""
    return saturate_flagged(x, x > (1 << (bits - 1)) - 1, x < -(1 << (bits - 1)), bits)


def clamp_max(x, hi: int):
    """Return min(x, hi)."""
    return Mux(x > hi, hi, x)


def table_shift(m, x, n, *, name: str):
    """Return x / 2**n rounded half up for n >= 1, x itself for n = 0 (an unsigned Value n).

    Computed as :func:`table_shift_finish` of :func:`table_shift_start`: the shift first (a
    Signal called ``name``), then a one-bit rounding add, so a pipeline may put a register
    between the two halves and the adder is as narrow as the shifted value."""
    w = Signal(len(x) + 1, name=name)
    m.d.comb += w.eq(table_shift_start(x, n))
    return table_shift_finish(w, n != 0)


def table_shift_start(x, n):
    """The first half of :func:`table_shift`: x / 2**(n - 1) truncated, (x << 1) >> n."""
    return Cat(Const(0, 1), x) >> n


def table_shift_finish(w, rounds):
    """The second half of :func:`table_shift`: (w + rounds) >> 1, ``rounds`` = (n != 0).
    (For n >= 1, (floor(x / 2**(n-1)) + 1) >> 1 = floor((x + 2**(n-1)) / 2**n); for n = 0 it
    is x.)"""
    return (w + rounds) >> 1
