"""Identical per-lane submodules emitted once: one Verilog module, instanced once per lane.

The lanes of the DLZS predictor, SADS, the lane lists and SU-FA are the same component T times
(same class, same parameters, no lane index inside). :func:`add_lane` adds one to a module.
While :func:`sharing` is active (:func:`star.hw.verilog.convert` opens it), the first lane of
each (group, key) is converted to Verilog on its own, as module ``<top>.<group>.lane``, and
every lane becomes an ``Instance`` of it: elaboration time and the Verilog text grow with the
shared logic, not with the lane count, and synthesis sees one module instanced T times.
Outside :func:`sharing` (amaranth.sim, unit tests) a lane is an ordinary submodule: the design
is the same either way.
"""

from __future__ import annotations

import contextvars
import re
from contextlib import contextmanager

from amaranth import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib.wiring import In

__all__ = ["sharing", "add_lane", "refuse"]

_ACTIVE = contextvars.ContextVar("star_shared_lanes", default=None)
_TEXTS: dict = {}                      # (group, key, n) -> (module name, Verilog): per process


class _Registry:
    def __init__(self, top: str, convert):
        self.top, self.convert = top, convert
        self.modules: dict = {}        # (group, key) -> (module name, has clock)
        self.texts: list[str] = []     # the Verilog of each shared module, in first-use order


@contextmanager
def sharing(top: str, convert):
    """Emit the lanes added with :func:`add_lane` once per (group, key), each converted to
    Verilog by ``convert(component, name=...)``; yield the registry whose ``texts`` are the
    shared modules' Verilog (to append to the top's)."""
    token = _ACTIVE.set(_Registry(top, convert))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def add_lane(m, name: str, lane, group: str, key) -> None:
    """Add ``lane`` (a ``wiring.Component``) to ``m`` as submodule ``name``; ``group`` names the
    pipeline stage (``sufa``, ``sads``, ``pred``, ``mask``), ``key`` every parameter the lane's
    logic depends on (lanes with equal group and key are identical)."""
    reg = _ACTIVE.get()
    if reg is None:
        m.submodules[name] = lane
        return
    if (group, key) not in reg.modules:
        n = sum(1 for g, _ in reg.modules if g == group)
        modname = f"{reg.top}.{group}.lane" + (f"_{n}" if n else "")
        if (group, key, n) not in _TEXTS:      # another top of this process may have it
            _TEXTS[(group, key, n)] = (modname, reg.convert(lane, name=modname))
        else:
            lane._MustUse__silence = True
        old, text = _TEXTS[(group, key, n)]
        text = text.replace(f"\\{old}", f"\\{modname}")
        clocked = re.search(r"^\s*input clk;", text, re.M) is not None
        reg.modules[(group, key)] = (modname, clocked)
        reg.texts.append(text)
    else:
        lane._MustUse__silence = True          # stands for the shared module, not elaborated
    modname, clocked = reg.modules[(group, key)]
    ports = {}
    for path, member, value in lane.signature.flatten(lane):
        ports[("i_" if member.flow == In else "o_") + "__".join(map(str, path))] = \
            Value.cast(value)
    if clocked:
        ports.update(i_clk=ClockSignal(), i_rst=ResetSignal())
    m.submodules[name] = Instance(modname, **ports)


def refuse(component, error: Exception) -> Exception:
    """Return *error* after marking *component* as used. A constructor that rejects its arguments
    raises ``refuse(self, ValueError(...))``: Amaranth would otherwise warn, when the half-built
    object is collected, that it was never elaborated (a warning about nothing the user did wrong
    beyond the error they already got)."""
    component._MustUse__silence = True
    return error
