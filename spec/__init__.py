"""The spec layer: what the RTL (``hw/``) and the golden model (``golden/``) must agree on.

Configurations and their validation, fixed-point formats, the register map, the NoC flit and the
board's serial protocol. Plain Python: this package imports neither amaranth nor numpy, and
nothing but the standard library and itself (docs/decisions.md, "Code layout").
"""
