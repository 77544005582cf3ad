"""Serializer / Deserializer (hw/noc/message.py) in amaranth.sim: every word against a Python
reference slicing, back-to-back timing, and round trips direct and through a Mesh, with random
idles and stalls. Every cycle the bench also checks the stream rules: an output's valid does not
depend on its ready, an input's ready not on its valid, and a stalled output holds its word."""

import random

import pytest
from amaranth import Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.sim import Simulator

from star.hw.noc import Mesh, inject_layout
from star.hw.noc.message import Deserializer, Serializer
from star.sim.payload import unpack
from star.spec.noc_config import NocConfig

WIDTHS = [1, 63, 64, 65, 200]
FLIT_BITS = [32, 64]


def ref_words(msg, width, fb):
    """The data of the n words of one message, least-significant first."""
    return [(msg >> (j * fb)) & ((1 << fb) - 1) for j in range(-(-width // fb))]


def messages(rng, width, count):
    return [0, (1 << width) - 1] + [rng.getrandbits(width) for _ in range(count - 2)]


def run(dut, sources, sinks, *, rng, p_idle=0.0, p_stall=0.0, gates=(), indep=(), limit=4000):
    """Clock ``dut``. Each source (stream, items) offers its items in order, idling with
    probability p_idle between items; each sink (stream, count) is ready, and each gate signal 1,
    with probability 1 - p_stall. Stops once every sink has taken its count. Returns the cycles
    of each source's transfers and the (cycle, payload) of each sink's transfers. ``indep``:
    extra (output, input) pairs whose output must not change when the input toggles."""
    indep = ([(s.valid, s.ready) for s, _ in sinks] + [(s.ready, s.valid) for s, _ in sources]
             + list(indep))
    sent = [[] for _ in sources]
    got = [[] for _ in sinks]

    async def bench(ctx):
        offered = [False] * len(sources)
        held = [None] * len(sinks)
        for t in range(limit):
            for k, (s, items) in enumerate(sources):
                more = len(sent[k]) < len(items)
                offered[k] = more and (offered[k] or rng.random() >= p_idle)
                ctx.set(s.valid, offered[k])
                if more:
                    ctx.set(Value.cast(s.payload), items[len(sent[k])])
            for s, _ in sinks:
                ctx.set(s.ready, rng.random() >= p_stall)
            for g in gates:
                ctx.set(g, rng.random() >= p_stall)
            for out, inp in indep:
                keep = ctx.get(inp)
                seen = set()
                for v in (0, 1):
                    ctx.set(inp, v)
                    seen.add(ctx.get(out))
                ctx.set(inp, keep)
                assert len(seen) == 1, f"cycle {t}: {out.name} depends on {inp.name}"
            for k, (s, _) in enumerate(sinks):
                valid, ready = ctx.get(s.valid), ctx.get(s.ready)
                word = ctx.get(Value.cast(s.payload))
                if held[k] is not None:
                    assert valid and word == held[k], f"cycle {t}: sink {k} dropped a stalled word"
                held[k] = word if valid and not ready else None
                if valid and ready:
                    got[k].append((t, word))
            for k, (s, _) in enumerate(sources):
                if ctx.get(s.valid) and ctx.get(s.ready):
                    sent[k].append(t)
            if all(len(g) == want for g, (_, want) in zip(got, sinks)):
                return
            await ctx.tick()
        raise AssertionError(f"timeout after {limit} cycles: got {[len(g) for g in got]} of "
                             f"{[want for _, want in sinks]}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return sent, got


def test_width_and_dst_are_checked():
    cfg = NocConfig(rows=2, cols=2)
    for width in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="width"):
            Serializer(cfg, width, (0, 0))
        with pytest.raises(ValueError, match="width"):
            Deserializer(cfg, width)
    for dst in ((2, 0), (0, 2), (-1, 0)):
        with pytest.raises(ValueError, match="dst"):
            Serializer(cfg, 8, dst)


@pytest.mark.parametrize("fb", FLIT_BITS)
@pytest.mark.parametrize("width", WIDTHS)
def test_serializer_words(seed, width, fb):
    """Random messages, idles and stalls: every word's data, last and dst bit-exact."""
    cfg = NocConfig(rows=3, cols=2, flit_bits=fb)
    rng = random.Random(seed)
    msgs = messages(rng, width, 12)
    dut = Serializer(cfg, width, (1, 2))
    want = [{"dst": {"x": 1, "y": 2}, "data": d, "last": int(j == len(ws) - 1)}
            for ws in (ref_words(msg, width, fb) for msg in msgs) for j, d in enumerate(ws)]
    _, (got,) = run(dut, [(dut.i, msgs)], [(dut.o, len(want))], rng=rng, p_idle=0.3,
                    p_stall=0.4)
    assert [unpack(inject_layout(cfg), w) for _, w in got] == want


@pytest.mark.parametrize("fb", FLIT_BITS)
@pytest.mark.parametrize("width", WIDTHS)
def test_serializer_back_to_back(seed, width, fb):
    """i always valid, o always ready: message k is taken at cycle k·n and its words leave on
    cycles k·n + 1 .. k·n + n, one per cycle (latency 1, n cycles per message, no bubble)."""
    cfg = NocConfig(rows=2, cols=2, flit_bits=fb)
    rng = random.Random(seed)
    msgs = messages(rng, width, 6)
    dut = Serializer(cfg, width, (1, 0))
    n = dut.words
    (taken,), (got,) = run(dut, [(dut.i, msgs)], [(dut.o, n * len(msgs))], rng=rng)
    assert taken == [k * n for k in range(len(msgs))]
    assert [t for t, _ in got] == list(range(1, n * len(msgs) + 1))


class Direct(Elaboratable):
    """A Serializer's words into a Deserializer, through a gate the bench toggles (a stall in
    the middle: valid and ready both pass only while ``gate`` is 1)."""

    def __init__(self, cfg, width):
        self.ser = Serializer(cfg, width, (1, 1))
        self.des = Deserializer(cfg, width)
        self.gate = Signal(init=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ser, m.submodules.des = self.ser, self.des
        a, b = self.ser.o, self.des.i
        m.d.comb += [
            b.valid.eq(a.valid & self.gate),
            a.ready.eq(b.ready & self.gate),
            b.payload.src.x.eq(0),
            b.payload.src.y.eq(1),
            b.payload.data.eq(a.payload.data),
            b.payload.last.eq(a.payload.last),
        ]
        return m


@pytest.mark.parametrize("fb", FLIT_BITS)
@pytest.mark.parametrize("width", WIDTHS)
def test_serializer_to_deserializer(seed, width, fb):
    """Random idles and stalls at both ends and in the middle: messages out == messages in."""
    cfg = NocConfig(rows=2, cols=2, flit_bits=fb)
    rng = random.Random(seed)
    msgs = messages(rng, width, 12)
    dut = Direct(cfg, width)
    _, (got,) = run(dut, [(dut.ser.i, msgs)], [(dut.des.o, len(msgs))], rng=rng, p_idle=0.3,
                    p_stall=0.3, gates=[dut.gate],
                    indep=[(dut.des.i.ready, dut.gate), (dut.ser.o.valid, dut.gate)])
    assert [w for _, w in got] == msgs


@pytest.mark.parametrize("width", [1, 65, 200])
def test_serializer_to_deserializer_back_to_back(seed, width):
    """No stalls: message k leaves the Deserializer at cycle k·n + n + 1 (n cycles each)."""
    cfg = NocConfig(rows=2, cols=2, flit_bits=32)
    rng = random.Random(seed)
    msgs = messages(rng, width, 6)
    dut = Direct(cfg, width)
    n = dut.des.words
    _, (got,) = run(dut, [(dut.ser.i, msgs)], [(dut.des.o, len(msgs))], rng=rng)
    assert got == [(k * n + n + 1, msg) for k, msg in enumerate(msgs)]


class OverMesh(Elaboratable):
    """Serializer -> Mesh -> Deserializer for each flow (src (x, y), dst (x, y), width)."""

    def __init__(self, cfg, flows):
        self.mesh = Mesh(cfg)
        self.flows = flows
        self.sers = [Serializer(cfg, width, dst) for _, dst, width in flows]
        self.dess = [Deserializer(cfg, width) for _, _, width in flows]

    def elaborate(self, platform):
        m = Module()
        m.submodules.mesh = mesh = self.mesh
        for k, ((sx, sy), (dx, dy), _) in enumerate(self.flows):
            m.submodules[f"ser{k}"], m.submodules[f"des{k}"] = self.sers[k], self.dess[k]
            wiring.connect(m, self.sers[k].o, mesh.inject[sy][sx])
            wiring.connect(m, mesh.eject[dy][dx], self.dess[k].i)
        return m


@pytest.mark.parametrize("max_flits", [16, 3])
def test_over_mesh(seed, max_flits):
    """Two flows at once on a 2x2 mesh, random idles and stalls; with max_packet_flits = 3 the
    7-word messages arrive as 3 packets (last = 1 mid-message), which the Deserializer ignores."""
    cfg = NocConfig(rows=2, cols=2, flit_bits=32, max_packet_flits=max_flits)
    rng = random.Random(seed)
    flows = [((0, 0), (1, 1), 200), ((1, 1), (0, 1), 45)]
    msgs = [messages(rng, width, 6) for _, _, width in flows]
    dut = OverMesh(cfg, flows)
    _, got = run(dut, [(s.i, ms) for s, ms in zip(dut.sers, msgs)],
                 [(d.o, len(ms)) for d, ms in zip(dut.dess, msgs)], rng=rng, p_idle=0.3,
                 p_stall=0.3)
    assert [[w for _, w in g] for g in got] == msgs
