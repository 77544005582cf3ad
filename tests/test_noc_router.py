# amaranth: UnusedElaboratable=no
"""One NoC router in amaranth.sim: XY output choice, wormhole packets, round robin, 1 cycle/hop.

Flits are driven on the router's inputs as its neighbours would send them (a head's dst is legal
for the side it arrives from under XY); body flits carry a random header, which the router must
ignore. Expected outputs come from :func:`golden.noc.next_port`.
"""

import random

import pytest
from amaranth.sim import Simulator

from star.golden.noc import flit_kinds, next_port
from star.hw.noc import Port, Router, flit_layout
from star.sim.payload import pack, unpack
from star.spec.noc_config import NocConfig

CFG = NocConfig(rows=3, cols=3, flit_bits=32, fifo_depth=4)


def simulate(cfg, x, y, streams, *, p_idle=0.0, p_stall=0.0, seed=0, extra=20, limit=5000):
    """Drive ``streams`` {input Port: [flit dict, ...]}; return {output Port: [(cycle, flit)]}.

    Runs until every flit has come out (or ``limit`` cycles), then ``extra`` cycles with every
    output ready. Fails if an offered output flit changes or is withdrawn before it is taken.
    """
    dut = Router(cfg, x, y)
    layout = flit_layout(cfg)
    rng = random.Random(seed)
    total = sum(len(s) for s in streams.values())
    got = {o: [] for o in Port}

    async def bench(ctx):
        sent = {p: 0 for p in streams}
        offered = {}
        cycle = idle_after = 0
        while cycle < limit and idle_after < extra:
            for p, flits in streams.items():
                on = sent[p] < len(flits) and rng.random() >= p_idle
                ctx.set(dut.i[p].valid, on)
                if on:
                    ctx.set(dut.i[p].payload.as_value(), pack(layout, flits[sent[p]]))
            done = sum(len(v) for v in got.values()) == total
            for o in Port:
                ctx.set(dut.o[o].ready, done or rng.random() >= p_stall)
            for p in streams:
                if ctx.get(dut.i[p].valid) and ctx.get(dut.i[p].ready):
                    sent[p] += 1
            for o in Port:
                valid, ready = ctx.get(dut.o[o].valid), ctx.get(dut.o[o].ready)
                bits = ctx.get(dut.o[o].payload.as_value())
                if o in offered:
                    assert valid and bits == offered[o], f"output {o.name} changed its offer"
                offered.pop(o, None)
                if valid and ready:
                    got[o].append((cycle, unpack(layout, bits)))
                elif valid:
                    offered[o] = bits
            idle_after += done
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def packet(rng, cfg, port, seq, dst, n):
    """Flits of an n-flit packet entering at ``port``; data = (port, seq, flit index)."""
    flits = []
    for i, kind in enumerate(flit_kinds(n)):
        junk = {"x": rng.randrange(1 << cfg.x_bits), "y": rng.randrange(1 << cfg.y_bits)}
        flits.append({"kind": kind.value, "dst": {"x": dst[0], "y": dst[1]} if i == 0 else junk,
                      "src": {"x": rng.randrange(cfg.cols), "y": rng.randrange(cfg.rows)},
                      "data": port << 24 | seq << 8 | i})
    return flits


def legal_dst(rng, cfg, port, x, y):
    """A destination a head flit arriving at ``port`` of router (x, y) can have under XY."""
    xs, ys = range(cfg.cols), range(cfg.rows)
    choices = {
        Port.L: [(a, b) for a in xs for b in ys],
        Port.W: [(a, b) for a in xs for b in ys if a >= x],      # travelling east
        Port.E: [(a, b) for a in xs for b in ys if a <= x],
        Port.N: [(x, b) for b in ys if b >= y],                  # travelling south
        Port.S: [(x, b) for b in ys if b <= y],
    }[port]
    return rng.choice(choices)


def split_packets(flits):
    """Cut an output's flit sequence into packets; fail if packets interleave or are cut."""
    packets, cur = [], None
    for f in flits:
        head, tail = bool(f["kind"] & 1), bool(f["kind"] & 2)
        assert head == (cur is None), f"packet boundary broken at {f} (interleaved packets?)"
        cur = [f] if head else cur + [f]
        if tail:
            packets.append(cur)
            cur = None
    assert cur is None, "a packet has no tail"
    return packets


@pytest.mark.parametrize("p_idle,p_stall", [(0.0, 0.0), (0.3, 0.5), (0.7, 0.1)])
def test_router_random_traffic_matches_xy(seed, p_idle, p_stall):
    rng = random.Random(seed)
    x, y = 1, 1
    streams, expected = {}, {}
    for p in Port:
        streams[p] = []
        for seq in range(25):
            dst = legal_dst(rng, CFG, p, x, y)
            flits = packet(rng, CFG, p, seq, dst, rng.randint(1, 5))
            streams[p] += flits
            expected.setdefault((p, Port[next_port(CFG, (x, y), dst)]), []).append(flits)
    got = simulate(CFG, x, y, streams, p_idle=p_idle, p_stall=p_stall, seed=seed + 1)
    actual = {}
    for o, flits in got.items():
        for pkt in split_packets([f for _, f in flits]):
            actual.setdefault((Port(pkt[0]["data"] >> 24), o), []).append(pkt)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        assert actual[key] == expected[key], f"input {key[0].name} -> output {key[1].name}"


def test_router_one_cycle_per_hop_and_full_rate():
    """Five straight-through streams at once, fifo_depth 2: one cycle from input to output, then
    one flit per cycle on every output."""
    cfg = NocConfig(rows=3, cols=3, fifo_depth=2)
    rng = random.Random(0)
    across = {Port.W: (2, 1), Port.E: (0, 1), Port.N: (1, 2), Port.S: (1, 0), Port.L: (1, 1)}
    streams = {p: [f for s in range(10) for f in packet(rng, cfg, p, s, dst, 4)]
               for p, dst in across.items()}
    got = simulate(cfg, 1, 1, streams)
    for p, dst in across.items():
        o = Port[next_port(cfg, (1, 1), dst)]
        cycles = [c for c, _ in got[o]]
        assert [f for _, f in got[o]] == streams[p]
        assert cycles == list(range(1, 41)), f"{p.name} -> {o.name}: {cycles[:8]}..."


def test_router_round_robin_per_packet():
    """All five inputs send 3-flit packets to the local port: packets alternate N, E, S, W, L
    and the output never idles between packets."""
    rng = random.Random(0)
    streams = {p: [f for s in range(6) for f in packet(rng, CFG, p, s, (1, 1), 3)] for p in Port}
    got = simulate(CFG, 1, 1, streams)[Port.L]
    packets = split_packets([f for _, f in got])
    assert [Port(pk[0]["data"] >> 24) for pk in packets] == list(Port) * 6
    assert [c for c, _ in got] == list(range(1, 1 + 90))


@pytest.mark.parametrize("dst,out", [((3, 0), Port.L), ((3, 2), Port.S), ((1, 3), Port.W)])
def test_router_clamps_off_mesh_destinations(dst, out):
    """At the north-east corner (2, 0) of a 3×3 mesh, x = 3 or y = 3 is past the edge: the flit
    leaves as if the coordinate were the edge's."""
    rng = random.Random(0)
    got = simulate(CFG, 2, 0, {Port.L: packet(rng, CFG, Port.L, 0, dst, 1)})
    assert [o for o in Port if got[o]] == [out]


def test_router_edge_ports_are_inert():
    """A corner router has no logic behind its off-mesh ports."""
    got = simulate(CFG, 0, 0, {Port.N: packet(random.Random(0), CFG, Port.N, 0, (0, 1), 1)},
                   limit=30)
    assert not any(got.values())


def test_router_rejects_position_outside_mesh():
    with pytest.raises(ValueError, match=r"router position \(x, y\) must be in the 3×3 mesh "
                                         r"\(rows × cols\), not \(3, 0\)"):
        Router(CFG, 3, 0)
