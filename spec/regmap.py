"""The STAR core's register map: the one description behind the CSR block, the docs, the C header
and the Python dict (``gen/regmap.py`` renders it).

All registers are 32 bits wide at word-aligned byte offsets on the AXI4-Lite slave. Access:
``rw`` read/write, ``ro`` read-only (writes ignored), ``w1c`` read, write 1 to clear,
``wo`` write-only (reads 0). Job registers are sampled when START is written; writing them while a
job runs does not affect that job. Counters restart at every START.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .formats import SCALE_SHIFT_MAX


__all__ = ["Register", "ErrorCode", "registers", "by_name", "ADDR_BITS", "CSR_ADDR_BITS",
           "RADIUS_OFF_VALUE", "COUNTERS", "JOB_NAMES"]

ADDR_BITS = 32          # AXI4 master address width (byte addresses)
CSR_ADDR_BITS = 8       # AXI4-Lite slave address width: 64 registers
RADIUS_OFF_VALUE = 0xFFFF_FFFF


class ErrorCode(IntEnum):
    """ERROR_CODE values: the first error since the ERROR bit was last cleared."""

    NONE = 0
    SEQ_LEN = 1       # SEQ_LEN is 0 or above max_seq
    Q_LEN = 2         # Q_LEN is 0 or above max_seq
    K_TILE = 3        # sparse mode and K_TILE is 0 or above the built k_tile
    RADIUS = 4        # RADIUS is neither 0xFFFFFFFF (off) nor in [0, radius_max]
    SCALE = 5         # SCALE_MANT is 0 or has more than scale_bits bits, or SCALE_SHIFT is outside [exp_frac_bits, SCALE_SHIFT_MAX]
    MODE = 6          # MODE has bits set other than CAUSAL and DENSE
    CAUSAL_LEN = 7    # causal and Q_LEN > SEQ_LEN (some query would see no key)
    ALIGN = 8         # a base address or row stride is 0 (strides) or not a multiple of the row alignment
    RANGE = 9         # a tensor extends beyond the 4 GiB address space
    OVERLAP = 10      # the O tensor overlaps Q, K or V
    START_BUSY = 11   # START written while a job runs (the running job continues)
    BUS = 12          # an AXI read or write response was not OKAY (the job completes, its O is void)
    SHARD = 13        # Spatial-STAR array only: SEQ_LEN has fewer tiles than the array has cores


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str          # rw | ro | w1c | wo
    doc: str
    reset: int = 0
    fields: tuple = ()   # (name, lsb, width, doc) for registers with bit fields

    def mask(self, field: str) -> int:
        """The mask of bit field *field*, e.g. ``by_name(cfg)["STATUS"].mask("DONE")``."""
        for name, lsb, width, _ in self.fields:
            if name == field:
                return ((1 << width) - 1) << lsb
        raise KeyError(f"{self.name}.{field}")


# counters, in register order: (name, what is counted)
COUNTERS = (
    ("CYCLES", "clock cycles from START to DONE"),
    ("PRED_BUSY", "cycles a key row entered the predictor (DLZS stage)"),
    ("PRED_STALL", "cycles a key row waited at the predictor input (selector or tile store full)"),
    ("SEL_BUSY", "cycles the selector (SADS stage) took predicted scores"),
    ("SEL_STALL", "cycles predicted scores waited at the selector (its list not yet taken)"),
    ("SUFA_BUSY", "lane-cycles the SU-FA lanes' p·v multipliers worked (summed over lanes)"),
    ("SUFA_WAIT", "lane-cycles an SU-FA lane had scores but its tile's V rows had not all arrived"),
    ("SUFA_STALL", "lane-cycles an SU-FA lane was held by a rescale (tile merge or max assurance)"),
    ("BYTES_READ", "bytes read on the AXI4 master (R beats x bus bytes)"),
    ("BYTES_WRITTEN", "bytes written on the AXI4 master (W beats x bus bytes)"),
    ("KV_ROWS", "V rows read: the union of the query lanes' selections, per tile"),
    ("KEYS_SELECTED", "(query, key) pairs selected, summed over lanes and tiles"),
    ("TILES", "key tiles processed (tiles beyond every lane's causal limit are skipped)"),
    ("RESCALES", "SU-FA max-assurance rescales (a score above the fixed max), summed over lanes"),
    ("MERGES", "SU-FA tile merges that raised the running max, summed over lanes"),
)

JOB_REGISTERS = (
    ("Q_BASE", "byte address of Q row 0"),
    ("K_BASE", "byte address of K row 0"),
    ("V_BASE", "byte address of V row 0"),
    ("O_BASE", "byte address of O row 0"),
    ("Q_STRIDE", "bytes from one Q row to the next"),
    ("K_STRIDE", "bytes from one K row to the next"),
    ("V_STRIDE", "bytes from one V row to the next"),
    ("O_STRIDE", "bytes from one O row to the next"),
    ("SEQ_LEN", "keys (rows of K and V), 1..max_seq"),
    ("Q_LEN", "queries (rows of Q and O), 1..max_seq"),
    ("K_TILE", "keys kept per query per tile by SADS, 1..k_tile (ignored in dense mode)"),
    ("RADIUS", "SADS radius in predicted-score LSBs, 0..radius_max; 0xFFFFFFFF: off"),
    ("SCALE_MANT", "score-scale mantissa (golden.quant.score_scale), 1..2**scale_bits - 1"),
    ("SCALE_SHIFT", f"score-scale shift, exp_frac_bits..{SCALE_SHIFT_MAX}"),
)


# the registers a job samples at START, in register order
JOB_NAMES = tuple(name for name, _ in JOB_REGISTERS) + ("MODE",)


def registers(cfg) -> tuple[Register, ...]:
    """Return the register map of a core built for ``cfg``."""
    fmt = cfg.formats
    regs = [
        Register("CTRL", 0x00, "wo", "write 1 to START a job with the job registers' values",
                 fields=(("START", 0, 1, "start a job"),)),
        Register("STATUS", 0x04, "w1c", "job status; DONE and ERROR are sticky, write 1 to clear",
                 fields=(("BUSY", 0, 1, "a job runs (read-only)"),
                         ("DONE", 1, 1, "a job finished (also after an error)"),
                         ("ERROR", 2, 1, "an error occurred; see ERROR_CODE"))),
        Register("ERROR_CODE", 0x08, "ro", "first error since ERROR was cleared: "
                 + ", ".join(f"{e.value} {e.name}" for e in ErrorCode)),
        Register("IRQ_ENABLE", 0x0C, "rw", "irq = OR of the enabled sticky STATUS bits", reset=0b11,
                 fields=(("DONE", 0, 1, "raise irq while STATUS.DONE"),
                         ("ERROR", 1, 1, "raise irq while STATUS.ERROR"))),
    ]
    off = 0x10
    for name, doc in JOB_REGISTERS:
        reset = {"RADIUS": RADIUS_OFF_VALUE if cfg.radius < 0 else cfg.radius,
                 "K_TILE": cfg.k_tile}.get(name, 0)
        regs.append(Register(name, off, "rw", doc, reset=reset))
        off += 4
    regs.append(Register("MODE", off, "rw", "job mode",
                         fields=(("CAUSAL", 0, 1, "causal mask, bottom-right aligned"),
                                 ("DENSE", 1, 1, "dense FlashAttention baseline: every valid key, "
                                  "exact tile max"))))
    off += 4
    regs += [
        Register("HW_SHAPE", off, "ro", "build parameters", fields=(
            ("HEAD_DIM", 0, 9, "head_dim"), ("LANES", 16, 9, "lanes (queries in parallel)")),
            reset=cfg.head_dim | cfg.lanes << 16),
        Register("HW_TILE", off + 4, "ro", "build parameters", fields=(
            ("TILE", 0, 11, "keys per tile"), ("K_TILE", 16, 11, "largest K_TILE")),
            reset=cfg.tile | cfg.k_tile << 16),
        Register("HW_LIMITS", off + 8, "ro", "build parameters", fields=(
            ("MAX_SEQ", 0, 17, "largest SEQ_LEN and Q_LEN"),
            ("DATA_BITS", 24, 5, "bits per Q/K/V/O element")),
            reset=cfg.max_seq | cfg.data_bits << 24),
        Register("HW_RADIUS_MAX", off + 12, "ro", "largest RADIUS value", reset=fmt.radius_max),
    ]
    off = 0x80
    for name, doc in COUNTERS:
        regs.append(Register(name, off, "ro", doc))
        off += 4
    return tuple(regs)


def by_name(cfg) -> dict[str, Register]:
    """Return {name: Register}."""
    return {r.name: r for r in registers(cfg)}
