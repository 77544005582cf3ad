"""Cycle-free model of the mesh NoC (:mod:`hw.noc`): where packets go, by which path, in what order.

The mesh routes XY (x first, then y) and is wormhole-switched with in-order FIFOs, so the outcome
of any traffic is fixed without simulating cycles: every packet reaches its destination along its
XY path, and the packets of one (src, dst) pair arrive in injection order. Packets from different
sources interleave at a destination in a timing-dependent way, so the model states the order per
(src, dst) pair only. Packets longer than ``max_packet_flits`` words are split by the NI.

Also here: the traffic patterns of the tests and the benchmark (destination distributions) and
the channel-load bound on saturation throughput they imply (Dally & Towles ch. 3).

Nodes are (x, y) tuples: x = column, y = row (0 = north-west corner), as in :mod:`star.spec.flit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from star.spec.flit import FlitKind

__all__ = ["PATTERNS", "Delivered", "xy_path", "next_port", "split", "flit_kinds",
           "network_packets", "deliver", "destinations", "sample_destination", "channel_load"]

PATTERNS = ("uniform", "transpose", "bitcomp", "hotspot", "neighbor")
HOTSPOT_FRACTION = 0.25   # share of a node's packets that go to the hotspot node (hotspot pattern)


@dataclass(frozen=True)
class Delivered:
    """One network packet as the destination receives it."""

    index: int                        # position of the packet it came from in deliver()'s input
    src: tuple[int, int]
    dst: tuple[int, int]
    words: tuple[int, ...]
    path: tuple[tuple[int, int], ...]  # nodes visited, src and dst included

    @property
    def hops(self) -> int:
        return len(self.path) - 1


def _check_node(cfg, node, what: str):
    x, y = node
    if not (0 <= x < cfg.cols and 0 <= y < cfg.rows):
        raise ValueError(f"{what} must be a node of the {cfg.rows}×{cfg.cols} mesh "
                         f"(rows × cols), not {node}")


def xy_path(cfg, src, dst) -> tuple[tuple[int, int], ...]:
    """Return the nodes an XY-routed packet visits from src to dst, both included."""
    _check_node(cfg, src, "src")
    _check_node(cfg, dst, "dst")
    (x, y), path = src, [tuple(src)]
    while x != dst[0]:
        x += 1 if dst[0] > x else -1
        path.append((x, y))
    while y != dst[1]:
        y += 1 if dst[1] > y else -1
        path.append((x, y))
    return tuple(path)


def next_port(cfg, at, dst) -> str:
    """Return the output ("N", "E", "S", "W" or "L") a head flit for dst takes at router ``at``."""
    path = xy_path(cfg, at, dst)
    if len(path) == 1:
        return "L"
    dx, dy = path[1][0] - at[0], path[1][1] - at[1]
    return {(1, 0): "E", (-1, 0): "W", (0, 1): "S", (0, -1): "N"}[dx, dy]


def split(cfg, words) -> list[tuple[int, ...]]:
    """Cut a packet's words into network packets of at most ``max_packet_flits`` words."""
    n = cfg.max_packet_flits
    return [tuple(words[i:i + n]) for i in range(0, len(words), n)]


def flit_kinds(n: int) -> list[FlitKind]:
    """Return the kinds of the flits of an n-word network packet."""
    return [FlitKind.of(i == 0, i == n - 1) for i in range(n)]


def network_packets(cfg, src, dst, words, index: int = 0) -> list[Delivered]:
    """Return the network packets one packet of ``words`` from src to dst becomes, in order.

    Raises ValueError for a node outside the mesh, no words, or a word wider than the data field.
    """
    src, dst = tuple(src), tuple(dst)
    path = xy_path(cfg, src, dst)
    width = cfg.flit_bits
    if not words:
        raise ValueError(f"packet {index} has no words")
    for w in words:
        if not 0 <= w < 1 << width:
            raise ValueError(f"packet {index}: word {w} does not fit {width} data bits")
    return [Delivered(index, src, dst, part, path) for part in split(cfg, list(words))]


def deliver(cfg, packets) -> dict:
    """Return {dst: {src: [Delivered, ...]}} for ``packets``, a list of (src, dst, words).

    Each source injects its packets in list order. Per (src, dst) the list holds the network
    packets in arrival order. Raises ValueError as :func:`network_packets`.
    """
    out: dict = {}
    for index, (src, dst, words) in enumerate(packets):
        for d in network_packets(cfg, src, dst, words, index):
            out.setdefault(d.dst, {}).setdefault(d.src, []).append(d)
    return out


def _nodes(cfg) -> list[tuple[int, int]]:
    return [(x, y) for y in range(cfg.rows) for x in range(cfg.cols)]


def destinations(cfg, pattern: str) -> np.ndarray:
    """Return P[s, d]: probability that a packet of node s goes to node d (node index y*cols+x).

    uniform: any other node. transpose: (x, y) -> (y mod cols, x mod rows) (a permutation on
    square meshes). bitcomp: (cols-1-x, rows-1-y). hotspot: the centre node (cols//2, rows//2)
    with probability HOTSPOT_FRACTION, else uniform. neighbor: one of the mesh neighbours.
    """
    nodes = _nodes(cfg)
    idx = {n: i for i, n in enumerate(nodes)}
    n = len(nodes)
    p = np.zeros((n, n))
    uniform = (1 - np.eye(n)) / (n - 1)
    for s, (x, y) in enumerate(nodes):
        if pattern == "uniform":
            p[s] = uniform[s]
        elif pattern == "transpose":
            p[s, idx[y % cfg.cols, x % cfg.rows]] = 1
        elif pattern == "bitcomp":
            p[s, idx[cfg.cols - 1 - x, cfg.rows - 1 - y]] = 1
        elif pattern == "hotspot":
            p[s] = (1 - HOTSPOT_FRACTION) * uniform[s]
            p[s, idx[cfg.cols // 2, cfg.rows // 2]] += HOTSPOT_FRACTION
        elif pattern == "neighbor":
            near = [idx[x + dx, y + dy] for dx, dy in ((0, -1), (1, 0), (0, 1), (-1, 0))
                    if (x + dx, y + dy) in idx]
            p[s, near] = 1 / len(near)
        else:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, not {pattern!r}")
    return p


def sample_destination(cfg, probs: np.ndarray, src, rng: np.random.Generator) -> tuple[int, int]:
    """Draw a destination for a packet of ``src`` from ``probs`` = :func:`destinations`."""
    d = int(rng.choice(cfg.nodes, p=probs[src[1] * cfg.cols + src[0]]))
    return d % cfg.cols, d // cfg.cols


def channel_load(cfg, pattern: str) -> dict:
    """Channel loads of ``pattern`` per unit injection rate (flits/cycle/node) and the bound they
    put on saturation throughput.

    Returns {"max_link": the busiest router-to-router link's load, "max_eject": the busiest
    ejection port's load, "bound": 1 / max(1, max_link, max_eject) (the injection port carries
    load 1, so the bound is at most 1 flit/cycle/node), "hops": the mean hop count of a packet}.
    """
    nodes = _nodes(cfg)
    p = destinations(cfg, pattern)
    links: dict = {}
    hops = 0.0
    for s, src in enumerate(nodes):
        for d, dst in enumerate(nodes):
            if p[s, d]:
                path = xy_path(cfg, src, dst)
                hops += p[s, d] * (len(path) - 1)
                for a, b in zip(path, path[1:]):
                    links[a, b] = links.get((a, b), 0.0) + p[s, d]
    max_link = float(max(links.values(), default=0.0))
    max_eject = float(p.sum(axis=0).max())
    return {"max_link": max_link, "max_eject": max_eject,
            "bound": 1 / max(1.0, max_link, max_eject), "hops": float(hops / len(nodes))}
