"""Progress of the long steps of a ``star`` command: one line per step on stderr.

A step prints its name when it starts and its wall time when it ends, on the same line::

    star: generate tiny: converting star_core ... (2.4 s)

A line printed while a step is open (a note, or a step that ran in a worker process) ends the
open line first; the step then reports on a line of its own (``... converting star_core: done
(2.4 s)``). ``quiet`` (every command's ``-q``) silences the steps and notes, never the warnings.
Results (``star: wrote ...``, reports) go to stdout, not through here.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

__all__ = ["Progress"]


class Progress:
    """Progress lines of one command run on one config: ``star: <command> <config>: ...``."""

    def __init__(self, command: str, config: str | None = None, quiet: bool = False):
        self.prefix = f"star: {command} {config}: " if config else f"star: {command}: "
        self.quiet = quiet
        self._open = None          # the step whose line is waiting for its elapsed time

    def _write(self, text: str, always: bool = False) -> None:
        if always or not self.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    def _close_open_line(self) -> None:
        if self._open is not None:
            self._write("\n")
            self._open = None

    def note(self, text: str) -> None:
        """One line of information (silenced by ``quiet``)."""
        self._close_open_line()
        self._write(f"{self.prefix}{text}\n")

    def warn(self, text: str) -> None:
        """One line the user must see, even with ``quiet``."""
        if not self.quiet:
            self._close_open_line()
        self._write(f"{self.prefix}{text}\n", always=True)

    def done(self, what: str, seconds: float) -> None:
        """A step that ran elsewhere (e.g. in a worker process) and took ``seconds``."""
        self.note(f"{what} ... ({seconds:.1f} s)")

    @contextmanager
    def step(self, what: str):
        """Report ``what`` now and its wall time when the ``with`` block ends (``stopped`` if it
        raises, the exception going on)."""
        self._close_open_line()
        self._write(f"{self.prefix}{what} ... ")
        self._open = what
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self._end(what, "stopped")
            raise
        self._end(what, f"({time.monotonic() - start:.1f} s)")

    def _end(self, what: str, text: str) -> None:
        if self._open == what:
            self._write(text + "\n")
        else:
            self._write(f"{self.prefix}{what}: done {text}\n" if text.startswith("(")
                        else f"{self.prefix}{what}: {text}\n")
        self._open = None
