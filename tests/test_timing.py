"""`star timing`: Yosys onto the OSU 0.18 µm cells, then OpenSTA (gen.timing); the worst paths
are named by their RTL registers."""

import shutil

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from star.gen.cli import main
from star.hw.verilog import convert

needs_sta = pytest.mark.skipif(shutil.which("sta") is None,
                               reason="OpenSTA not installed (Debian package opensta; "
                                      "make install does it as root)")


class _Adder(wiring.Component):
    """s_r <= x_r + y_r: the only reg -> reg logic is the adder."""
    x: In(16)
    y: In(16)
    s: Out(17)

    def elaborate(self, platform):
        m = Module()
        x_r = Signal(16)
        y_r = Signal(16)
        s_r = Signal(17)
        m.d.sync += [x_r.eq(self.x), y_r.eq(self.y), s_r.eq(x_r + y_r), self.s.eq(s_r)]
        return m


class _Top(wiring.Component):
    a: In(16)
    b: In(16)
    o: Out(17)

    def elaborate(self, platform):
        m = Module()
        m.submodules.add = add = _Adder()
        m.d.comb += [add.x.eq(self.a), add.y.eq(self.b), self.o.eq(add.s)]
        return m


@needs_sta
def test_worst_path_named_by_rtl_registers(tmp_path):
    """The adder's path runs from x_r/y_r to s_r inside instance `add`; slack = period - setup -
    delay; a slower clock leaves positive slack, a too fast one a violation."""
    from star.gen.synth import ToolMissing, osu018_liberty
    from star.gen.timing import sta_timing, timing_markdown
    try:
        liberty = osu018_liberty()
    except ToolMissing as e:
        pytest.skip(str(e))
    text = convert(_Top(), name="top")
    fast = sta_timing(text, "top", tmp_path / "fast", liberty, period_ns=1.0)
    slow = sta_timing(text, "top", tmp_path / "slow", liberty, period_ns=50.0)
    for r in (fast, slow):
        p = r["paths"]["reg2reg"]
        assert p["start"].split("[")[0] in ("add/x_r", "add/y_r"), p["start"]
        assert p["end"].startswith("add/s_r["), p["end"]
        assert p["start_unit"] == p["end_unit"] == "add" and p["through"] == ["add"]
        assert p["delay_ns"] > 0 and p["setup_ns"] > 0 and p["levels"] >= 2
        assert abs(p["slack_ns"] - (r["period_ns"] - p["setup_ns"] - p["delay_ns"])) < 1e-3
        assert r["fmax_mhz"] == pytest.approx(1000 / (p["delay_ns"] + p["setup_ns"]), rel=1e-3)
        assert r["flip_flops"] == 16 + 16 + 17 + 17 and r["area_um2"] > 0
        assert r["worst_endpoints"][0]["slack_ns"] == r["wns_ns"]
        assert {u["unit"] for u in r["units"]} == {"add", "(outputs)"}
        assert r["paths"]["in2reg"]["end_unit"] == "add"
        assert r["paths"]["reg2out"]["start"].startswith("add/s[")
    assert fast["paths"]["reg2reg"]["slack_ns"] < 0 < slow["paths"]["reg2reg"]["slack_ns"]
    assert fast["violations"] > 0 == slow["violations"]
    md = timing_markdown(slow, "adder")
    assert "`add/s_r[" in md and "fmax" in md and str(tmp_path) not in md


@pytest.mark.parametrize("period", ["0", "-1", "nan", "inf"])
def test_bad_period_is_one_line(period, capsys):
    assert main(["timing", "-p", "tiny", "--period", period]) == 2
    err = capsys.readouterr().err
    assert err.startswith("star: --period must be a positive number") and err.count("\n") == 1


@needs_sta
def test_star_timing_command(tmp_path, capsys):
    """`star timing` on tiny's star_sads (a few seconds): timing.md printed and written, the
    same figures and names on a rerun, no paths in the reports."""
    import json
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["timing", "-q", "-p", "tiny", "--top", "star_sads", "-o", str(out)]) == 0
        printed = capsys.readouterr().out
        md = (out / "timing.md").read_text()
        assert printed.startswith(md) and f"star: wrote {out / 'timing.json'}" in printed
        rep = json.loads((out / "timing.json").read_text())
        assert str(tmp_path) not in md + json.dumps(rep)
        del rep["seconds"]
        runs.append((md.rsplit("Tools:", 1)[0], rep))
    assert runs[0] == runs[1]
    rep = runs[0][1]
    assert rep["top"] == "star_sads" and rep["config"]["name"] == "tiny"
    assert rep["paths"]["reg2reg"]["end_unit"] == "lane*" and "# Static timing of `star_sads`" in md
