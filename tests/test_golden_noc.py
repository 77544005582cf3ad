"""golden.noc: XY paths, packet splitting, per-(src, dst) delivery order, traffic patterns and
channel-load bounds, against hand-derived values."""

import numpy as np
import pytest

from star.spec.noc_config import NocConfig
from star.golden.noc import (PATTERNS, channel_load, deliver, destinations, flit_kinds, next_port,
                             sample_destination, split, xy_path)
from star.spec.flit import FlitKind

C34 = NocConfig(rows=3, cols=4, flit_bits=8, max_packet_flits=3)
C44 = NocConfig()


def test_xy_path_goes_x_first_then_y():
    assert xy_path(C34, (0, 0), (3, 2)) == ((0, 0), (1, 0), (2, 0), (3, 0), (3, 1), (3, 2))
    assert xy_path(C34, (3, 2), (1, 0)) == ((3, 2), (2, 2), (1, 2), (1, 1), (1, 0))
    assert xy_path(C34, (2, 1), (2, 1)) == ((2, 1),)
    nodes = [(x, y) for y in range(3) for x in range(4)]
    for s in nodes:
        for d in nodes:
            path = xy_path(C34, s, d)
            assert len(path) - 1 == abs(s[0] - d[0]) + abs(s[1] - d[1])     # minimal
            turn = next((i for i, n in enumerate(path) if n[0] == d[0]), None)
            assert all(n[1] == s[1] for n in path[:turn + 1])             # y fixed until x done
            assert all(n[0] == d[0] for n in path[turn:])                 # then x fixed


def test_next_port():
    assert [next_port(C34, (1, 1), d) for d in [(3, 0), (0, 2), (1, 0), (1, 2), (1, 1)]] == \
        ["E", "W", "N", "S", "L"]


def test_split_and_flit_kinds():
    assert split(C34, [1, 2, 3, 4, 5, 6, 7]) == [(1, 2, 3), (4, 5, 6), (7,)]
    assert flit_kinds(1) == [FlitKind.SINGLE]
    assert flit_kinds(3) == [FlitKind.HEAD, FlitKind.BODY, FlitKind.TAIL]


def test_deliver_keeps_order_per_pair_and_splits():
    packets = [((0, 0), (3, 2), [1, 2, 3, 4]), ((1, 0), (3, 2), [5]), ((0, 0), (3, 2), [6]),
               ((0, 0), (0, 1), [7, 8])]
    got = deliver(C34, packets)
    assert sorted(got) == [(0, 1), (3, 2)]
    assert [d.words for d in got[3, 2][0, 0]] == [(1, 2, 3), (4,), (6,)]
    assert [d.index for d in got[3, 2][0, 0]] == [0, 0, 2]
    assert [d.words for d in got[3, 2][1, 0]] == [(5,)]
    assert got[0, 1][0, 0][0].hops == 1 and got[3, 2][1, 0][0].hops == 4


@pytest.mark.parametrize("packet,message", [
    (((0, 0), (4, 0), [1]), r"dst must be a node of the 3×4 mesh \(rows × cols\), not \(4, 0\)"),
    (((0, 3), (0, 0), [1]), r"src must be a node of the 3×4 mesh \(rows × cols\), not \(0, 3\)"),
    (((0, 0), (1, 0), []), "packet 0 has no words"),
    (((0, 0), (1, 0), [256]), "packet 0: word 256 does not fit 8 data bits"),
])
def test_deliver_rejects_bad_packets(packet, message):
    with pytest.raises(ValueError, match=message):
        deliver(C34, [packet])


@pytest.mark.parametrize("cfg", [C34, C44, NocConfig(rows=1, cols=2)])
def test_destinations_are_distributions(cfg):
    for pattern in PATTERNS:
        p = destinations(cfg, pattern)
        assert p.shape == (cfg.nodes, cfg.nodes) and np.allclose(p.sum(axis=1), 1)


def test_destination_patterns_on_4x4():
    ident = np.eye(16)
    for pattern in ("transpose", "bitcomp"):                 # permutations on a square mesh
        p = destinations(C44, pattern)
        assert np.array_equal(p.sum(axis=0), np.ones(16)) and set(p.flat) == {0, 1}
    assert destinations(C44, "transpose")[1 * 4 + 2, 2 * 4 + 1] == 1        # (2, 1) -> (1, 2)
    assert destinations(C44, "bitcomp")[0, 15] == 1                         # (0, 0) -> (3, 3)
    assert np.all(destinations(C44, "uniform")[ident == 1] == 0)
    hot = destinations(C44, "hotspot")[:, 2 * 4 + 2]                        # centre (2, 2)
    assert np.allclose(np.delete(hot, 10), 0.25 + 0.75 / 15) and hot[10] == 0.25
    near = destinations(C44, "neighbor")
    assert near[0, 1] == near[0, 4] == 0.5 and near[5].tolist().count(0.25) == 4
    rng = np.random.default_rng(1)
    draws = {sample_destination(C44, destinations(C44, "neighbor"), (0, 0), rng) for _ in range(50)}
    assert draws == {(1, 0), (0, 1)}


def test_channel_load_bounds_on_4x4():
    # uniform (no self traffic): row y's link from column 1 to 2 carries the packets of (0, y)
    # and (1, y) to the 8 nodes of columns 2-3, each with probability 1/15: load 16/15
    assert channel_load(C44, "uniform")["bound"] == pytest.approx(15 / 16)
    # transpose: row 3's link from column 2 to 3 carries sources x = 0, 1, 2 -> load 3
    assert channel_load(C44, "transpose")["max_link"] == pytest.approx(3)
    # bit complement: row y's link from column 1 to 2 carries sources (0, y) and (1, y): load 2
    assert channel_load(C44, "bitcomp")["bound"] == pytest.approx(0.5)
    # hotspot: the centre ejects 15 * (0.25 + 0.75/15) + 0.25 (its own) = 4.75
    assert channel_load(C44, "hotspot")["max_eject"] == pytest.approx(4.75)
    # mean hops: uniform 2 * 1.25 (mean |dx| over all 16 pairs of columns) * 16/15 (no self
    # traffic); bit complement 2 * mean |3 - 2x| = 2 * 2
    assert channel_load(C44, "uniform")["hops"] == pytest.approx(8 / 3)
    assert channel_load(C44, "bitcomp")["hops"] == pytest.approx(4)
    with pytest.raises(ValueError, match="pattern must be one of uniform, transpose"):
        destinations(C44, "tornado")


def test_hw_flit_kind_is_the_spec_flit_kind():
    """hw/noc/flit.py's Amaranth enum has exactly the members and values of spec/flit.py's."""
    from star.hw.noc import FlitKind as HwKind
    assert {k.name: k.value for k in HwKind} == {k.name: k.value for k in FlitKind}
