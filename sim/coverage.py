"""Coverage of the core regression (``make regress``, tests/test_regress.py).

* Functional points: what a completed job exercised (:func:`job_points`, from its registers
  and the golden model's selection) and a wait on each AXI channel (valid high, ready low at
  a clock edge; sim/core_tb.py counts them). :data:`FUNCTIONAL_POINTS` must all be hit.
* Code coverage: :func:`summarize` reads the ``coverage.dat`` a Verilator model built with
  ``--coverage-line --coverage-toggle`` writes, points and hits per kind.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from star.golden import core as gcore
from star.golden.reference import causal_mask
from star.spec.regmap import RADIUS_OFF_VALUE

__all__ = ["AXI_CHANNELS", "FUNCTIONAL_POINTS", "axi_point", "job_points", "summarize"]

# (bus prefix, channel, valid, ready). m_axi B is absent: the core ties bready high
# (hw/axi.py), so the memory can never wait on it.
AXI_CHANNELS = [("m_axi", "ar", "arvalid", "arready"), ("m_axi", "r", "rvalid", "rready"),
                ("m_axi", "aw", "awvalid", "awready"), ("m_axi", "w", "wvalid", "wready"),
                ("s_axil", "aw", "awvalid", "awready"), ("s_axil", "w", "wvalid", "wready"),
                ("s_axil", "b", "bvalid", "bready"), ("s_axil", "ar", "arvalid", "arready"),
                ("s_axil", "r", "rvalid", "rready")]

JOB_POINTS = ["rescale taken", "merge taken", "all-clipped tile", "ragged tail",
              "causal diagonal tile", "partial lane block", "dense job", "sparse job"]


def axi_point(bus: str, channel: str) -> str:
    return f"{bus} {channel} wait"


# Counted but not required: m_axi R. The per-lane core takes every R beat: K rows are requested
# only into a free K-store slot, and by then the lanes have taken the previous tile's lists, so
# the predictor and SADS never stall a K row; V rows go to the V store and Q rows to the lanes'
# next-query registers unconditionally (a Spatial-STAR node core may wait on R for q_out).
NOT_REQUIRED = {axi_point("m_axi", "r")}

FUNCTIONAL_POINTS = JOB_POINTS + [axi_point(b, c) for b, c, _, _ in AXI_CHANNELS
                                  if axi_point(b, c) not in NOT_REQUIRED]


def job_points(cfg, regs: dict, want) -> set[str]:
    """The :data:`JOB_POINTS` one completed job hits. ``want`` is golden.core.run_job's result.

    rescale / merge taken: the SU-FA counters; all-clipped tile: the radius left only the max
    of a (query, tile) with two or more valid keys (K_TILE >= 2); ragged tail: SEQ_LEN not a
    multiple of the tile; causal diagonal tile: a query's causal limit falls inside a tile
    (not on its last key, not at the sequence end); partial lane block: Q_LEN not a multiple
    of the lanes."""
    sq, sk, tile = regs["Q_LEN"], regs["SEQ_LEN"], cfg.tile
    causal, dense = bool(regs["MODE"] & gcore.MODE_CAUSAL), bool(regs["MODE"] & gcore.MODE_DENSE)
    points = {"dense job" if dense else "sparse job"}
    if want.counters["RESCALES"]:
        points.add("rescale taken")
    if want.counters["MERGES"]:
        points.add("merge taken")
    if not dense and regs["RADIUS"] != RADIUS_OFF_VALUE and regs["K_TILE"] >= 2:
        valid = causal_mask(sq, sk) if causal else np.ones((sq, sk), bool)
        n_valid = np.stack([valid[:, j * tile:(j + 1) * tile].sum(axis=1)
                            for j in range(-(-sk // tile))], axis=1)
        kept = (want.sel >= 0).sum(axis=2)
        if np.any((n_valid >= 2) & (kept == 1)):
            points.add("all-clipped tile")
    if sk % tile:
        points.add("ragged tail")
    if causal:
        lim = np.arange(sq) + sk - sq                        # the last key each query sees
        if np.any((lim % tile != tile - 1) & (lim < sk - 1)):
            points.add("causal diagonal tile")
    if sq % cfg.lanes:
        points.add("partial lane block")
    return points


_POINT = re.compile(r"^C '(.*)' (\d+)$")


def summarize(dat: Path) -> dict:
    """Points and hit points per coverage kind (``line``, ``toggle``, ``branch``, ...) of a
    Verilator ``coverage.dat``: {kind: {"points", "hit", "percent"}}."""
    points, hit = defaultdict(int), defaultdict(int)
    for line in Path(dat).read_text(errors="replace").splitlines():
        m = _POINT.match(line)
        if not m:
            continue
        fields = dict(f.split("\x02", 1) for f in m.group(1).split("\x01") if "\x02" in f)
        kind = fields.get("page", "v_other/").split("/")[0].removeprefix("v_")
        points[kind] += 1
        hit[kind] += int(m.group(2)) > 0
    return {k: {"points": points[k], "hit": hit[k],
                "percent": round(100.0 * hit[k] / points[k], 1)} for k in sorted(points)}
