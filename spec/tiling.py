"""The causal tile plan: the last key each query row sees, and the key tiles a block reads.

One rule for the golden model (``golden.core.block_schedule``, the causal mask), the cycle model
(``gen.cycle_model.uniform_blocks``) and the core's controller (``hw.core``), which evaluates it
on Amaranth values by passing ``select=amaranth.Mux``.

The queries of a job are the last ``q_len`` positions of its ``seq_len``-key sequence (the causal
mask's bottom-right alignment), so with ``off = seq_len - q_len`` query row i sees keys 0 .. i +
off, which is never past the last key; without the causal mask every row sees every key. A block
of query rows reads the tiles up to its last row's limit, so causal blocks skip the tiles past
it.
"""

from __future__ import annotations

__all__ = ["key_limit", "tiles_to"]


def _pick(cond, a, b):
    return a if cond else b


def key_limit(row, off, seq_len, causal, select=_pick):
    """The last key query ``row`` sees: ``row + off`` (``off = seq_len - q_len``) under
    ``causal``, else ``seq_len - 1``. ``select(cond, a, b)`` picks (default: Python's
    conditional, for ints and arrays)."""
    return select(causal, row + off, seq_len - 1)


def tiles_to(limit, log2_tile: int):
    """The tiles a block reads when the last key it sees is ``limit``: tiles 0 .. limit's."""
    return (limit >> log2_tile) + 1
