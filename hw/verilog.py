"""Deterministic Verilog emission for Amaranth components.

``convert`` wraps :func:`amaranth.back.verilog.convert` with ``emit_src=False`` so the
text carries no absolute source paths (Amaranth's default embeds ``src`` attributes
with the absolute path of every Python file involved). The output has no timestamp
either, so the same design gives byte-identical text on any machine and in any
process; ``sim.runner`` relies on that to key its build cache by the text's hash.

``write_if_changed`` leaves an unchanged file (and its mtime) alone, so tools that
rebuild on mtime (make, Verilator) do no work when the generated text is the same.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["convert", "write_if_changed"]


def convert(component, name: str, ports=None) -> str:
    """Return the Verilog text of *component* as a top module called *name*.

    Per-lane submodules (``hw.shared.add_lane``) are emitted once per kind, as modules named
    ``<name>.<stage>.lane``, after the top, and instanced once per lane.

    *ports* is passed through to Amaranth when given (needed e.g. for a plain
    ``Elaboratable``, or for a component with top-level stream ports marked
    ``always_ready``/``always_valid``, which Amaranth 0.5 cannot convert on its
    own); for a ``wiring.Component`` Amaranth derives it from the signature.
    """
    from amaranth.back import verilog as _verilog

    from star.hw.shared import sharing

    kwargs = {"name": name, "emit_src": False}
    if ports is not None:
        kwargs["ports"] = ports
    with sharing(name, convert) as shared:
        text = _verilog.convert(component, **kwargs)
    return text + "".join(shared.texts)


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
