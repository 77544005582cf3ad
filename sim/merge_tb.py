"""cocotb testbench: the partial-state merge unit against golden.spatial.merge, bit-exact.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "jobs": job batches, "random": random
batches, "pairs": pairs per random batch, "p_idle": a/b idle probability, "p_stall": out stall
probability}. Batches (``sim/merge_cases.py``), each with its own score scale: pairs of the merge
chain of random small sharded jobs, random pairs within the widths (two at an ordinary scale, one
steep, where most factors underflow), then a batch with no idling or stalls that checks the
latency and the cycles per pair. Every output field (has, m, l, o) must equal the model's, and out
must hold valid and its payload while it is not taken.
"""

import random

import cocotb
import numpy as np

from star.hw.layouts import partial_layout
from star.hw.merge import merge_interval, merge_latency
from star.sim.merge_cases import check_fits, factor_classes, golden_merge, job_batch, random_batch
from star.sim.runner import env_config, env_seed
from star.sim.streams import StreamSink, StreamSource, run_streams, start_clock_and_reset
from star.spec.config import StarConfig


class HoldingSink(StreamSink):
    """A sink that also checks the source's side of the handshake: once valid, out keeps valid
    and its payload until the transfer."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.pending = None
        self.held = 0            # cycles out was valid and not taken

    def sample(self, cycle: int):
        valid, ready = int(self.valid.value), int(self.ready.value)
        payload = int(self.payload.value) if valid else None
        if self.pending is not None:
            assert valid and payload == self.pending, \
                f"cycle {cycle}: out dropped or changed before it was taken"
        self.pending = payload if valid and not ready else None
        self.held += self.pending is not None
        super().sample(cycle)


def compare(dut, got, want, name):
    errors = [(i, k) for i, (g, w) in enumerate(zip(got, want)) for k in ("has", "m", "l", "o")
              if g[k] != w[k]]
    for i, k in errors[:6]:
        dut._log.error(f"{name} pair {i} field {k}: expected {want[i][k]}, got {got[i][k]}")
    assert len(got) == len(want), f"{name}: {len(got)} outputs for {len(want)} pairs"
    assert not errors, f"{len(errors)} mismatching fields in batch {name}"


@cocotb.test()
async def merge_matches_golden(dut):
    opts = env_config()
    cfg = StarConfig(**opts["cfg"])
    fmt = cfg.formats
    seed = env_seed()
    dut._log.info(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layout = partial_layout(cfg)
    batches = [(f"job{i}", *job_batch(cfg, rng)) for i in range(opts["jobs"])]
    batches += [(f"random{i}", *random_batch(cfg, rng, opts["pairs"]))
                for i in range(opts["random"])]
    batches.append(("steep", *random_batch(cfg, rng, opts["pairs"], steep=True)))
    batches.append(("rate", *random_batch(cfg, rng, 8)))
    await start_clock_and_reset(dut)
    totals = {}
    for n, (name, mant, shift, pairs) in enumerate(batches):
        want = golden_merge(pairs, mant, shift, fmt)
        check_fits([s for p in pairs for s in p] + want, fmt)
        for k, v in factor_classes(pairs, mant, shift, fmt).items():
            totals[k] = totals.get(k, 0) + v
        free = name == "rate"
        p_idle, p_stall = (0.0, 0.0) if free else (opts["p_idle"], opts["p_stall"])
        dut.mant.value, dut.shift.value = mant, shift
        a = StreamSource(dut, "a", layout, [x for x, _ in pairs], p_idle=p_idle,
                         rng=random.Random(seed * 7 + 3 * n))
        b = StreamSource(dut, "b", layout, [y for _, y in pairs], p_idle=p_idle,
                         rng=random.Random(seed * 7 + 3 * n + 1))
        out = HoldingSink(dut, "out", layout, p_stall=p_stall,
                          rng=random.Random(seed * 7 + 3 * n + 2))
        cycles = await run_streams(dut, [a, b], [out], lambda: len(out.received) == len(pairs),
                                   20 * len(pairs) * (cfg.head_dim + 10) + 100)
        compare(dut, out.received, want, name)
        dut._log.info(f"batch {name}: {len(pairs)} pairs, {cycles} cycles, bit-exact "
                      f"(mant {mant}, shift {shift}; out held {out.held} cycles)")
        if free:
            lat = [o - max(x, y) for o, x, y in zip(out.times, a.times, b.times)]
            gaps = np.diff(out.times).tolist()
            assert lat[0] == merge_latency(cfg), f"latency {lat[0]} != {merge_latency(cfg)}"
            assert set(gaps) == {merge_interval(cfg)}, \
                f"cycles per pair {gaps} != {merge_interval(cfg)}"
            dut._log.info(f"latency {lat[0]} cycles, one pair per {gaps[0]} cycles")
    dut._log.info(f"coverage: {totals}")
    # the random draws must have exercised every case (they do for any seed with these sizes)
    assert all(totals[k] for k in totals), f"a case was never drawn: {totals}"
