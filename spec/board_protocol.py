"""The serial protocol of ``star_board`` (docs/board.md): the bytes the board's UART bridge
(``hw/board.py``) and the host driver (``gen/host.py``) exchange, defined once for both.

Every request is an op byte and its fields, little-endian; every response ends with a status byte.

=============== ========================================== =================================
op              request after the op byte                  response before the status byte
=============== ========================================== =================================
write memory    addr (ADDR_BYTES), count (COUNT_BYTES), data nothing
read memory     addr (ADDR_BYTES), count (COUNT_BYTES)     count data bytes
write register  offset (1), value (4)                      nothing
read register   offset (1)                                 value (4)
=============== ========================================== =================================
"""

from __future__ import annotations

__all__ = ["OP_WRITE_MEM", "OP_READ_MEM", "OP_WRITE_REG", "OP_READ_REG", "ST_OK", "ST_RANGE",
           "ST_OP", "ST_AXIL", "ST_REG_OK", "ADDR_BYTES", "COUNT_BYTES", "MAX_CHUNK",
           "HEADER_BYTES", "status_text"]

OP_WRITE_MEM, OP_READ_MEM, OP_WRITE_REG, OP_READ_REG = 0x01, 0x02, 0x03, 0x04
ST_OK, ST_RANGE, ST_OP, ST_AXIL = 0x00, 0x01, 0x02, 0x10   # ST_AXIL + the AXI4-Lite response
ST_REG_OK = ST_AXIL | 0        # a register access answered OKAY

ADDR_BYTES = 4                 # a memory request's byte address
COUNT_BYTES = 2                # a memory request's byte count, 1 .. MAX_CHUNK
MAX_CHUNK = (1 << 8 * COUNT_BYTES) - 1
# bytes after the op byte, per op
HEADER_BYTES = {OP_WRITE_MEM: ADDR_BYTES + COUNT_BYTES, OP_READ_MEM: ADDR_BYTES + COUNT_BYTES,
                OP_WRITE_REG: 1 + 4, OP_READ_REG: 1}

_STATUS_TEXT = {ST_OK: "OK", ST_RANGE: "address out of range", ST_OP: "unknown op",
                ST_AXIL | 0: "AXI4-Lite OKAY", ST_AXIL | 1: "AXI4-Lite EXOKAY",
                ST_AXIL | 2: "AXI4-Lite SLVERR", ST_AXIL | 3: "AXI4-Lite DECERR"}


def status_text(status: int) -> str:
    """The meaning of a status byte, e.g. ``0x01 (address out of range)``."""
    return f"0x{status:02x} ({_STATUS_TEXT.get(status, 'unknown status')})"
