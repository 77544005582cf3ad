"""``star diagram`` (gen/diagram.py): the blocks and arrows drawn for star_core of the tiny preset
are the design's own. The expected units are the submodules Amaranth elaborates; the expected
arrows are the streams hw/core.py joins with ``wiring.connect``, each labelled with the payload
width of the driving component's port; the buses are the top's AXI ports."""

import copy
import shutil

import pytest
from amaranth.hdl import Fragment, Shape

from star.gen import diagram
from star.gen.cli import main
from star.hw.core import StarCore
from star.hw.verilog import convert
from star.spec.config import preset

CFG = preset("tiny")
# hw/core.py: wiring.connect(m, <driver>.<port>, <reader>...) of star_core, by instance name
STREAMS = [("arb", "out", "axi"), ("front", "req", "arb"), ("vfetch", "req", "arb"),
           ("sads", "o", "lists"), ("lists", "lists", "sufa"), ("lists", "union", "vfetch"),
           ("sufa", "o", "owriter"), ("owriter", "wr", "axi")]
LANE_UNITS = ("pred", "sads", "sufa")      # units with one lane per query lane


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    text = convert(StarCore(CFG), name="star_core")
    return diagram.netlist(text, "star_core", tmp_path_factory.mktemp("net"))


@pytest.fixture(scope="module")
def units():
    """{instance name: component} of star_core's submodules, as Amaranth elaborates them."""
    frag = Fragment.get(StarCore(CFG), None)
    return {name: sub.origins[0] for sub, name, _ in frag.subfragments}


def _payload_bits(component, port: str) -> int:
    return Shape.cast(component.signature.members[port].signature.members["payload"].shape).width


def check(blocks, links, units):
    """Every unit is a block, every joined stream an arrow with its payload width, the buses at
    the edge; raises AssertionError naming what is missing."""
    names = {b.name for b in blocks if b.kind == "unit"}
    assert names == set(units), f"blocks {sorted(names)} != submodules {sorted(units)}"
    labels = {(ln.src, ln.dst): ln.labels for ln in links}
    for src, port, dst in STREAMS:
        want = f"{port}: {_payload_bits(units[src], port)}"
        assert want in labels.get((src, dst), ()), \
            f"no arrow {src} -> {dst} labelled {want!r}: {labels.get((src, dst))}"
    for edge in [("AXI4 master m_axi", "axi"), ("axi", "AXI4 master m_axi"),
                 ("AXI4-Lite slave s_axil", "csr"), ("csr", "AXI4-Lite slave s_axil"),
                 ("csr", "irq")]:
        assert edge in labels, f"no arrow {edge[0]} -> {edge[1]}"


def test_blocks_and_arrows_are_the_designs(net, units):
    blocks, links = diagram.structure(net, "star_core")
    check(blocks, links, units)
    by_name = {b.name: b for b in blocks}
    for unit in LANE_UNITS:
        assert f"lane ×{CFG.lanes}" in by_name[unit].parts, by_name[unit]
    # the SU-FA K and V stores hold two tiles of d-element rows each (hw/tilebuf.py)
    stores = 2 * 2 * CFG.tile * CFG.head_dim * CFG.data_bits
    assert by_name["sufa"].mem_bits >= stores, by_name["sufa"]
    assert by_name["star_core logic"].kind == "logic"


def test_the_check_fails_without_a_unit_or_a_connection(net, units):
    """Dropping a unit from the netlist, or cutting one stream, is caught."""
    no_unit = copy.deepcopy(net)
    del no_unit["modules"]["star_core"]["cells"]["vfetch"]
    with pytest.raises(AssertionError, match="blocks"):
        check(*diagram.structure(no_unit, "star_core"), units)
    cut = copy.deepcopy(net)
    conns = cut["modules"]["star_core"]["cells"]["sufa"]["connections"]
    for port in [p for p in conns if p.startswith("lists__")]:     # unconnected bits
        conns[port] = ["x"] * len(conns[port])
    with pytest.raises(AssertionError, match="lists -> sufa"):
        check(*diagram.structure(cut, "star_core"), units)


def test_cell_shares_sum_to_one(net):
    """Shading: each block's share of a synthesis report's cells, every module counted once."""
    blocks, _ = diagram.structure(net, "star_core")
    modules = {m: {"cells": 10, "instances": 0} for b in blocks for m, _ in b.modules}
    for b in blocks:
        for m, k in b.modules:
            modules[m]["instances"] += k * b.count
    shares = diagram.cell_shares(blocks, {"top": "star_core", "modules": modules})
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["sufa"] > shares["csr"]          # the lanes' modules count once per lane


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed "
                                                        "(make install installs it)")
def test_star_diagram_writes_the_same_svg_twice(tmp_path, capsys, monkeypatch):
    """Once to the default path, once to -o, both in folders that do not exist yet (a fresh
    clone has no build/)."""
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "-q", "-p", "tiny"]) == 0
    assert main(["diagram", "-q", "-p", "tiny", "-o", "new/b.svg"]) == 0
    out = [tmp_path / "build" / "tiny" / "star_core.svg", tmp_path / "new" / "b.svg"]
    text = out[0].read_text()
    assert text == out[1].read_text()
    assert text.startswith("<?xml") and "sufa" in text and str(tmp_path) not in text
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == out   # no netlist files left


def test_star_diagram_rejects_bad_requests(tmp_path, capsys):
    for argv, words in [(["--top", "star_nope"], "--top must be one of"),
                        (["--top", "star_spatial"], "needs --mesh"),
                        (["-o", str(tmp_path / "x.png")], "-o must name an .svg file"),
                        (["--synth", str(tmp_path / "missing.json")], "--synth")]:
        assert main(["diagram", "-q", "-p", "tiny", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
