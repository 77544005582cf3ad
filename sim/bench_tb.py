"""cocotb bench: run STAR and dense jobs on the core, check them, record the counters.

Used by ``star bench`` (gen/bench.py). Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields,
"out": JSON path to write, "cases": [{"label", "data": "random" | path of a captured .npz,
"head": query head index (npz; its kv head by grouped-query), "seq_len", "q_len", "dense",
"k_tile", optional "causal" (default false), "radius" (default -1, off; as in
sim/core_tb.py)}], optional "mem_bytes": the RAM model's size (default 1 MiB;
gen.bench.ram_bytes)}. Random data: standard normal Q/K/V, seed from the runner. Every job
is checked like the regression does (O bit-exact against
golden.core, counters, no stray bus access) before its counters are recorded; no bus stalls.
"""

import json

import cocotb
import numpy as np

from star.golden import core as gcore
from star.sim.core_tb import Core
from star.sim.tb_base import OPTS
from star.spec.regmap import COUNTERS


def job_for(core: Core, case: dict) -> dict:
    """The bench job of a case: its data, packed tensors, no radius (Core.make_job)."""
    d = core.cfg.head_dim
    sq, sk = case["q_len"], case["seq_len"]
    if case["data"] == "random":
        data = tuple(core.rng.standard_normal((n, d)) for n in (sq, sk, sk))
    else:
        z = np.load(case["data"])
        h = case["head"]
        kv = h // (z["q"].shape[0] // z["k"].shape[0])      # grouped-query: its kv head
        data = tuple(np.asarray(a, np.float64)
                     for a in (z["q"][h, -sq:], z["k"][kv, :sk], z["v"][kv, :sk]))
    spec = {"q_len": sq, "seq_len": sk, "causal": case.get("causal", False),
            "dense": case["dense"], "k_tile": case["k_tile"], "radius": case.get("radius", -1)}
    return core.make_job(spec, case["label"], data=data,
                         layout=gcore.packed_layout(core.cfg, sq, sk))


@cocotb.test()
async def bench(dut):
    core = Core(dut)
    await core.start()
    results = []
    for case in OPTS["cases"]:
        job = job_for(core, case)
        await core.run(job)
        counters = {name: await core.read(name) for name, _ in COUNTERS}
        results.append({**case, "counters": counters, "blocks": job["want"].blocks})
        dut._log.info(f"{case['label']}: {counters}")
    with open(OPTS["out"], "w") as f:
        json.dump(results, f, indent=1)
