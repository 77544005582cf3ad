"""Verilator ``--lint-only -Wall`` of the generated Verilog: clean with the documented waivers
(the one waiver file sim/waivers.vlt, each waiver justified there).

Every linted text is also compared with its SHA-256 recorded in tests/verilog_hashes.json, so a
change that was meant to change no hardware (a refactor) is checked to be byte-identical. A change
that is meant to change the hardware re-records the list: ``make verilog-hashes``.
"""

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from star.gen.build import SPATIAL_TOP, TOPS, blocks
from star.hw.verilog import convert
from star.sim.runner import WAIVER_FILE, lint
from star.spec.config import preset

# fast: every top of the tiny preset, a small array, two corner configs; long: every top of
# the other presets (paper: the tops that convert in seconds at 128 lanes)
FAST = [("tiny", top, None) for top in TOPS] + [("tiny", SPATIAL_TOP, (1, 2)),
                                                 ("minimal", "star_core", None),
                                                 ("wide_pred", "star_core", None)]
LONG = [(p, top, None) for p in ("default", "bench", "int8") for top in TOPS] \
    + [("paper", top, None) for top in ("star_dlzs", "star_sads")] \
    + [("micro", SPATIAL_TOP, (2, 2))]


def _config(name):
    if name == "micro":      # the spatial regression's small core
        return replace(preset("tiny"), name="micro", head_dim=8, lanes=2, tile=8, k_tile=2)
    if name == "wide_pred":  # 36-bit predicted scores: radius_max capped at 2**32 - 2 (regress)
        return replace(preset("tiny"), name="wide_pred", data_bits=16, dlzs_k_bits=16,
                       dlzs_shift_bits=4, max_seq=64)
    if name == "minimal":    # every size at its lower bound (make regress found k_tile 1 unclean)
        return replace(preset("tiny"), name="minimal", head_dim=4, lanes=1, tile=4, k_tile=1,
                       max_seq=4, axi_data_bits=32)
    return preset(name)


HASH_FILE = Path(__file__).with_name("verilog_hashes.json")


def _check_hash(key, text, record):
    """Compare the SHA-256 of *text* with the one recorded for *key*; ``record``: store it."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    hashes = json.loads(HASH_FILE.read_text()) if HASH_FILE.exists() else {}
    if record:
        hashes[key] = digest
        HASH_FILE.write_text(json.dumps(dict(sorted(hashes.items())), indent=1) + "\n")
        return
    assert key in hashes, f"{key}: no hash recorded in {HASH_FILE.name} (make verilog-hashes)"
    assert hashes[key] == digest, \
        f"{key}: the Verilog changed (sha256 {digest[:12]}, recorded {hashes[key][:12]}); " \
        "if the hardware change is intended, re-record with `make verilog-hashes`"


def _lint(name, top, mesh, tmp_path, record=False):
    comp = blocks(_config(name), only=top, mesh=mesh)[top]
    text = convert(comp, name=top)
    found = lint(text, top, tmp_path)
    assert not found, f"{name} {top}: {len(found)} lint warnings, first: {found[:3]}"
    _check_hash(f"{name}/{top}" + (f"@{mesh[0]}x{mesh[1]}" if mesh else ""), text, record)


@pytest.mark.parametrize("name, top, mesh", FAST)
def test_lint_wall_clean(name, top, mesh, tmp_path, request):
    _lint(name, top, mesh, tmp_path, request.config.getoption("--record-hashes"))


@pytest.mark.long
@pytest.mark.parametrize("name, top, mesh", LONG)
def test_lint_wall_clean_presets(name, top, mesh, tmp_path, request):
    _lint(name, top, mesh, tmp_path, request.config.getoption("--record-hashes"))


def test_lint_reports_a_real_warning(tmp_path):
    """The check can fail: a constant comparison (what Verilator rejects in builds too)."""
    text = "module t(input [3:0] a, output y);\n  assign y = a < 4'h0;\nendmodule\n"
    found = lint(text, "t", tmp_path)
    assert any("UNSIGNED" in line or "CMPCONST" in line for line in found), found


def test_waiver_file_is_justified():
    """sim/waivers.vlt holds only `lint_off -rule` lines, each preceded by its justification
    (a comment block naming the rule); no file- or line-scoped waiver can slip in unexplained."""
    lines = WAIVER_FILE.read_text().splitlines()
    assert lines[0] == "`verilator_config", "waivers.vlt must start with `verilator_config"
    rules = []
    for n, line in enumerate(lines[1:], 2):
        text = line.strip()
        if not text or text.startswith("//"):
            continue
        words = text.split()
        assert len(words) == 3 and words[:2] == ["lint_off", "-rule"], \
            f"waivers.vlt line {n}: only global `lint_off -rule NAME` waivers, not {text!r}"
        comment = []
        for prev in reversed(lines[:n - 1]):
            if not prev.startswith("//"):
                break
            comment.append(prev)
        assert any(words[2] in c for c in comment), \
            f"waivers.vlt line {n}: {words[2]} has no comment above it saying why"
        rules.append(words[2])
    assert len(rules) == len(set(rules)) and rules, f"waivers.vlt rules: {rules}"
