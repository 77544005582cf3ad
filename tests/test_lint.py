"""Verilator ``--lint-only -Wall`` of the generated Verilog: clean with the documented waivers
(sim/runner.py: VERILATOR_WAIVERS, LINT_WAIVERS, each justified there)."""

from dataclasses import replace

import pytest

from gen.build import SPATIAL_TOP, TOPS, blocks
from gen.config import preset
from gen.verilog import convert
from sim.runner import lint

# fast: every top of the tiny preset and a small array; long: the other presets (paper: the
# tops that convert in seconds at 128 lanes)
FAST = [("tiny", top, None) for top in TOPS] + [("tiny", SPATIAL_TOP, (1, 2))]
LONG = [(p, top, None) for p in ("default", "bench", "int8") for top in TOPS] \
    + [("paper", top, None) for top in ("star_dlzs", "star_sads")] \
    + [("micro", SPATIAL_TOP, (2, 2))]


def _config(name):
    if name == "micro":      # the spatial regression's small core
        return replace(preset("tiny"), name="micro", head_dim=8, lanes=2, tile=8, k_tile=2)
    return preset(name)


def _lint(name, top, mesh, tmp_path):
    comp = blocks(_config(name), only=top, mesh=mesh)[top]
    found = lint(convert(comp, name=top), top, tmp_path)
    assert not found, f"{name} {top}: {len(found)} lint warnings, first: {found[:3]}"


@pytest.mark.parametrize("name, top, mesh", FAST)
def test_lint_wall_clean(name, top, mesh, tmp_path):
    _lint(name, top, mesh, tmp_path)


@pytest.mark.long
@pytest.mark.parametrize("name, top, mesh", LONG)
def test_lint_wall_clean_presets(name, top, mesh, tmp_path):
    _lint(name, top, mesh, tmp_path)


def test_lint_reports_a_real_warning(tmp_path):
    """The check can fail: a constant comparison (what Verilator rejects in builds too)."""
    text = "module t(input [3:0] a, output y);\n  assign y = a < 4'h0;\nendmodule\n"
    found = lint(text, "t", tmp_path)
    assert any("UNSIGNED" in line or "CMPCONST" in line for line in found), found
