"""Traffic for cocotb benches of :class:`hw.noc.Mesh`: sources, eject stalls, an in-order checker.

Sources are BookSim-style: each node generates packets by a Bernoulli process at ``rate`` flits per
cycle into an unbounded source queue (latency counts the time spent there) and injects them in
order, one word per cycle while ``inject.ready``. Destinations follow
:func:`golden.noc.destinations`. Each node's eject port is ready with probability 1 - p_stall
per cycle.

Checking: when a packet's first word is injected, the network packets :func:`golden.noc` says it
becomes are queued as expected for its (src, dst) pair; each packet ejected at a node is compared
at once with the oldest expected one of its (src, dst) pair (words, and that every word reports
the same src). ``errors`` collects mismatches, unexpected packets and, from :meth:`MeshDriver.
leftovers`, packets that never arrived.

Timing: one clock trigger per cycle. At each falling edge the driver reads ``inject.ready`` and the
eject stream and drives the inputs; a transfer happens at the next rising edge iff valid and ready,
which the driver knows at once because the mesh's ``inject.ready`` and ``eject.valid/payload``
depend on registers only (see :mod:`hw.noc.router`). Were that not so, words would be lost or
duplicated and the checker would say so.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from cocotb.triggers import FallingEdge

from star.golden.noc import destinations, network_packets, sample_destination
from star.hw.noc import eject_layout, inject_layout

__all__ = ["BUILD_ARGS", "Packet", "sources", "MeshDriver"]

# Verilator C++ at -O0: builds in half the time (4×4 mesh: ~30 s instead of ~60 s); these benches
# spend their time in Python (every node's ports are touched each cycle), so they run only ~15 %
# slower.
BUILD_ARGS = ("-CFLAGS", "-O0")


@dataclass
class Packet:
    src: tuple[int, int]
    dst: tuple[int, int]
    words: tuple[int, ...]
    gen: int                              # cycle it entered the source queue
    start: int | None = None              # cycle its first word was injected
    bits: list[int] = field(default_factory=list)   # packed inject payloads (set by the driver)


def sources(cfg, pattern: str, rate: float, lengths: tuple[int, int], rng: np.random.Generator,
            t0: int, t1: int) -> dict:
    """Return {node: iterator of Packets generated in cycles [t0, t1)} at ``rate`` flits/cycle,
    with lengths uniform in ``lengths`` (inclusive) and random data words."""
    probs = destinations(cfg, pattern)
    lo, hi = lengths
    p_gen = min(1.0, rate / ((lo + hi) / 2))
    nbytes, mask = (cfg.flit_bits + 7) // 8, (1 << cfg.flit_bits) - 1

    def node(src):
        t = t0 - 1 + int(rng.geometric(p_gen))
        while t < t1:
            n = int(rng.integers(lo, hi + 1))
            words = tuple(int.from_bytes(rng.bytes(nbytes), "little") & mask for _ in range(n))
            yield Packet(src, sample_destination(cfg, probs, src, rng), words, t)
            t += int(rng.geometric(p_gen))

    return {(x, y): node((x, y)) for y in range(cfg.rows) for x in range(cfg.cols)}


class MeshDriver:
    """Drive every node of the mesh ``dut`` (``cfg``) and check what arrives.

    ``done``: (packet, cycle its last word was ejected) per completed packet. ``cycle`` counts
    falling edges since construction.
    """

    def __init__(self, dut, cfg, *, p_stall: float, rng: np.random.Generator):
        self.dut, self.cfg, self.p_stall, self.rng = dut, cfg, p_stall, rng
        self.nodes = [(x, y) for y in range(cfg.rows) for x in range(cfg.cols)]
        names = {"iv": "inject__{}__{}__valid", "ir": "inject__{}__{}__ready",
                 "ip": "inject__{}__{}__payload", "ev": "eject__{}__{}__valid",
                 "er": "eject__{}__{}__ready", "ep": "eject__{}__{}__payload"}
        self.h = {(x, y): {k: getattr(dut, v.format(y, x)) for k, v in names.items()}
                  for x, y in self.nodes}
        il, el = inject_layout(cfg), eject_layout(cfg)
        self._dst_x, self._dst_y = il["dst"].offset, il["dst"].offset + cfg.x_bits
        self._in_data, self._in_last = il["data"].offset, il["last"].offset
        self._src_x, self._src_y = el["src"].offset, el["src"].offset + cfg.x_bits
        self._out_data, self._out_last = el["data"].offset, el["last"].offset
        self.feeds = {n: iter(()) for n in self.nodes}   # packets not yet queued
        self.head = {n: None for n in self.nodes}        # packet being (or next to be) injected
        self.word = {n: 0 for n in self.nodes}           # its next word
        self.partial = {n: [] for n in self.nodes}       # (src, word) of the packet being ejected
        self.expected: dict = {}          # (src, dst) -> deque of (words, packet, is last part)
        self.errors: list[str] = []
        self.done: list = []
        self.words_started = self.delivered = self.cycle = self.last_progress = 0
        self.drive = {n: [0, None, 0] for n in self.nodes}   # inject valid, payload; eject ready
        for n in self.nodes:
            self.h[n]["iv"].value = 0
            self.h[n]["er"].value = 0

    def add(self, feeds: dict):
        """Append {node: iterable of Packets} to the nodes' source queues (in order)."""
        for n, packets in feeds.items():
            self.feeds[n] = itertools.chain(self.feeds[n], packets)

    @property
    def in_flight(self) -> int:
        """Words injected but not yet ejected."""
        return self.words_started - self.delivered

    def _next(self, n):
        """The packet node n injects next, or None."""
        if self.head[n] is None:
            p = next(self.feeds[n], None)
            if p is not None:
                head = p.dst[0] << self._dst_x | p.dst[1] << self._dst_y
                p.bits = [head | w << self._in_data | int(i == len(p.words) - 1) << self._in_last
                          for i, w in enumerate(p.words)]
            self.head[n] = p
        return self.head[n]

    def _started(self, p: Packet, t: int):
        p.start = t
        self.words_started += len(p.words)
        parts = network_packets(self.cfg, p.src, p.dst, p.words)
        q = self.expected.setdefault((p.src, p.dst), deque())
        q.extend((d.words, p, i == len(parts) - 1) for i, d in enumerate(parts))

    def _ejected(self, n, t: int):
        srcs = {s for s, _ in self.partial[n]}
        words = tuple(w for _, w in self.partial[n])
        self.partial[n] = []
        src = min(srcs)
        q = self.expected.get((src, n))
        if len(srcs) != 1:
            self.errors.append(f"cycle {t}: a packet at {n} reported sources {sorted(srcs)}")
        elif not q:
            self.errors.append(f"cycle {t}: unexpected packet {src} -> {n}: {words}")
        else:
            want, p, last = q.popleft()
            if words != want:
                self.errors.append(f"cycle {t}: {src} -> {n}: expected {want}, got {words}")
            elif last:
                self.done.append((p, t))

    def leftovers(self) -> list[str]:
        """Describe the expected packets that have not arrived."""
        return [f"{src} -> {dst}: {len(q)} packets missing, next {q[0][0]}"
                for (src, dst), q in sorted(self.expected.items()) if q]

    async def step(self, stop: int | None):
        """Run one cycle; no packet starts at or after cycle ``stop`` (None: no limit)."""
        await FallingEdge(self.dut.clk)
        t, cfg = self.cycle, self.cfg
        mask, xmask, ymask = (1 << cfg.flit_bits) - 1, (1 << cfg.x_bits) - 1, (1 << cfg.y_bits) - 1
        stalls = self.rng.random(len(self.nodes)) < self.p_stall
        for n, stall in zip(self.nodes, stalls):
            h, drv = self.h[n], self.drive[n]
            p = self._next(n)
            go = p is not None and p.gen <= t and (self.word[n] > 0 or stop is None or t < stop)
            if go != drv[0]:
                h["iv"].value = drv[0] = int(go)
            if go:
                bits = p.bits[self.word[n]]
                if bits != drv[1]:
                    h["ip"].value = drv[1] = bits
                if int(h["ir"].value):                      # taken at the coming rising edge
                    if self.word[n] == 0:
                        self._started(p, t)
                    self.word[n] += 1
                    if self.word[n] == len(p.words):
                        self.head[n], self.word[n] = None, 0
            ready = 0 if stall else 1
            if ready != drv[2]:
                h["er"].value = drv[2] = ready
            if ready and int(h["ev"].value):
                bits = h["ep"].value.to_unsigned()
                src = (bits >> self._src_x & xmask, bits >> self._src_y & ymask)
                self.partial[n].append((src, bits >> self._out_data & mask))
                self.delivered += 1
                self.last_progress = t
                if bits >> self._out_last & 1:
                    self._ejected(n, t)
        self.cycle += 1

    def waiting(self, stop: int | None) -> bool:
        """Whether a word may still be injected (no packet starts at or after ``stop``)."""
        return any(self.word[n] or (self._next(n) is not None and (stop is None
                                                                    or self.cycle < stop))
                   for n in self.nodes)

    async def run(self, stop: int | None, watchdog: int, limit: int):
        """Step until nothing more may be injected (no packet starts at or after cycle ``stop``)
        and every injected word is ejected; then drop the packets that did not start. Fails if
        no word is ejected for ``watchdog`` cycles while some are in flight, or after ``limit``
        cycles."""
        begin = self.cycle
        while self.waiting(stop) or self.in_flight > 0:
            await self.step(stop)
            if self.in_flight and self.cycle - self.last_progress > watchdog:
                raise AssertionError(f"no word ejected for {watchdog} cycles with "
                                     f"{self.in_flight} in flight at cycle {self.cycle}: deadlock? "
                                     f"{self.leftovers()[:3]}")
            if self.cycle - begin > limit:
                raise AssertionError(f"traffic not done after {limit} cycles")
        self.feeds = {n: iter(()) for n in self.nodes}
        self.head = {n: None for n in self.nodes}
