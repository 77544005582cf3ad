"""Fixed-point formats of the STAR datapath: every width and constant, defined once.

``hw/`` reads the widths to size its signals, ``golden/`` to size its integers. The rounding and
saturation rules live beside their users, each written once per side: ``hw/rules.py`` (Amaranth)
and ``golden/rules.py`` (numpy), checked against each other by ``tests/test_rules.py``. The formats
and rules are documented for users in ``docs/formats.md``. This module imports neither amaranth
nor numpy.
"""

from __future__ import annotations

import math
from functools import cached_property

__all__ = ["Formats", "signed_bits", "unsigned_bits", "encode_score_scale", "SCALE_SHIFT_MAX"]


def unsigned_bits(max_value: int) -> int:
    """Bits needed to hold every integer in [0, max_value]."""
    return max(1, int(max_value).bit_length())


def signed_bits(max_abs: int) -> int:
    """Bits of a two's-complement signal holding every integer in [-max_abs, max_abs]."""
    return unsigned_bits(max_abs) + 1


#: fraction bits of the bit-serial front's alpha (the guard offset's share of the radius, 0 .. 1.0
#: as 0 .. 2**ALPHA_FRAC_BITS; golden.bitserial.guard_offset)
ALPHA_FRAC_BITS = 8

#: the largest score-scale shift (SCALE_SHIFT): the scale c = mantissa·2**-shift, shift in
#: [exp_frac_bits, SCALE_SHIFT_MAX]; the hardware's shift register is 6 bits
SCALE_SHIFT_MAX = 63


def encode_score_scale(c: float, scale_bits: int, exp_frac_bits: int) -> tuple[int, int]:
    """Encode the positive real score scale ``c`` as (mantissa, shift) with c ≈ mantissa·2**-shift.

    ``c`` converts an integer score difference into base-2 exponent units:
    c = scale_q · scale_k · softmax_scale · log2(e). The mantissa is normalised to
    [2**(scale_bits-1), 2**scale_bits) and rounded to nearest; the shift lies in
    [exp_frac_bits, SCALE_SHIFT_MAX] (so the hardware only shifts right). Raises ValueError outside that range.
    """
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"score scale must be a positive finite number, not {c!r}")
    shift = scale_bits - 1 - math.floor(math.log2(c))
    mant = round(c * 2.0 ** shift)
    if mant >= 1 << scale_bits:          # rounding carried into the next power of two
        mant >>= 1
        shift -= 1
    lo, hi = 2.0 ** (scale_bits - 1 - SCALE_SHIFT_MAX), 2.0 ** (scale_bits - exp_frac_bits)
    if not exp_frac_bits <= shift <= SCALE_SHIFT_MAX:
        raise ValueError(f"score scale must be in [{lo:.3g}, {hi:.3g}), not {c:.6g}")
    return mant, shift


class Formats:
    """Widths and constants derived from a :class:`star.spec.config.StarConfig`.

    Integers (two's complement unless marked unsigned):

    ============== ===================================================================
    q, k, v, o     ``data_bits`` signed; quantised symmetric, so inputs lie in [-qmax, qmax]
                   but the hardware accepts the full range including -2**(data_bits-1).
    LZ code        per query element: sign and ``dlzs_terms`` terms, each a zero flag and the
                   position of a leading one (0..data_bits-1): term 1 of |q|, term 2 of the
                   residual |q| - 2**pos_1; ``dlzs_rounding`` applies to the last term. Stored
                   as ``dlzs_shift_bits`` shifts relative to the row base = max(row's largest
                   first-term position - (window - 1), 0); terms below the base count as zero.
    DLZS k operand |k| >> (data_bits - dlzs_k_bits): ``dlzs_k_bits`` unsigned magnitude + sign.
    Â (predicted)  ``pred_bits`` signed: (Σ_d sign · Σ_t (kmag << shift_t)) << base. Never
                   leaves the chip. The predictor gives it as the sum (``pred_sum_bits``
                   signed) and the row base (``pred_shift_bits`` unsigned, at most
                   ``pred_shift_max``; no field when the window spans every position and the
                   base is always 0); SADS compares the sums of one row, whose base is shared.
    s (exact)      ``score_bits`` signed: q·k.
    u              unsigned exponent, ``exp_frac_bits`` fraction bits: u ≈ (m - s)·c ≥ 0,
                   saturated at ``u_max`` (where the weight is already 0).
    p              unsigned, ``exp_out_bits`` fraction bits, value in [0, 1]: ``p_bits`` wide.
    l              unsigned sum of p over at most ``max_seq`` keys: ``l_bits``.
    o              signed sum of p·v: ``o_bits``.
    r              unsigned normalised reciprocal of l, ``recip_bits`` fraction bits, in
                   [2**(recip_bits-1), 2**recip_bits]: ``recip_bits + 1`` wide.
    ============== ===================================================================
    """

    def __init__(self, cfg):
        self.cfg = cfg
        b = cfg.data_bits
        self.data_bits = b
        self.qmax = (1 << (b - 1)) - 1
        self.qmin = -(1 << (b - 1))
        self.log2_d = cfg.head_dim.bit_length() - 1
        self.log2_tile = cfg.tile.bit_length() - 1          # bits of a key index within a tile
        self.log2_seq = (cfg.max_seq - 1).bit_length()
        # DLZS
        self.lz_pos_bits = unsigned_bits(b - 1)
        self.dlzs_window = 1 << cfg.dlzs_shift_bits           # leading-one positions kept
        self.dlzs_k_shift = b - cfg.dlzs_k_bits
        kmag_max = (1 << (b - 1)) >> self.dlzs_k_shift
        self.dlzs_term_max = kmag_max << (b - 1)         # |q̂| <= 2**(b-1) for 1 or 2 terms
        # |term| before the row shift: two terms of equal shift (a rounded residual) need a bit more
        self.dlzs_x_bits = cfg.dlzs_k_bits + self.dlzs_window - 1 + (cfg.dlzs_terms - 1)
        self.pred_bits = signed_bits(cfg.head_dim * self.dlzs_term_max)
        # the sum before the row's base shift: a term's shifts are below the window (two terms
        # of equal shift at most double it) and its weight never exceeds |q| <= 2**(b-1)
        self.pred_sum_bits = signed_bits(cfg.head_dim * (kmag_max << min(
            self.dlzs_window - 1 + cfg.dlzs_terms - 1, b - 1)))
        # the base: the row's top first-term position (at most b - 1) less window - 1
        self.pred_shift_max = max(b - self.dlzs_window, 0)
        self.pred_shift_bits = unsigned_bits(self.pred_shift_max) if self.pred_shift_max else 0
        # radius_off: the SADS radius that clips nothing (every score difference is below it);
        # radius_max: the largest RADIUS register value, below 0xFFFFFFFF (off) when the
        # predicted scores are 32 bits or wider (found by make regress: it was truncated)
        self.radius_off = (1 << self.pred_bits) - 1
        self.radius_max = min(self.radius_off, (1 << 32) - 2)
        # 4-bit multiply predictor (comparison only)
        self.mac4_shift = b - 4
        self.mac4_bits = signed_bits(cfg.head_dim * 64)
        # exact scores
        self.score_bits = signed_bits(cfg.head_dim * (1 << (2 * b - 2)))
        # exp2 unit
        self.exp_frac_bits = cfg.exp_frac_bits
        self.exp_out_bits = cfg.exp_out_bits
        self.p_one = 1 << cfg.exp_out_bits
        self.p_bits = cfg.exp_out_bits + 1
        self.u_max = (cfg.exp_out_bits + 2) << cfg.exp_frac_bits
        self.u_bits = unsigned_bits(self.u_max)
        self.scale_bits = cfg.scale_bits
        self.scale_shift_bits = SCALE_SHIFT_MAX.bit_length()
        # accumulators
        self.l_bits = unsigned_bits(cfg.max_seq * self.p_one)
        self.o_bits = signed_bits(cfg.max_seq * self.p_one * (1 << (b - 1)))
        self.recip_bits = cfg.recip_bits
        # SU-FA lanes: P MACs per lane walk a key's row in G = d / P chunks of P elements; the
        # tile stores serve the lanes' chunk reads through `sufa_ports` full-row ports per
        # store (hw/tilebuf.py)
        self.sufa_macs = cfg.sufa_macs
        self.sufa_chunks = cfg.head_dim // cfg.sufa_macs
        # the DLZS array: shift-add terms per lane per cycle (a key takes pred_cycles cycles)
        self.pred_width = cfg.head_dim // cfg.pred_cycles
        self.sufa_ports = -(-cfg.lanes // self.sufa_chunks)
        # memory layout (AXI4 master): one row = row_beats bus beats, one burst
        self.row_bytes = cfg.head_dim * b // 8
        self.bus_bytes = cfg.axi_data_bits // 8
        self.row_beats = self.row_bytes // self.bus_bytes
        self.row_align = self.row_bytes           # bases and strides: multiples of this
        # the widest multiplications: o·p (rescale, merge), o·r (normalise), (m - s)·scale
        self.widest_product = max(self.o_bits + self.p_bits, self.o_bits + cfg.recip_bits + 1,
                                  self.score_bits + 1 + cfg.scale_bits)

    def radius_value(self, radius: int) -> int:
        """Return the radius SADS applies: ``-1`` (off) becomes :attr:`radius_off`."""
        return self.radius_off if radius < 0 else radius

    @cached_property
    def exp2_table(self) -> tuple[int, ...]:
        """The exp2 table: entry f is round(2**(-f / 2**E) · 2**P) for f in [0, 2**E).

        Entry 0 is exactly 1.0 (2**P); every entry lies in (2**(P-1), 2**P].
        """
        e, p = self.exp_frac_bits, self.exp_out_bits
        return tuple(math.floor(2.0 ** (p - f / (1 << e)) + 0.5) for f in range(1 << e))

    def to_dict(self) -> dict:
        """Return the widths as a plain dict (for the manifest and the docs)."""
        keys = ["data_bits", "lz_pos_bits", "dlzs_window", "dlzs_k_shift", "dlzs_x_bits", "pred_bits",
                "pred_sum_bits", "pred_shift_max", "pred_shift_bits", "mac4_bits",
                "score_bits", "exp_frac_bits", "exp_out_bits", "p_bits", "u_max", "u_bits",
                "scale_bits", "scale_shift_bits", "l_bits", "o_bits", "recip_bits",
                "sufa_macs", "sufa_chunks", "sufa_ports", "pred_width",
                "row_bytes", "bus_bytes", "row_beats", "row_align"]
        return {k: getattr(self, k) for k in keys}
