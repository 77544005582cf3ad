"""The `star` command: generate (reproducible), presets, show-config, errors."""

import json
import subprocess
import sys

import pytest
import yaml

from star.gen.cli import main
from star.spec.config import PRESETS, preset


def test_generate_is_byte_identical_and_path_free(tmp_path, capsys):
    """Reruns are byte-identical, whether the tops convert in parallel processes or in one."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["generate", "-p", "tiny", "-o", str(a), "-j", "2"]) == 0
    assert main(["generate", "-p", "tiny", "-o", str(b), "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert f"star: wrote {a}/rtl/star_sufa.v" in out
    names = sorted(p.name for p in (a / "rtl").iterdir())
    assert names == ["filelist.f", "star_core.v", "star_dlzs.v", "star_sads.v", "star_sufa.v"]
    files = [f"rtl/{n}" for n in names] + ["files.f", "regmap.md", "star_regs.h",
                                           "star_regs.py", "manifest.json", "star_tiny.core"]
    for name in files:
        text = (a / name).read_bytes()
        assert text == (b / name).read_bytes()
        assert b"/work" not in text and str(tmp_path).encode() not in text
    assert (a / "rtl" / "filelist.f").read_text().split() == names[1:]
    man = json.loads((a / "manifest.json").read_text())
    assert man["config"] == preset("tiny").to_dict() and len(man["config_sha256"]) == 64
    core_ports = {p["name"]: p for p in man["tops"]["star_core"]["ports"]}
    assert core_ports["m_axi_araddr"] == {"name": "m_axi_araddr", "dir": "output", "width": 32}
    assert core_ports["s_axil_wdata"]["dir"] == "input" and "irq" in core_ports
    assert man["register_map"]["registers"]["CTRL"]["offset"] == 0
    # FuseSoC: target default builds star_core, each top has its own target; every toplevel is
    # a module of the listed files
    core = yaml.safe_load((a / "star_tiny.core").read_text())
    assert core["filesets"]["rtl"]["files"] == [f"rtl/{n}" for n in names[1:]]
    assert core["targets"]["default"]["toplevel"] == "star_core"
    assert sorted(core["targets"]) == ["default", *(n[:-2] for n in names[1:])]
    sources = "".join((a / f).read_text() for f in core["filesets"]["rtl"]["files"])
    for target in core["targets"].values():
        assert f"\nmodule {target['toplevel']}(" in sources


def test_generate_spatial_array(tmp_path, capsys):
    """--mesh adds star_spatial (one AXI4 master per core); manifest and FuseSoC name it."""
    out = tmp_path / "a"
    assert main(["generate", "-p", "tiny", "--mesh", "1x2", "--tops", "star_spatial",
                 "-o", str(out)]) == 0
    assert (out / "rtl" / "filelist.f").read_text().split() == ["star_spatial.v"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["mesh"]["rows"] == 1 and man["mesh"]["cols"] == 2
    ports = {p["name"] for p in man["tops"]["star_spatial"]["ports"]}
    assert {"m0_axi_araddr", "m1_axi_araddr", "s_axil_awaddr", "irq"} <= ports
    assert "m2_axi_araddr" not in ports and "m_axi_araddr" not in ports
    assert "toplevel: star_spatial" in (out / "star_tiny.core").read_text()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_shows_and_generates(name, tmp_path, capsys):
    """CLI smoke over every preset: show-config, and generate one top (star_sads: its lanes and
    widths depend on every preset's shape, and it converts in seconds even at 128 lanes)."""
    assert main(["show-config", "-p", name]) == 0
    assert json.loads(capsys.readouterr().out)["config"] == PRESETS[name].to_dict()
    assert main(["generate", "-p", name, "--tops", "star_sads", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "rtl" / "filelist.f").read_text() == "star_sads.v\n"
    text = (tmp_path / "rtl" / "star_sads.v").read_text()
    # the lanes are one module (hw/shared.py), instanced once per lane
    assert text.count("module \\star_sads.sads.lane ") == 1
    assert text.count("\\star_sads.sads.lane  lane") == PRESETS[name].lanes
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert list(man["tops"]) == ["star_sads"] and man["config"]["name"] == name
    assert main(["generate", "-p", name, "--tops", "star_sads,nope"]) == 2
    assert "--tops must name tops among star_core" in capsys.readouterr().err


def test_register_map_renderings_agree(tmp_path):
    """The C header and the Python module name the same offsets as the description."""
    from star.gen import regmap
    from star.spec.regmap import registers
    cfg = preset("tiny")
    header = regmap.c_header(cfg)
    scope = {}
    exec(regmap.python_module(cfg), scope)
    for r in registers(cfg):
        assert f"#define STAR_{r.name}_OFFSET 0x{r.offset:02X}u" in header
        assert scope["REGMAP"]["registers"][r.name]["offset"] == r.offset
        assert f"| 0x{r.offset:02X} | {r.name} |" in regmap.markdown(cfg)
    offsets = [r.offset for r in registers(cfg)]
    assert len(set(offsets)) == len(offsets) and max(offsets) < 4 << 6


def test_presets_and_show_config(capsys):
    assert main(["presets"]) == 0
    assert "tiny       d=16 " in capsys.readouterr().out
    assert main(["show-config", "-p", "tiny", "-P", "k_tile=8"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["k_tile"] == 8 and shown["formats"]["pred_bits"] > 0
    # SU-FA lanes: P = 2 multipliers walk a 16-element row in 8 chunks; 4 lanes, one port
    assert shown["config"]["sufa_macs"] == 2
    assert {k: shown["formats"][k] for k in ("sufa_macs", "sufa_chunks", "sufa_ports")} == \
        {"sufa_macs": 2, "sufa_chunks": 8, "sufa_ports": 1}
    assert main(["show-config", "-p", "tiny", "-P", "sufa_macs=16"]) == 0
    shown = json.loads(capsys.readouterr().out)["formats"]
    assert (shown["sufa_chunks"], shown["sufa_ports"]) == (1, 4)


@pytest.mark.parametrize("argv, message", [
    (["show-config", "-p", "huge"], "preset must be one of"),
    (["show-config", "-P", "lanes=0"], "-P: lanes must be in [1, 256], not 0"),
    (["show-config", "-p", "tiny", "-P", "sufa_macs=32"],
     "-P: sufa_macs must be a power of two in [1, head_dim=16], not 32"),
    (["show-config", "-P", "nokey=1"], "-P expects key=value"),
    (["show-config", "-c", "missing.toml"], "no such config file"),
    (["generate", "-p", "tiny", "--mesh", "2by2"], "mesh must be ROWSxCOLS"),
    (["generate", "-p", "tiny", "--mesh", "1x1"], "--mesh 1x1: cols must be in [2, 8] when rows=1"),
    (["generate", "-p", "tiny", "--mesh", "9x2"], "--mesh 9x2: rows must be in [1, 8], not 9"),
    (["generate", "-p", "tiny", "-j", "0"], "--jobs must be an integer >= 1, not 0"),
    (["generate", "-p", "tiny", "--tops", "star_spatial"], "needs --mesh ROWSxCOLS"),
])
def test_user_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("star: ") and message in err and err.count("\n") == 1


def test_console_script_help_lists_defaults():
    star = [sys.executable, "-m", "star.gen.cli"]
    out = subprocess.run(star + ["generate", "--help"], capture_output=True, text=True, check=True)
    text = " ".join(out.stdout.split())
    assert "(default: default)" in text and "--outdir" in text
    bad = subprocess.run(star + ["frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_sim_runs_the_core_regression(capsys):
    """`star sim` runs one testbench test per simulation (the tiny model test_core builds)."""
    assert main(["sim", "-p", "tiny", "--tests", "axil_map", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "axil_map passed (seed 5" in out and "rerun with --seed 5" in out
    assert main(["sim", "-p", "tiny", "--tests", "axil_map,nope"]) == 2
    assert "--tests must name tests among" in capsys.readouterr().err


@pytest.mark.long
def test_sim_with_waves(capsys):
    """--waves leaves one FST per test (a separate ~100 s model build with tracing)."""
    assert main(["sim", "-p", "tiny", "--tests", "axil_map", "--seed", "5", "--waves"]) == 0
    fst = capsys.readouterr().out.split("waves ")[1].split(")")[0]
    assert fst.endswith("star_core-axil_map-s5.fst")
    with open(fst, "rb") as f:
        assert len(f.read(64)) == 64


def test_synth_reports_cells_per_module(tmp_path, capsys):
    assert main(["synth", "-p", "tiny", "--top", "star_sads", "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "synth.json").read_text())
    lane = report["modules"]["star_sads.sads.lane"]
    assert report["top"] == "star_sads" and lane["instances"] == 4
    assert lane["cells"] > 1000 and lane["flip_flops"] > 100
    assert report["total"]["cells"] > 4 * lane["cells"]
    assert "| star_sads.sads.lane | 4 |" in (tmp_path / "synth.md").read_text()
    assert main(["synth", "-p", "tiny", "--top", "nope"]) == 2
    assert "--top must be one of star_core" in capsys.readouterr().err


def test_bench_writes_report_json_and_plots(tmp_path, capsys):
    """A small `star bench`: dense and STAR jobs on the RTL, every job checked bit-exact."""
    assert main(["bench", "-p", "tiny", "--seqs", "20,48", "--k", "2,25%", "--area", "-o",
                 str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    labels = [r["label"] for r in report["results"]]
    assert labels == ["random S=20 dense", "random S=20 k=12%", "random S=20 k=25%",
                      "random S=48 dense", "random S=48 k=12%", "random S=48 k=25%"]
    for r in report["results"]:
        c = r["counters"]
        assert c["CYCLES"] > 0 and c["TILES"] == -(-r["seq_len"] // 16)
    text = (tmp_path / "report.md").read_text()
    assert "| random S=48 k=25% |" in text and "![cycles](cycles.png)" in text
    sufa_lane = report["area"]["modules"]["star_core.sufa.lane"]
    assert sufa_lane["instances"] == 4 and report["area"]["total"]["cells"] > 4 * sufa_lane["cells"]
    assert "| SU-FA |" in text and "![area](area.png)" in text
    for png in ("cycles.png", "bytes.png", "util.png", "area.png", "roofline.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert "![roofline](roofline.png)" in text and "| random S=48 k=25% | " in \
        text.split("## Roofline")[1]
    assert main(["bench", "-p", "tiny", "--seqs", "20", "--k", "8"]) == 2
    assert "--k must be at most k_tile=4" in capsys.readouterr().err


def test_roofline_roofs_of_the_tiny_preset():
    """Roofs by hand: tiny has 4 lanes × (2 + 2) multipliers = 16 MACs per cycle and a 64-bit bus,
    8 bytes per cycle: the ridge is at 2 MACs per byte. A job of 256 selected keys (d = 16: 256
    × 16 × 2 = 8192 MACs) reading 2048 bytes in 1024 cycles sits at (4 MAC/B, 8 MAC/cycle)."""
    from star.gen.bench import roofline_point, roofs
    cfg = preset("tiny")
    assert roofs(cfg) == {"compute": 16, "bus_bytes": 8, "ridge": 2.0}
    counters = {"KEYS_SELECTED": 256, "BYTES_READ": 2048, "CYCLES": 1024}
    assert roofline_point(cfg, counters) == (4.0, 8.0)
    assert roofs(preset("paper"))["compute"] == 512          # SOFA's 512 SU-FA multipliers
