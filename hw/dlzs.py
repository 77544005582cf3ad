"""DLZS predictor: leading-one encoders for the queries and a shift-add array scoring keys.

Model: :mod:`golden.dlzs` (bit-exact). Formats: :class:`gen.formats.Formats`.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from gen.formats import Formats, unsigned_bits

__all__ = ["lzc8", "lz_code_layout", "lz_encode", "DlzsPredictor"]


def lzc8(m: Module, byte) -> tuple[Signal, Signal]:
    """Count leading zeros of an 8-bit value: return (all_zero, count), count in [0, 7]."""
    zero = Signal(name="lzc_zero")
    count = Signal(3, name="lzc_count")
    m.d.comb += zero.eq(byte == 0)
    with m.Switch(byte):
        for lz in range(8):
            # '-' bits are don't-care: the first one at bit 7 - lz decides the count
            with m.Case("0" * lz + "1" + "-" * (7 - lz)):
                m.d.comb += count.eq(lz)
    return zero, count


def lz_code_layout(fmt: Formats) -> data.StructLayout:
    """The log-domain code of one query element: q ≈ (-1)**neg · 2**pos, or 0 when ``zero``."""
    return data.StructLayout({"neg": 1, "zero": 1, "pos": fmt.lz_pos_bits})


def lz_encode(m: Module, q, fmt: Formats):
    """Build the configurable leading-zero encoder for one query element; return its code (lz_code_layout).

    As in SOFA, an 8-bit element uses one 8-bit leading-zero counter; a 16-bit element uses two
    whose all-zero flags combine: LZ16 = upper_all_zero ? 8 + lz(lower) : lz(upper).
    pos = data_bits - 1 - LZ, plus one under ``nearest`` rounding when the next bit is set.
    """
    b = fmt.data_bits
    mag = Signal(b, name="lz_mag")
    m.d.comb += mag.eq(abs(q))
    if b == 8:
        zero, lz = lzc8(m, mag)
    else:
        z_hi, c_hi = lzc8(m, mag[8:16])
        z_lo, c_lo = lzc8(m, mag[0:8])
        zero = Signal(name="lz_zero")
        lz = Signal(5, name="lz16")
        m.d.comb += [zero.eq(z_hi & z_lo), lz.eq(Mux(z_hi, 8 + c_lo, c_hi))]
    pos = Signal(fmt.lz_pos_bits, name="lz_pos")
    m.d.comb += pos.eq(b - 1 - lz)
    code = Signal(lz_code_layout(fmt), name="lz_code")
    m.d.comb += [code.neg.eq(q < 0), code.zero.eq(zero), code.pos.eq(pos)]
    if fmt.cfg.dlzs_rounding == "nearest":
        below = Signal(name="lz_below")
        m.d.comb += below.eq(Mux(pos == 0, 0, (mag >> (pos - 1)[:len(pos)])[0]))
        m.d.comb += code.pos.eq(pos + below)
    return code


class DlzsPredictor(wiring.Component):
    """DLZS shift-add array: predicted scores of ``pred_keys`` keys for every query lane per cycle.

    Ports
        q       In stream {lane, row[d]}: a query row for one lane; encoded once (d leading-zero
                encoders shared by the lanes) and held until the lane is loaded again. Always
                ready; loading a lane while keys are in flight changes the scores of the keys that
                have not yet entered the array.
        k       In stream {keys[P][d], last}: P key rows; ``last`` is passed through untouched.
        a       Out stream {score[T][P], last}: Â = Σ_d sign·((|k| >> shift) << pos), ``pred_bits``
                signed each, T = lanes.
    Throughput: one k transfer per cycle. Latency: ``latency`` cycles from k to a (the adder tree
    has a register after every two levels). Backpressure: the whole pipeline stalls while ``a`` is
    valid and not ready (``k.ready`` = ``a.ready`` or the output register is empty).
    Each term adds its sign as a carry: Σ ±x = Σ (x XOR s) + Σ s (the sign never re-toggles x).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.fmt = fmt = Formats(cfg)
        T, P, d, b = cfg.lanes, cfg.pred_keys, cfg.head_dim, cfg.data_bits
        self.levels = fmt.log2_d
        self.latency = max(1, -(-self.levels // 2))
        super().__init__({
            "q": In(stream.Signature(self.query_layout(cfg))),
            "k": In(stream.Signature(self.key_layout(cfg))),
            "a": Out(stream.Signature(self.score_layout(cfg))),
        })

    @staticmethod
    def query_layout(cfg) -> data.StructLayout:
        """The q stream payload."""
        return data.StructLayout({
            "lane": unsigned(unsigned_bits(max(cfg.lanes - 1, 1))),
            "row": data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim)})

    @staticmethod
    def key_layout(cfg) -> data.StructLayout:
        """The k stream payload."""
        return data.StructLayout({
            "keys": data.ArrayLayout(data.ArrayLayout(signed(cfg.data_bits), cfg.head_dim),
                                     cfg.pred_keys),
            "last": 1})

    @staticmethod
    def score_layout(cfg) -> data.StructLayout:
        """The a stream payload."""
        pred = signed(Formats(cfg).pred_bits)
        return data.StructLayout({
            "score": data.ArrayLayout(data.ArrayLayout(pred, cfg.pred_keys), cfg.lanes),
            "last": 1})

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.fmt
        T, P, d = cfg.lanes, cfg.pred_keys, cfg.head_dim
        kbits = cfg.dlzs_k_bits
        xbits = kbits + fmt.data_bits - 1           # |term| magnitude width
        pred = fmt.pred_bits

        # ---- query side: encode one row per cycle into the lane's code registers ----------------
        codes = [[Signal(lz_code_layout(fmt), name=f"code_l{t}_e{e}") for e in range(d)] for t in range(T)]
        m.d.comb += self.q.ready.eq(1)
        enc = [lz_encode(m, self.q.payload.row[e], fmt) for e in range(d)]
        with m.If(self.q.valid):
            for t in range(T):
                with m.If(self.q.payload.lane == t):
                    m.d.sync += [codes[t][e].eq(enc[e]) for e in range(d)]

        # ---- pipeline control: global stall ------------------------------------------------------
        en = Signal()
        valid = [Signal(name=f"valid_{i}") for i in range(self.latency)]
        last = [Signal(name=f"last_{i}") for i in range(self.latency)]
        m.d.comb += [en.eq(~self.a.valid | self.a.ready), self.k.ready.eq(en)]
        with m.If(en):
            m.d.sync += [valid[0].eq(self.k.valid), last[0].eq(self.k.payload.last)]
            m.d.sync += [valid[i].eq(valid[i - 1]) for i in range(1, self.latency)]
            m.d.sync += [last[i].eq(last[i - 1]) for i in range(1, self.latency)]
        m.d.comb += [self.a.valid.eq(valid[-1]), self.a.payload.last.eq(last[-1])]

        # ---- key side: |k| truncated once per key element, shared by the lanes -------------------
        for p in range(P):
            kmag, kneg = [], []
            for e in range(d):
                kv = self.k.payload.keys[p][e]
                mag = Signal(kbits, name=f"kmag_k{p}_e{e}")
                neg = Signal(name=f"kneg_k{p}_e{e}")
                m.d.comb += [mag.eq(abs(kv) >> fmt.dlzs_k_shift), neg.eq(kv < 0)]
                kmag.append(mag)
                kneg.append(neg)
            for t in range(T):
                terms, signs = [], []
                for e in range(d):
                    code = codes[t][e]
                    x = Signal(xbits + 1, name=f"x_l{t}_k{p}_e{e}")
                    s = Signal(name=f"s_l{t}_k{p}_e{e}")
                    m.d.comb += [
                        s.eq(~code.zero & (code.neg ^ kneg[e])),
                        x.eq(Mux(code.zero, 0, kmag[e] << code.pos) ^ s.replicate(xbits + 1)),
                    ]
                    terms.append(x.as_signed())
                    signs.append(s)
                carry = Signal(unsigned_bits(d), name=f"carry_l{t}_k{p}")
                m.d.comb += carry.eq(sum(signs))
                total = self._tree(m, terms, carry, en, f"l{t}_k{p}")
                m.d.comb += self.a.payload.score[t][p].eq(total)
        return m

    def _tree(self, m, terms, carry, en, tag):
        """Sum ``terms`` + ``carry``; register after every second level and after the root.

        The carry (the count of negative terms) is added at the root, delayed alongside the tree.
        """
        level = 0
        while len(terms) > 1:
            terms = [terms[i] + terms[i + 1] for i in range(0, len(terms), 2)]
            level += 1
            if len(terms) == 1:
                terms = [terms[0] + carry]
            if level % 2 == 0 or len(terms) == 1:
                regs = [Signal(signed(len(t)), name=f"sum_{tag}_v{level}_{i}")
                        for i, t in enumerate(terms)]
                c = Signal(len(carry), name=f"carry_{tag}_v{level}")
                with m.If(en):
                    m.d.sync += [r.eq(t) for r, t in zip(regs, terms)]
                    m.d.sync += c.eq(carry)
                terms, carry = regs, c
        return terms[0]
