"""cocotb bench: jobs on the Spatial-STAR array, each checked, their counters recorded.

Used by ``scripts/bench_spatial.py``. Config (STAR_TEST_CONFIG): as sim/spatial_tb.py plus "out":
JSON path to write, "cases": [{"label", "q_len", "seq_len", "dense", "k_tile"}]. Random normal
Q/K/V (seed from the runner), packed tensors, no radius, no bus stalls; every job is checked
like the regression does (O bit-exact against golden.spatial, counters, traffic per channel).
"""

import json

import cocotb

from star.sim.spatial_tb import Array
from star.sim.tb_base import OPTS
from star.spec.regmap import COUNTERS


@cocotb.test()
async def bench(dut):
    a = Array(dut)
    await a.start()
    results = []
    for case in OPTS["cases"]:
        spec = {"q_len": case["q_len"], "seq_len": case["seq_len"], "causal": False,
                "dense": case["dense"], "k_tile": case["k_tile"], "radius": -1}
        job = a.make_job(spec, case["label"], packed=True)
        await a.run(job)
        counters = {name: await a.read(name) for name, _ in COUNTERS}
        results.append({**case, "counters": counters})
        dut._log.info(f"{case['label']}: {counters}")
    with open(OPTS["out"], "w") as f:
        json.dump(results, f, indent=1)
