"""cocotb benchmark of the mesh NoC: latency vs offered load, saturation throughput, zero-load
latency per hop. Written for scripts/bench_noc.py; every run also checks its traffic (MeshDriver).

Config (STAR_TEST_CONFIG): {"noc": NocConfig fields, "patterns", "rates" (ascending offered loads,
flits/cycle/node), "words" (packet length), "warmup", "measure" (cycles), "out" (directory)}.
Each test writes ``<out>/<test name>.json``.

* ``latency_sweep``: per pattern and offered load, from reset: packets are generated for warmup +
  measure cycles, then every queued packet is injected; those generated in the measurement
  window are measured, from generation (source queue included) to the ejection of their last
  word. A load is saturated when their mean latency exceeds SAT_FACTOR × the zero-load latency
  (mean hops of the pattern + 1 + words - 1, see golden.noc.channel_load) or they do not drain
  within SAT_DRAIN × measure cycles. The sweep goes up the given rates to the first saturated
  one, then bisects BISECT times between it and the last unsaturated one; the pattern's
  saturation throughput is the highest unsaturated load found.
* ``full_load``: per pattern, offered load 1 (sources always backlogged): accepted words per
  cycle per node over the measurement window after the warm-up.
* ``zero_load``: one packet at a time, for each hop count: the cycles from injecting a one-word
  packet to its ejection, and the same for the last word of a ``words``-word packet.
"""

import json
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from star.golden.noc import channel_load, xy_path
from star.sim.noc_traffic import MeshDriver, Packet, sources
from star.sim.runner import env_config, env_seed
from star.sim.streams import start_clock_and_reset
from star.spec.noc_config import NocConfig

SAT_FACTOR = 3       # saturated: mean latency above SAT_FACTOR × zero-load latency, or
SAT_DRAIN = 4        # ... the window's packets not drained within SAT_DRAIN × measure cycles
BISECT = 3           # bisection steps after the first saturated rate


async def fresh(dut, cfg, rng):
    """Reset the mesh; return a new driver for it."""
    drv = MeshDriver(dut, cfg, p_stall=0.0, rng=rng)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    return drv


def check(drv, what, complete=True):
    """Fail on checker errors, and (``complete``) on expected packets that did not arrive."""
    errors = drv.errors + (drv.leftovers() if complete else [])
    assert not errors, f"{what}: {len(errors)} errors against golden.noc, first: {errors[0]}"


def write(opts, name, result):
    Path(opts["out"], f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True))


async def point(dut, cfg, opts, pattern, rate, rng) -> dict:
    """One offered load: warm up, measure, drain; return the figures."""
    drv = await fresh(dut, cfg, rng)
    w, m, words = opts["warmup"], opts["measure"], opts["words"]
    drv.add(sources(cfg, pattern, rate, (words, words), rng, 0, w + m))
    accepted, drained = 0, True
    while drv.waiting(None) or drv.in_flight:
        before = drv.delivered
        await drv.step(stop=None)
        if w < drv.cycle <= w + m:
            accepted += drv.delivered - before
        if drv.cycle > w + m + SAT_DRAIN * m:
            drained = False
            break
    check(drv, f"{pattern} rate {rate}", complete=drained)
    lat = [t - p.gen for p, t in drv.done if p.gen >= w]
    net = [t - p.start for p, t in drv.done if p.gen >= w]
    mean = float(np.mean(lat)) if lat else None
    zero = channel_load(cfg, pattern)["hops"] + words
    return {"rate": rate, "accepted": accepted / (m * cfg.nodes), "packets": len(lat),
            "latency": mean, "network_latency": float(np.mean(net)) if net else None,
            "saturated": not drained or mean is None or mean > SAT_FACTOR * zero}


@cocotb.test()
async def latency_sweep(dut):
    opts = env_config()
    cfg = NocConfig(**opts["noc"])
    rng = np.random.default_rng(env_seed())
    await start_clock_and_reset(dut)
    out = {}
    for pattern in opts["patterns"]:
        pts, ok, bad = [], 0.0, None
        for rate in opts["rates"]:
            pts.append(await point(dut, cfg, opts, pattern, rate, rng))
            if pts[-1]["saturated"]:
                bad = rate
                break
            ok = rate
        for _ in range(BISECT if bad is not None else 0):
            pts.append(await point(dut, cfg, opts, pattern, round((ok + bad) / 2, 4), rng))
            ok, bad = (ok, pts[-1]["rate"]) if pts[-1]["saturated"] else (pts[-1]["rate"], bad)
        out[pattern] = {"points": sorted(pts, key=lambda p: p["rate"]), "saturation": ok}
        dut._log.info(f"{pattern}: saturation throughput {ok} flits/cycle/node")
    write(opts, "latency_sweep", out)


@cocotb.test()
async def full_load(dut):
    opts = env_config()
    cfg = NocConfig(**opts["noc"])
    rng = np.random.default_rng(env_seed())
    await start_clock_and_reset(dut)
    w, m, words = opts["warmup"], opts["measure"], opts["words"]
    out = {}
    for pattern in opts["patterns"]:
        drv = await fresh(dut, cfg, rng)
        drv.add(sources(cfg, pattern, 1.0, (words, words), rng, 0, w + m))
        while drv.cycle < w:
            await drv.step(stop=None)
        start = drv.delivered
        while drv.cycle < w + m:
            await drv.step(stop=None)
        check(drv, f"{pattern} full load", complete=False)
        out[pattern] = (drv.delivered - start) / (m * cfg.nodes)
        dut._log.info(f"{pattern}: {out[pattern]:.3f} flits/cycle/node accepted at full load")
    write(opts, "full_load", out)


@cocotb.test()
async def zero_load(dut):
    opts = env_config()
    cfg = NocConfig(**opts["noc"])
    await start_clock_and_reset(dut)
    drv = MeshDriver(dut, cfg, p_stall=0.0, rng=np.random.default_rng(env_seed()))
    out = {}
    for src in drv.nodes:
        for dst in drv.nodes:
            hops = len(xy_path(cfg, src, dst)) - 1
            if hops in out:
                continue
            out[hops] = {"src": src, "dst": dst}
            for key, n in (("head", 1), ("packet", opts["words"])):
                drv.add({src: [Packet(src, dst, tuple(range(1, n + 1)), drv.cycle)]})
                await drv.run(stop=None, watchdog=100, limit=1000)
                p, t = drv.done[-1]
                out[hops][key] = t - p.start
    check(drv, "zero load")
    write(opts, "zero_load", {str(h): out[h] for h in sorted(out)})
