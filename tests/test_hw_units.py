"""Fast amaranth.sim unit tests of RTL building blocks (no external tools)."""

import numpy as np
import pytest
from amaranth import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from star.golden import dlzs, mac4
from star.hw.dlzs import lz_code_layout, lz_encode
from star.hw.mac4 import to_int4
from star.spec.config import StarConfig, preset
from star.spec.formats import Formats


def simulate(dut, bench, clock=True):
    """Run the testbench coroutine ``bench`` on ``dut`` in amaranth.sim (with a clock unless
    the unit is combinational)."""
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


class Encoders(wiring.Component):
    """One leading-zero encoder and one int4 converter on a single input."""

    def __init__(self, fmt):
        self.fmt = fmt
        super().__init__({"q": In(signed(fmt.data_bits)), "code": Out(lz_code_layout(fmt)),
                          "i4": Out(signed(4))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.code.eq(lz_encode(m, self.q, self.fmt)),
                     self.i4.eq(to_int4(m, self.q, self.fmt, "q"))]
        return m


def sweep(fmt, values):
    dut = Encoders(fmt)
    got = []

    async def bench(ctx):
        for v in values:
            ctx.set(dut.q, int(v))
            code = ctx.get(dut.code)
            terms = fmt.cfg.dlzs_terms
            got.append([code.neg] + [code.zero[t] for t in range(terms)]
                       + [code.pos[t] for t in range(terms)] + [ctx.get(dut.i4)])

    simulate(dut, bench, clock=False)
    return np.array(got)


@pytest.mark.parametrize("terms", [1, 2])
@pytest.mark.parametrize("bits, rounding", [(8, "floor"), (8, "nearest"), (16, "floor"),
                                            (16, "nearest")])
def test_encoders_exhaustive(bits, rounding, terms):
    """Every input value (all 2**16 for 16-bit data) against the golden encoder and int4 rule;
    with two terms also the residual's code."""
    fmt = Formats(StarConfig(**{**preset("tiny").to_dict(), "data_bits": bits,
                                "dlzs_k_bits": bits, "dlzs_rounding": rounding,
                                "dlzs_terms": terms}))
    values = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    got = sweep(fmt, values)
    neg, zero, pos = dlzs.lz_encode(values, fmt)
    assert np.array_equal(got[:, 0], neg)
    assert np.array_equal(got[:, 1:1 + terms], zero)
    hw_pos = got[:, 1 + terms:1 + 2 * terms]
    assert np.array_equal(hw_pos[~zero], pos[~zero])       # a zero term's position is unused
    assert np.array_equal(got[:, -1], mac4.to_int4(values, fmt))


def run_selector(cfg, score_bits, tiles, k, radius, seed, stall=True, timing=None):
    """Stream (scores [T, n], mask [T, n]) tiles through SadsSelector in amaranth.sim.

    The output is stalled every third cycle (unless not ``stall``); returns the list of (index,
    count) outputs. ``timing``: a list that gets, per tile, the cycles from its last input
    transfer to its lists' first cycle on ``o``."""
    from star.hw.sads import SadsSelector
    dut = SadsSelector(cfg, score_bits)
    items = []
    for scores, mask in tiles:
        n = scores.shape[1]
        for g in range(n):
            items.append((scores[:, g].tolist(), sum(int(mask[t, g]) << t for t in range(cfg.lanes)),
                          int(g + 1 == n)))
    out = []

    async def bench(ctx):
        ctx.set(dut.k, k)
        ctx.set(dut.radius, radius)
        await ctx.tick()                # k and radius reach the lanes' registers
        i, cycle, last_in, shown = 0, 0, [], False
        while len(out) < len(tiles):
            assert cycle < 20 * len(items) + 50, "selector hang"
            ready = cycle % 3 != 2 or not stall
            ctx.set(dut.o.ready, ready)
            if i < len(items):
                sc, va, last = items[i]
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"score": sc, "last": last})
                ctx.set(dut.lane_valid, va)
            else:
                ctx.set(dut.i.valid, 0)
            took = ctx.get(dut.i.valid) and ctx.get(dut.i.ready)
            if took and items[i][2]:
                last_in.append(cycle)
            if timing is not None and ctx.get(dut.o.valid) and not shown:
                timing.append(cycle - last_in[len(timing)])
            shown = ctx.get(dut.o.valid) and not ready
            if ctx.get(dut.o.valid) and ready:
                pay = ctx.get(dut.o.payload)
                out.append(([list(x) for x in pay["index"]], list(pay["count"])))
            await ctx.tick()
            i += bool(took)
            cycle += 1

    simulate(dut, bench)
    return out


@pytest.mark.parametrize("k, radius", [(3, 255), (2, 4), (1, 0)])
def test_selector_amaranth_sim(k, radius, seed):
    from star.golden import sads
    cfg = StarConfig(**{**preset("tiny").to_dict(), "lanes": 2, "tile": 8, "k_tile": 3,
                        "max_seq": 64})
    fmt = cfg.formats
    rng = np.random.default_rng(seed)
    tiles = []
    for n in (8, 8, 4, 8, 2):
        tiles.append((rng.integers(-6, 7, (2, n)), rng.random((2, n)) < 0.8))
    tiles.append((np.full((2, 8), -128), np.ones((2, 8), bool)))        # equal, most negative
    got = run_selector(cfg, 8, tiles, k, radius, seed)
    assert len(got) == len(tiles)
    for (scores, mask), (index, count) in zip(tiles, got):
        want = sads.select(scores, fmt, k_tile=k, radius=radius, valid=mask)[:, 0, :]
        for t in range(2):
            assert index[t][:count[t]] == [int(x) for x in want[t] if x >= 0]


def test_selector_latency(seed):
    """sads_latency, measured: with the output always ready, each tile's lists appear exactly
    ``sads_latency(cfg)`` cycles after its last key's transfer."""
    from star.hw.sads import sads_latency
    cfg = StarConfig(**{**preset("tiny").to_dict(), "lanes": 2, "tile": 8, "k_tile": 3,
                        "max_seq": 64})
    rng = np.random.default_rng(seed)
    tiles = [(rng.integers(-6, 7, (2, n)), np.ones((2, n), bool)) for n in (8, 3, 1, 8)]
    timing = []
    run_selector(cfg, 8, tiles, 3, 255, seed, stall=False, timing=timing)
    assert timing == [sads_latency(cfg)] * len(tiles)


@pytest.mark.parametrize("pred_cycles", [1, 2, 4])
def test_predictor_latency(pred_cycles, seed):
    """predictor_latency, measured on the DLZS array (tiny, pred_cycles 1, 2, 4): with every
    lane's query row loaded, a key's scores appear on ``a`` exactly ``predictor_latency(cfg)``
    cycles after its transfer, and the next key is taken pred_cycles cycles after it."""
    from star.hw.dlzs import DlzsPredictor
    from star.hw.predictor import predictor_latency
    cfg = StarConfig(**{**preset("tiny").to_dict(), "pred_cycles": pred_cycles})
    rng = np.random.default_rng(seed)
    dut = DlzsPredictor(cfg)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)

    async def bench(ctx):
        ctx.set(dut.a.ready, 1)
        for t in range(cfg.lanes):
            ctx.set(dut.q.valid, 1)
            ctx.set(dut.q.payload, {"lane": t, "row": rng.integers(lo, hi, cfg.head_dim).tolist()})
            await ctx.tick()
        ctx.set(dut.q.valid, 0)
        for _ in range(10):
            await ctx.tick()
        sent, seen, cycle = [], [], 0
        while len(seen) < 2 and cycle < 100:
            ctx.set(dut.k.valid, len(sent) < 2)
            ctx.set(dut.k.payload, {"key": rng.integers(lo, hi, cfg.head_dim).tolist(),
                                    "last": 0})
            if ctx.get(dut.k.valid) and ctx.get(dut.k.ready):
                sent.append(cycle)
            if ctx.get(dut.a.valid):
                seen.append(cycle)
            await ctx.tick()
            cycle += 1
        assert [b - a for a, b in zip(sent, seen)] == [predictor_latency(cfg)] * 2
        assert sent[1] - sent[0] == pred_cycles

    simulate(dut, bench)


def exp2_sweep(cfg, ts, mant, shift):
    from star.hw.exp2 import Exp2Unit, exp2_latency
    dut = Exp2Unit(cfg)
    got = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.mant, mant)
        ctx.set(dut.shift, shift)
        for i in range(len(ts) + exp2_latency(cfg)):
            ctx.set(dut.t, int(ts[i]) if i < len(ts) else 0)
            await ctx.tick()
            if i + 1 >= exp2_latency(cfg):
                got.append(ctx.get(dut.p))

    simulate(dut, bench)
    return np.array(got[:len(ts)])


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_exp2_unit_exhaustive_over_u(name):
    """c = 2**-E makes u = t: every table entry and every shift, against golden.exp2."""
    from star.golden.exp2 import weight
    cfg = preset(name)
    fmt = cfg.formats
    mant, shift = 1 << (fmt.scale_bits - 1), fmt.scale_bits - 1 + fmt.exp_frac_bits
    ts = np.arange(fmt.u_max + 40)
    assert np.array_equal(exp2_sweep(cfg, ts, mant, shift), weight(ts, mant, shift, fmt))


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_exp2_unit_random_scales(name, seed):
    from star.golden.exp2 import weight
    from star.golden.quant import score_scale
    cfg = preset(name)
    fmt = cfg.formats
    rng = np.random.default_rng(seed)
    for c in (1e-9, 3.7e-4, 0.05, 1.9):
        mant, shift = score_scale(fmt, c, 1.0, 1.0)
        top = (1 << (fmt.score_bits + 1)) - 1
        ts = np.concatenate([[0, 1, 2, top, top - 1], rng.integers(0, top, 200),
                             rng.integers(0, int(min(top, 64 / c)) + 1, 200)])
        assert np.array_equal(exp2_sweep(cfg, ts, mant, shift), weight(ts, mant, shift, fmt)), c


def recip_sweep(cfg, ls):
    from star.hw.recip import Reciprocal, recip_latency
    dut = Reciprocal(cfg)
    got = []

    async def bench(ctx):
        for l in ls:
            ctx.set(dut.l, int(l))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
                assert cycles <= recip_latency(cfg), "reciprocal too slow"
            assert cycles == recip_latency(cfg)
            got.append((ctx.get(dut.r), ctx.get(dut.shift)))

    simulate(dut, bench)
    return np.array(got)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_reciprocal_unit(name, seed):
    """Exhaustive for small l (tiny: every l < 2**11), powers of two and their neighbours, random."""
    from star.golden.recip import reciprocal
    cfg = preset(name)
    fmt = cfg.formats
    rng = np.random.default_rng(seed)
    pw = 1 << np.arange(fmt.l_bits)
    ls = np.concatenate([np.arange(1, 2048 if name == "tiny" else 300), pw, pw[1:] - 1,
                         rng.integers(1, 1 << fmt.l_bits, 200)])
    r, shift = reciprocal(ls, fmt)
    got = recip_sweep(cfg, ls)
    assert np.array_equal(got[:, 0], r) and np.array_equal(got[:, 1], shift)


def test_stream_register_keeps_order_under_random_stalls(seed):
    """The skid buffer passes every item once, in order, at one per cycle when the consumer is
    always ready, with i.ready a register (it never follows o.ready in the same cycle)."""
    from star.hw.pipe import STREAM_REGISTER_LATENCY, StreamRegister
    dut = StreamRegister(8)
    rng = np.random.default_rng(seed)
    items = [int(x) for x in rng.integers(0, 256, 300)]
    out, cycles = [], []

    async def bench(ctx):
        i, cycle = 0, 0
        while len(out) < len(items):
            assert cycle < 10 * len(items), "stream register hang"
            free = cycle < 50 or rng.random() < 0.6         # first 50 cycles: never stalled
            ready_before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, free)
            assert ctx.get(dut.i.ready) == ready_before, "i.ready follows o.ready"
            valid = i < len(items) and (cycle < 50 or rng.random() < 0.7)
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, items[i] if i < len(items) else 0)
            took = valid and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid) and free:
                out.append(ctx.get(dut.o.payload))
                cycles.append(cycle)
            await ctx.tick()
            i += bool(took)
            cycle += 1

    simulate(dut, bench)
    assert out == items
    # never stalled: item j leaves STREAM_REGISTER_LATENCY cycles after it entered, at cycle j
    assert cycles[:40] == [j + STREAM_REGISTER_LATENCY for j in range(40)]


@pytest.mark.parametrize("a_shape, b_shape, registered", [
    (signed(16), signed(16), False),            # one piece
    (unsigned(24), unsigned(12), False),        # two pieces
    (signed(38), unsigned(16), False),          # three pieces, the signed one split
    (unsigned(13), signed(44), True),           # the wider operand second, signed
])
def test_mul_pipe_products(a_shape, b_shape, registered, seed):
    """MulPipe's product of random and extreme operands, mul_latency enabled cycles later; a
    cycle with en low holds every register."""
    from star.hw.arith import MulPipe, mul_latency
    dut = MulPipe(a_shape, b_shape, registered)
    rng = np.random.default_rng(seed)

    def values(shape):
        lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed \
            else (0, (1 << shape.width) - 1)
        return [lo, hi, 0, 1, -1 if shape.signed else 2] + \
            [int(x) for x in rng.integers(lo, hi, 60, endpoint=True)]
    pairs = list(zip(values(a_shape), values(b_shape)))
    lat = mul_latency(a_shape.width, b_shape.width, registered)
    got = []

    async def bench(ctx):
        for i in range(len(pairs) + lat):
            a, b = pairs[min(i, len(pairs) - 1)]
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.en, 0)                   # a held cycle: nothing moves
            await ctx.tick()
            ctx.set(dut.en, 1)
            await ctx.tick()
            if i >= lat - 1 and len(got) < len(pairs):   # pair i - (lat - 1)'s product
                got.append(ctx.get(dut.p))

    simulate(dut, bench)
    assert got == [a * b for a, b in pairs]


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_score_stage_latency_and_scores(name, seed):
    """The SU-FA score stage alone (hw.sufa_score.ScoreStage), K and Q chunks served a cycle
    after their address like the tile stores: a list of n keys written at cycle c0 is started
    at c0 + 1, issues a key's G chunks from c0 + 2, and entry e's score is in the record queue
    ``score_latency`` cycles after its last chunk, visible to the accumulate stage (``scored``)
    two cycles later: at c0 + 3 + (e + 1)·G + score_latency(cfg). Every score is q·k (a score
    path longer or shorter than its flags, which score_latency sizes, sums the wrong chunks)."""
    from star.hw.sufa_score import ScoreStage, score_latency
    cfg = preset(name)
    fmt = cfg.formats
    G, P, n = fmt.sufa_chunks, fmt.sufa_macs, min(3, cfg.k_tile)
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    q = rng.integers(lo, hi, cfg.head_dim)
    K = rng.integers(lo, hi, (cfg.tile, cfg.head_dim))
    keys = rng.choice(cfg.tile, n, replace=False)
    dut = ScoreStage(cfg)
    seen = {}

    async def bench(ctx):
        entry = dut.list.entry
        ctx.set(entry.count, n)
        ctx.set(entry.first, 1)
        ctx.set(entry.final, 1)
        for i, k in enumerate(keys):
            ctx.set(entry.index[i], int(k))
        ctx.set(dut.list.we, 1)
        c0, cycle, prev = 0, 0, None
        await ctx.tick()
        ctx.set(dut.list.we, 0)
        cycle += 1
        while len(seen) < n and cycle < 10 * n * G + 100:
            if prev is not None:                    # the stores answer a cycle after the address
                addr, c = prev
                for j in range(P):
                    ctx.set(dut.k.chunk[j], int(K[addr % cfg.tile][c * P + j]))
                    ctx.set(dut.q.chunk[j], int(q[c * P + j]))
            prev = (ctx.get(dut.k.addr), cycle % G)
            scored = ctx.get(dut.records.scored[0])
            for e in range(scored):
                seen.setdefault(e, cycle)
            await ctx.tick()
            cycle += 1
        for e in range(n):
            ctx.set(dut.records.addr, e)
            await ctx.tick()
            assert ctx.get(dut.records.key) == keys[e]
            assert ctx.get(dut.records.score) == int(q @ K[keys[e]]), f"entry {e}"
        for e in range(n):
            assert seen.get(e) == c0 + 3 + (e + 1) * G + score_latency(cfg), \
                f"entry {e} visible at {seen.get(e)}, score_latency {score_latency(cfg)}"

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "default", "split"])
def test_accumulate_stage_latency_and_state(name, seed):
    """The SU-FA accumulate stage alone (hw.sufa_accumulate.AccumulateStage, its unnormalised
    final pass so O and L show at ``state``): one tile record of n entries whose max m lies
    above every score, the scores and keys served a cycle after their address, V chunks a cycle
    after theirs, the exp2 unit modelled as any weight F(t) of the difference t sent
    ``exp_latency`` cycles earlier (the lane's turn every cycle). A key issued at cycle c (its
    t sent) writes its first chunk of O at c + ``accumulate_latency(cfg)``; O = Σ p_e·V[key_e]
    and L = Σ p_e exactly, p_e = F(m − s_e) (a weight taken a cycle early or late is F(0), which
    no entry has)."""
    from star.hw.sufa_accumulate import AccumulateStage, accumulate_latency, exp_latency
    from star.hw.arith import MUL_SPLIT_BITS
    from star.hw.sufa_state import Unload
    # split: the widest weights (exp_out_bits 20, p_bits 21) make p·v a split product, a
    # cycle longer than O's read
    cfg = StarConfig(**{**preset("tiny").to_dict(), "exp_out_bits": 20}) if name == "split" \
        else preset(name)
    fmt = cfg.formats
    assert (fmt.p_bits > MUL_SPLIT_BITS) == (name == "split")
    G, P, n = fmt.sufa_chunks, fmt.sufa_macs, min(3, cfg.k_tile)
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    V = rng.integers(lo, hi, (cfg.tile, cfg.head_dim))
    keys = rng.choice(cfg.tile, n, replace=False)
    scores = rng.integers(-1000, 1000, n)
    m_max = int(scores.max()) + 1 + int(rng.integers(0, 50))

    def weight(t):                                    # any weight of t; F(0) is no entry's
        return (t * 37 + 11) % (1 << fmt.p_bits)

    class Probed(AccumulateStage):                    # O's write port, seen from the test
        def elaborate(self, platform):
            m = super().elaborate(platform)
            self.o_mem = m.submodules.ostate
            return m

    dut = Probed(cfg, Unload)
    rd = dut.records

    async def bench(ctx):
        rec = rd.rec[0]
        ctx.set(rec.m, m_max)
        ctx.set(rec.has, 1)
        ctx.set(rec.count, n)
        ctx.set(rec.final, 1)
        ctx.set(rd.scored[0], n)
        ctx.set(rd.ready, 1)
        ctx.set(dut.v_filled, 1)
        ctx.set(dut.exp.turn, 1)
        sent, issued, writes = [], [], []
        prev_score_addr = prev_v = None
        for cycle in range(20 * n * G + 200):
            if prev_score_addr is not None:           # the score memory: a cycle after addr
                e = prev_score_addr % cfg.tile
                ctx.set(rd.score, int(scores[e]) if e < n else 0)
                ctx.set(rd.key, int(keys[e]) if e < n else 0)
            if prev_v is not None:                    # the V store: a cycle after addr
                row, c = prev_v
                for j in range(P):
                    ctx.set(dut.v.chunk[j], int(V[row % cfg.tile][c * P + j]))
            ctx.set(dut.v.phase, cycle % G)
            back = cycle - exp_latency(cfg)
            ctx.set(dut.exp.p, weight(sent[back]) if back >= 0 else 0)
            t = ctx.get(dut.exp.t)
            sent.append(t)
            if t:
                issued.append(cycle)
            if ctx.get(dut.o_mem.w_en):
                writes.append(cycle)
            prev_score_addr = ctx.get(rd.addr)
            prev_v = (ctx.get(dut.v.addr), cycle % G)
            took = ctx.get(rd.take)
            if ctx.get(dut.done):
                break
            await ctx.tick()
            if took:                                  # the one record is taken
                ctx.set(rd.ready, 0)
                ctx.set(dut.v_filled, 0)
        assert ctx.get(dut.done), f"the block never finished: issued {issued}, writes {writes}"
        # each key's G chunks issued in G cycles from its first, each written to O
        # accumulate_latency cycles after its issue
        want = sorted(c + accumulate_latency(cfg) + j for c in issued for j in range(G))
        assert len(issued) == n and writes == want, \
            f"keys issued at {issued}, O written at {writes}, want {want}"
        p = [weight(m_max - int(s)) for s in scores]
        state = dut.result
        assert ctx.get(state.l) == sum(p)
        for i in range(cfg.head_dim):
            assert ctx.get(state.o[i]) == sum(p[e] * int(V[keys[e]][i]) for e in range(n)), i

    simulate(dut, bench)
