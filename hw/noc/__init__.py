"""Mesh network-on-chip for Spatial-STAR: flit format, router, network interface, mesh generator.

Parameters: :class:`star.spec.noc_config.NocConfig`. Model: :mod:`golden.noc`.
Description: docs/noc.md.
"""

from .flit import FlitKind, eject_layout, flit_layout, inject_layout
from .mesh import Mesh
from .ni import NetworkInterface
from .router import Port, Router

__all__ = ["FlitKind", "Mesh", "NetworkInterface", "Port", "Router", "eject_layout",
           "flit_layout", "inject_layout"]
