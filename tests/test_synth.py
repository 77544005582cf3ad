"""Per-lane modules emitted once (hw.shared): one module instanced per lane, counted per instance
by gen.synth.module_stats; check that the shared design is the design every lane elaborated."""

import pytest
from amaranth.back import verilog as amaranth_verilog

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
    every_text = amaranth_verilog.convert(blocks(cfg, only=top)[top], name=top, emit_src=False)
    lane = f"{top}.{STAGE[top]}.lane"
    assert shared_text.count(f"module \\{lane} ") == 1
    assert f"{top}.lane2" in every_text and f"{top}.lane2" not in shared_text
    shared = module_stats(shared_text, top, tmp_path / "shared")
    every = module_stats(every_text, top, tmp_path / "every")
    assert shared["modules"][lane]["instances"] == 3
    assert shared["total"]["flip_flops"] == every["total"]["flip_flops"]
    assert shared["total"]["memory_bits"] == every["total"]["memory_bits"]
    assert abs(shared["total"]["cells"] - every["total"]["cells"]) <= 0.005 * every["total"]["cells"]
