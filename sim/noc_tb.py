"""cocotb testbench: the mesh NoC (hw.noc.Mesh) against golden.noc.

Config (STAR_TEST_CONFIG): {"noc": NocConfig fields, "phases": [{"pattern", "rate" (offered
flits/cycle/node), "cycles" (packets are generated, and may start, during that many cycles),
"lengths": [min, max] words, "p_stall" (probability a node's eject port is not ready in a
cycle)}], "pairs": (src, dst) pairs for the zero-load test (0: all)}.

``traffic``: runs the phases back to back; after each one every packet that was started must have
arrived exactly once, intact and in order per (src, dst), as golden.noc says, and nothing else
(checker: :class:`sim.noc_traffic.MeshDriver`). ``zero_load``: one packet at a time; its first
word must arrive hops + 1 cycles after it was injected (hops from golden.noc.xy_path) and an
n-word packet's last word n - 1 cycles after that.
"""

import cocotb
import numpy as np

from star.golden.noc import xy_path
from star.sim.noc_traffic import MeshDriver, Packet, sources
from star.sim.runner import env_config, env_seed
from star.sim.streams import start_clock_and_reset
from star.spec.noc_config import NocConfig

WATCHDOG = 2000       # cycles without any ejection, with words in flight, that count as deadlock
SETTLE = 50           # idle cycles after a phase in which nothing may arrive


def check(dut, drv, what: str):
    """Fail with the first mismatches if the driver's checker found any, or packets are missing."""
    errors = drv.errors + drv.leftovers()
    for e in errors[:5]:
        dut._log.error(f"{what}: {e}")
    assert not errors, f"{what}: {len(errors)} errors against golden.noc, first: {errors[0]}"


@cocotb.test()
async def traffic(dut):
    opts = env_config()
    cfg = NocConfig(**opts["noc"])
    seed = env_seed()
    rng = np.random.default_rng(seed)
    await start_clock_and_reset(dut)
    drv = MeshDriver(dut, cfg, p_stall=0.0, rng=rng)
    for k, ph in enumerate(opts["phases"]):
        what = f"{cfg} seed {seed} phase {k} ({ph['pattern']}, rate {ph['rate']})"
        drv.p_stall = ph["p_stall"]
        t0, started, n_done = drv.cycle, drv.words_started, len(drv.done)
        drv.add(sources(cfg, ph["pattern"], ph["rate"], tuple(ph["lengths"]), rng, t0,
                        t0 + ph["cycles"]))
        await drv.run(stop=t0 + ph["cycles"], watchdog=WATCHDOG, limit=50 * ph["cycles"] + 10000)
        for _ in range(SETTLE):
            await drv.step(stop=0)
        check(dut, drv, what)
        flits, cycles = drv.words_started - started, drv.cycle - t0
        dut._log.info(f"{what}, stall {ph['p_stall']}: {len(drv.done) - n_done} packets, "
                      f"{flits} flits in {cycles} cycles ({flits / cycles / cfg.nodes:.3f} "
                      f"flits/cycle/node) all delivered, intact, in order")


@cocotb.test()
async def zero_load(dut):
    opts = env_config()
    cfg = NocConfig(**opts["noc"])
    rng = np.random.default_rng(env_seed())
    await start_clock_and_reset(dut)
    drv = MeshDriver(dut, cfg, p_stall=0.0, rng=rng)
    pairs = [(s, d) for s in drv.nodes for d in drv.nodes]
    if opts["pairs"]:
        pairs = [pairs[i] for i in rng.choice(len(pairs), opts["pairs"], replace=False)]
    n = min(3, cfg.max_packet_flits)
    for src, dst in pairs:
        for words in ((7,), tuple(range(1, n + 1))):
            drv.add({src: [Packet(src, dst, words, drv.cycle)]})
            await drv.run(stop=None, watchdog=WATCHDOG, limit=1000)
            p, t_tail = drv.done[-1]
            latency = t_tail - p.start
            want = len(xy_path(cfg, src, dst)) + len(words) - 1
            assert latency == want, f"{src} -> {dst}, {len(words)} words: {latency} cycles, " \
                                    f"expected hops + 1 + words - 1 = {want}"
    check(dut, drv, f"{cfg} zero load")
    dut._log.info(f"zero-load latency = hops + 1 (+ words - 1) on {len(pairs)} pairs")
