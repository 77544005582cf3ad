"""Parameters of a Spatial-STAR array (:mod:`hw.spatial`): R×C STAR cores on a mesh NoC.

One frozen :class:`SpatialConfig` drives the array's RTL, its model (:mod:`golden.spatial`), the
testbench and the benchmark: the core parameters (a :class:`star.spec.config.StarConfig`, the
same for every core) plus the mesh. Invalid values raise :class:`star.spec.validate.ConfigError`
with a one-line message naming the field. This module imports neither amaranth nor numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataclasses import replace

from .config import StarConfig, preset
from .noc_config import MAX_DIM, NocConfig
from .validate import ConfigError, check_types

__all__ = ["SpatialConfig", "parse_mesh", "bench_core"]


@dataclass(frozen=True)
class SpatialConfig:
    """An R×C mesh of identical STAR cores (``core``), KV sequence sharded across them.

        core        the :class:`StarConfig` of every core.
        rows, cols  mesh size, each in [1, 8], rows × cols in [2, 64].
        flit_bits   NoC payload bits per flit, in [8, 512] (:class:`NocConfig`).
        fifo_depth  flits per router input FIFO, in [2, 64].

    Core c (the chain index, :attr:`order`) sits at mesh node ``order[c]``: a snake through the
    mesh (row 0 west to east, row 1 east to west, ...), so chain neighbours are mesh neighbours.
    Core 0, at node (0, 0), is the root: it reads Q and writes O on its memory channel.
    """

    core: StarConfig
    rows: int = 2
    cols: int = 2
    flit_bits: int = 64
    fifo_depth: int = 4

    def __post_init__(self):
        if not isinstance(self.core, StarConfig):
            raise ConfigError(f"core must be a StarConfig, not {self.core!r}")
        check_types(self, ("rows", "cols", "flit_bits", "fifo_depth"))
        self.noc      # validates rows, cols, flit_bits, fifo_depth

    @property
    def noc(self) -> NocConfig:
        """The mesh of the array (one message per packet up to 256 flits)."""
        return NocConfig(rows=self.rows, cols=self.cols, flit_bits=self.flit_bits,
                         fifo_depth=self.fifo_depth, max_packet_flits=256)

    @property
    def cores(self) -> int:
        """Number of cores, rows × cols."""
        return self.rows * self.cols

    @property
    def order(self) -> tuple[tuple[int, int], ...]:
        """Mesh node (x, y) of core c, c = 0 .. cores - 1: the snake path."""
        return tuple((x if y % 2 == 0 else self.cols - 1 - x, y)
                     for y in range(self.rows) for x in range(self.cols))

    @property
    def name(self) -> str:
        return f"{self.core.name}_{self.rows}x{self.cols}"

    def to_dict(self) -> dict:
        return {"core": self.core.to_dict(), "rows": self.rows, "cols": self.cols,
                "flit_bits": self.flit_bits, "fifo_depth": self.fifo_depth}


def parse_mesh(text: str) -> tuple[int, int]:
    """Parse ``RxC`` (e.g. ``2x2``) into (rows, cols); ConfigError for anything else."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"mesh must be ROWSxCOLS with each in [1, {MAX_DIM}], e.g. 2x2, "
                          f"not {text!r}")
    return int(parts[0]), int(parts[1])


def bench_core() -> StarConfig:
    """The core of the scaling benchmark and of the long array regression (one Verilator build
    each): the ``tiny`` preset with room for long sequences (max_seq = 16384)."""
    return replace(preset("tiny"), name="tiny16k", max_seq=16384)
