"""Hierarchical synthesis with shared lanes (gen.synth.module_stats): one module per lane group is
synthesized and counted once per lane; check that this matches synthesizing every lane."""

import pytest

from gen.build import blocks
from gen.config import StarConfig, preset
from gen.synth import lane_groups, module_stats
from gen.verilog import convert


def test_lane_groups_take_the_outermost_lane_modules():
    text = "\n".join(f"module \\{n} (a);\nendmodule" for n in (
        "top", "top.sufa", "top.sufa.lane0", "top.sufa.lane0.exp", "top.sufa.lane1",
        "top.sufa.lane1.exp", "top.sufa.lane10", "top.mask2", "top.U$3"))
    assert lane_groups(text) == {
        "top.sufa.lane0": ["top.sufa.lane0", "top.sufa.lane1", "top.sufa.lane10"],
        "top.mask2": ["top.mask2"]}


@pytest.mark.parametrize("top", ["star_dlzs", "star_sads"])
def test_shared_lanes_match_every_lane_synthesized(top, tmp_path):
    cfg = StarConfig(**{**preset("tiny").to_dict(), "lanes": 3})
    text = convert(blocks(cfg, only=top)[top], name=top)
    shared = module_stats(text, top, tmp_path / "shared")
    every = module_stats(text, top, tmp_path / "every", share_lanes=False)
    lane = shared["modules"][f"{top}.lane0"]
    assert lane["lanes"] == lane["instances"] == 3
    assert f"{top}.lane2" not in shared["modules"] and f"{top}.lane2" in every["modules"]
    assert shared["total"]["flip_flops"] == every["total"]["flip_flops"]
    # the black-boxed lanes may let Yosys optimise the parent a little differently
    assert abs(shared["total"]["cells"] - every["total"]["cells"]) <= 0.005 * every["total"]["cells"]
