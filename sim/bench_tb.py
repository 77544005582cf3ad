"""cocotb bench: run STAR and dense jobs on the core, check them, record the counters.

Used by ``star bench`` (gen/bench.py). Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields,
"out": JSON path to write, "cases": [{"label", "data": "random" | path of a captured .npz,
"head": head index (npz), "seq_len", "q_len", "dense", "k_tile"}]}. Random data: standard normal
Q/K/V, seed from the runner. Every job is checked like the regression does (O bit-exact against
golden.core, counters, no stray bus access) before its counters are recorded; no bus stalls.
"""

import json

import cocotb
import numpy as np

from golden import core as gcore
from golden import pipeline
from hw.regmap import COUNTERS, RADIUS_OFF_VALUE
from sim.core_tb import OPTS, Core


def job_for(core: Core, case: dict) -> dict:
    cfg, fmt, d = core.cfg, core.fmt, core.cfg.head_dim
    sq, sk = case["q_len"], case["seq_len"]
    if case["data"] == "random":
        q, k, v = (core.rng.standard_normal((n, d)) for n in (sq, sk, sk))
    else:
        z = np.load(case["data"])
        h = case["head"]
        q, k, v = z["q"][h, -sq:], z["k"][h, :sk], z["v"][h, :sk]
    h = pipeline.prepare(fmt, q, k, v, causal=False, softmax_scale=d ** -0.5)
    regs = {**gcore.packed_layout(cfg, sq, sk), "SEQ_LEN": sk, "Q_LEN": sq,
            "K_TILE": case["k_tile"], "RADIUS": RADIUS_OFF_VALUE, "SCALE_MANT": h.mant,
            "SCALE_SHIFT": h.shift, "MODE": gcore.MODE_DENSE * bool(case["dense"])}
    want = gcore.run_job(cfg, h.q, h.k, h.v, regs)
    beats = (want.counters["BYTES_READ"] + want.counters["BYTES_WRITTEN"]) // fmt.bus_bytes
    return {"name": case["label"], "regs": regs, "want": want, "q": h.q, "k": h.k, "v": h.v,
            "limit": 50 * beats + 100_000}


@cocotb.test()
async def bench(dut):
    core = Core(dut)
    await core.start()
    results = []
    for case in OPTS["cases"]:
        job = job_for(core, case)
        await core.run_checked(job)
        counters = {name: await core.read(name) for name, _ in COUNTERS}
        results.append({**case, "counters": counters})
        dut._log.info(f"{case['label']}: {counters}")
    with open(OPTS["out"], "w") as f:
        json.dump(results, f, indent=1)
