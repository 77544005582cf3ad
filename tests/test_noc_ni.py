"""The network interface in amaranth.sim: packetizing against golden.noc.split / flit_kinds,
depacketizing with the src of the head flit, with random idles and stalls."""

import random

import pytest
from amaranth.sim import Simulator

from star.golden.noc import flit_kinds, split
from star.hw.noc import NetworkInterface, eject_layout, flit_layout, inject_layout
from star.sim.payload import pack, unpack
from star.spec.noc_config import NocConfig


def run_ni(cfg, words_in, flits_in, *, p_idle, p_stall, seed, limit=3000):
    """Drive ``inject`` with words_in and ``from_router`` with flits_in; return the flits on
    ``to_router`` and the words on ``eject``."""
    dut = NetworkInterface(cfg, x=1, y=2)
    rng = random.Random(seed)
    ports = [(dut.inject, inject_layout(cfg), words_in, dut.to_router, flit_layout(cfg), []),
             (dut.from_router, flit_layout(cfg), flits_in, dut.eject, eject_layout(cfg), [])]

    async def bench(ctx):
        sent = [0, 0]
        for _ in range(limit):
            for n, (src, src_layout, items, sink, _, _) in enumerate(ports):
                on = sent[n] < len(items) and rng.random() >= p_idle
                ctx.set(src.valid, on)
                if on:
                    ctx.set(src.payload.as_value(), pack(src_layout, items[sent[n]]))
                ctx.set(sink.ready, rng.random() >= p_stall)
            for n, (src, _, items, sink, sink_layout, got) in enumerate(ports):
                if ctx.get(src.valid) and ctx.get(src.ready):
                    sent[n] += 1
                if ctx.get(sink.valid) and ctx.get(sink.ready):
                    got.append(unpack(sink_layout, ctx.get(sink.payload.as_value())))
            if all(len(p[5]) == len(p[2]) for p in ports):
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return ports[0][5], ports[1][5]


@pytest.mark.parametrize("max_flits", [1, 3, 16])
def test_ni_packetizes_and_depacketizes(seed, max_flits):
    cfg = NocConfig(rows=3, cols=2, flit_bits=16, max_packet_flits=max_flits)
    rng = random.Random(seed)
    words, want_flits = [], []
    for _ in range(40):
        n = rng.randint(1, 7)
        dst = {"x": rng.randrange(cfg.cols), "y": rng.randrange(cfg.rows)}
        data = [rng.randrange(1 << 16) for _ in range(n)]
        words += [{"dst": dst, "data": d, "last": int(i == n - 1)} for i, d in enumerate(data)]
        for part in split(cfg, data):
            want_flits += [{"kind": k.value, "dst": dst, "src": {"x": 1, "y": 2}, "data": d}
                           for k, d in zip(flit_kinds(len(part)), part)]
    flits_in, want_words = [], []
    for _ in range(40):
        n = rng.randint(1, 5)
        src = {"x": rng.randrange(cfg.cols), "y": rng.randrange(cfg.rows)}
        for i, k in enumerate(flit_kinds(n)):
            junk = {"x": rng.randrange(2), "y": rng.randrange(4)}      # body headers: ignored
            d = rng.randrange(1 << 16)
            flits_in.append({"kind": k.value, "dst": junk, "src": src if i == 0 else junk,
                             "data": d})
            want_words.append({"src": src, "data": d, "last": int(i == n - 1)})
    got_flits, got_words = run_ni(cfg, words, flits_in, p_idle=0.3, p_stall=0.4, seed=seed)
    assert got_flits == want_flits
    assert got_words == want_words
