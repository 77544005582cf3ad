"""Per-lane modules emitted once (hw.shared): one module instanced per lane, counted per instance
by gen.synth.module_stats; check that the shared design is the design every lane elaborated."""

import re

import pytest

from star.gen.build import blocks
from star.gen.synth import module_stats
from star.hw.verilog import convert
from star.spec.config import StarConfig, preset

STAGE = {"star_dlzs": "pred", "star_sads": "sads", "star_sufa": "sufa"}


@pytest.mark.parametrize("top", sorted(STAGE))
def test_shared_lanes_match_every_lane_elaborated(top, tmp_path):
    """The lanes of ``top`` are one module instanced 3 times; synthesizing it gives the same
    flip-flops and (within Yosys's optimisation of the parent) cells as the design converted
    without sharing, where every lane is its own module."""
    cfg = StarConfig(**{**preset("tiny").to_dict(), "lanes": 3})
    shared_text = convert(blocks(cfg, only=top)[top], name=top)
    every_text = convert(blocks(cfg, only=top)[top], name=top, share_lanes=False)
    lane = f"{top}.{STAGE[top]}.lane"
    assert shared_text.count(f"module \\{lane} ") == 1
    assert f"{top}.lane2" in every_text and f"{top}.lane2" not in shared_text
    shared = module_stats(shared_text, top, tmp_path / "shared")
    every = module_stats(every_text, top, tmp_path / "every")
    assert shared["modules"][lane]["instances"] == 3
    assert shared["total"]["flip_flops"] == every["total"]["flip_flops"]
    assert shared["total"]["memory_bits"] == every["total"]["memory_bits"]
    # ABC maps the same logic to a few cells more or less in differently named modules (the
    # SADS lanes of tiny: 1,348 cells shared, 1,357 and 1,358 as lane0..2 of their own)
    assert abs(shared["total"]["cells"] - every["total"]["cells"]) <= 0.01 * every["total"]["cells"]


def test_ecp5_cells_count_every_instance(tmp_path):
    """``star synth --ecp5`` (gen.synth.ecp5_cells): synth_ecp5 of the shared design counts each
    lane module once per instance: the same flip-flops and MULT18X18D as the design with every
    lane its own module, the multipliers attributed to the lane's units and the shared exp2 unit."""
    from star.gen.synth import ecp5_cells
    cfg = StarConfig(**{**preset("tiny").to_dict(), "lanes": 2})
    top = "star_sufa"
    shared = ecp5_cells(convert(blocks(cfg, only=top)[top], name=top), top, tmp_path / "shared")
    every = ecp5_cells(convert(blocks(cfg, only=top)[top], name=top, share_lanes=False), top,
                       tmp_path / "every")
    for cell in ("TRELLIS_FF", "MULT18X18D"):
        assert shared["by_type"][cell] == every["by_type"][cell], cell
    assert sum(shared["dsp_by_unit"].values()) == shared["by_type"]["MULT18X18D"] > 0
    # the lanes' multipliers, and the score-scale multiplier of the exp2 unit a group shares
    assert all(u.startswith("sufa.lane.") or re.fullmatch(r"exp\d+\.mul", u)
               for u in shared["dsp_by_unit"]), shared["dsp_by_unit"]
    assert any(u.startswith("exp") for u in shared["dsp_by_unit"]), shared["dsp_by_unit"]
    assert not shared["over"]
