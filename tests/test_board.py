"""The board top (star_board) and its host driver (gen/host.py).

* Pure Python: gen.host.StarHost against a fake board that answers the serial protocol of
  docs/board.md from a bytearray memory and a register dict (and runs jobs with
  golden.core.run_job), so packing, chunking, status handling and messages are tested without
  RTL.
* RTL: tests/board_tb.py under cocotb + Verilator (the host driver over a simulated UART).
"""

import asyncio
import functools
import json
from pathlib import Path

import numpy as np
import pytest

from star.gen import cli
from star.gen.board import BOARDS
from star.gen.host import HostError, SerialTransport, StarHost
from star.spec.config import preset
from star.spec.board_protocol import (MAX_CHUNK, OP_READ_MEM, OP_READ_REG, OP_WRITE_MEM,
                                      OP_WRITE_REG, ST_AXIL, ST_OK, ST_OP, ST_RANGE)
from star.golden import core as gcore
from star.spec.regmap import COUNTERS, JOB_NAMES, ErrorCode, by_name

CFG = preset("tiny")
MEM = 4096


# ---- a fake board --------------------------------------------------------------------------------
class FakeBoard:
    """docs/board.md in Python: a transport that parses requests and queues the responses.

    ``requests``: (op, fields) of every request parsed; ``received``: every byte written;
    ``mute``: never answer; ``cycles``: the CYCLES counter a job leaves."""

    def __init__(self, cfg=CFG, mem_bytes=MEM):
        self.cfg, self.mem_bytes = cfg, mem_bytes
        self.mem = bytearray(mem_bytes)
        self.map = by_name(cfg)
        self.by_off = {r.offset: r for r in self.map.values()}
        self.regs = {r.offset: r.reset for r in self.map.values()}
        self.inbuf, self.outbuf = bytearray(), bytearray()
        self.received = bytearray()
        self.requests = []
        self.mute = False
        self.cycles = 1234
        self.t = 0.0

    def now(self):
        self.t += 0.001             # every poll "takes" 1 ms
        return self.t

    async def write(self, data):
        self.received += data
        self.inbuf += data
        while self._step():
            pass

    async def read(self, n, timeout):
        if self.mute or len(self.outbuf) < n:
            got = 0 if self.mute else len(self.outbuf)
            raise HostError(f"no reply from the board within {timeout:g} s "
                            f"(got {got} of {n} bytes)")
        out, self.outbuf = bytes(self.outbuf[:n]), self.outbuf[n:]
        return out

    def _step(self) -> bool:
        b = self.inbuf
        if not b:
            return False
        op = b[0]
        need = {OP_WRITE_MEM: 7, OP_READ_MEM: 7, OP_WRITE_REG: 6, OP_READ_REG: 2}.get(op, 1)
        if len(b) < need:
            return False
        if op in (OP_WRITE_MEM, OP_READ_MEM):
            addr, count = int.from_bytes(b[1:5], "little"), int.from_bytes(b[5:7], "little")
            ok = 1 <= count and addr + count <= self.mem_bytes
            if op == OP_WRITE_MEM:
                if len(b) < 7 + count:
                    return False
                if ok:
                    self.mem[addr:addr + count] = b[7:7 + count]
                del b[:7 + count]
            else:
                self.outbuf += self.mem[addr:addr + count] if ok else bytes(count)
                del b[:7]
            self.requests.append((op, addr, count))
            self.outbuf.append(ST_OK if ok else ST_RANGE)
        elif op == OP_WRITE_REG:
            off, value = b[1], int.from_bytes(b[2:6], "little")
            del b[:6]
            self.requests.append((op, off, value))
            self.outbuf.append(ST_AXIL | self._reg_write(off, value))
        elif op == OP_READ_REG:
            off = b[1]
            del b[:2]
            self.requests.append((op, off))
            reg = self.by_off.get(off)
            value = 0 if reg is None or reg.access == "wo" else self.regs[off]
            self.outbuf += value.to_bytes(4, "little")
            self.outbuf.append(ST_AXIL | (2 if reg is None else 0))
        else:
            del b[:1]
            self.requests.append((op,))
            self.outbuf.append(ST_OP)
        return True

    def _reg_write(self, off, value) -> int:
        reg = self.by_off.get(off)
        if reg is None:
            return 2                                # SLVERR
        if reg.access == "rw":
            self.regs[off] = value
        elif reg.access == "w1c":
            self.regs[off] &= ~value
        elif reg.name == "CTRL" and value & 1:
            self._start()
        return 0

    def reg(self, name):
        return self.regs[self.map[name].offset]

    def set(self, name, value):
        self.regs[self.map[name].offset] = value

    def _start(self):
        job = {n: self.reg(n) for n in JOB_NAMES}
        err = gcore.check_registers(self.cfg, job)
        if err != ErrorCode.NONE:
            self.set("ERROR_CODE", int(err))
            self.set("STATUS", 0b110)
            return
        rb = self.cfg.formats.row_bytes
        dt = "<i1" if self.cfg.data_bits == 8 else "<i2"

        def rows(name, n):
            base, stride = job[f"{name}_BASE"], job[f"{name}_STRIDE"]
            return np.stack([np.frombuffer(bytes(self.mem[base + r * stride:
                                                          base + r * stride + rb]), dt)
                             for r in range(n)]).astype(np.int64)

        sq, sk = job["Q_LEN"], job["SEQ_LEN"]
        res = gcore.run_job(self.cfg, rows("Q", sq), rows("K", sk), rows("V", sk), job)
        for r in range(sq):
            at = job["O_BASE"] + r * job["O_STRIDE"]
            self.mem[at:at + rb] = res.out[r].astype(dt).tobytes()
        for name, _ in COUNTERS:
            self.set(name, res.counters.get(name, 0))
        self.set("CYCLES", self.cycles)
        self.set("STATUS", 0b010)


def arun(coro):
    return asyncio.run(coro)


def host_on(board=None, mem_bytes=MEM, **kw):
    board = board or FakeBoard(mem_bytes=mem_bytes)
    return board, StarHost(board, CFG, mem_bytes, **kw)


def ints(rng, shape, bits=CFG.data_bits):
    return rng.integers(-(1 << bits - 1), 1 << bits - 1, shape)


# ---- pure-Python tests of gen/host.py ------------------------------------------------------------
def test_host_mem_write_read_chunks():
    """Memory writes/reads in chunks of at most 65535 bytes, little-endian headers."""
    n = 70000
    board, host = host_on(mem_bytes=1 << 17)
    data = bytes(np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8))
    arun(host.write_mem(100, data))
    assert board.mem[100:100 + n] == data
    assert [r for r in board.requests] == [(OP_WRITE_MEM, 100, MAX_CHUNK),
                                           (OP_WRITE_MEM, 100 + MAX_CHUNK, n - MAX_CHUNK)]
    assert board.received[:7] == bytes([1, 100, 0, 0, 0, 0xFF, 0xFF])
    board.requests.clear()
    assert arun(host.read_mem(100, n)) == data
    assert board.requests == [(OP_READ_MEM, 100, MAX_CHUNK),
                              (OP_READ_MEM, 100 + MAX_CHUNK, n - MAX_CHUNK)]
    assert arun(host.read_mem(0, 0)) == b""


def test_host_registers():
    board, host = host_on()
    assert arun(host.read_reg("HW_SHAPE")) == CFG.head_dim | CFG.lanes << 16
    assert arun(host.read_reg("K_TILE")) == CFG.k_tile
    arun(host.write_reg("SEQ_LEN", 0xDEADBEEF))
    assert board.reg("SEQ_LEN") == 0xDEADBEEF
    assert arun(host.read_reg(board.map["SEQ_LEN"].offset)) == 0xDEADBEEF
    arun(host.write_reg("RADIUS", -1))
    assert board.reg("RADIUS") == 0xFFFF_FFFF
    assert board.received[-6:] == bytes([OP_WRITE_REG, board.map["RADIUS"].offset]) + b"\xff" * 4
    arun(host.check_build())
    with pytest.raises(HostError, match="unknown register 'NOPE'"):
        arun(host.read_reg("NOPE"))
    with pytest.raises(HostError, match="does not fit 32 bits"):
        arun(host.write_reg("SEQ_LEN", 1 << 32))


def test_host_check_build_mismatch():
    board, _ = host_on()
    host = StarHost(board, preset("default"), MEM)
    with pytest.raises(HostError, match="not built for config"):
        arun(host.check_build())


def test_host_range_refused_before_sending():
    board, host = host_on()
    for call in (host.write_mem(MEM - 1, b"ab"), host.read_mem(MEM - 4, 8),
                 host.read_mem(-1, 1), host.write_mem(MEM, b"x")):
        with pytest.raises(HostError, match="outside the board memory"):
            arun(call)
    assert board.received == b""


def test_host_status_errors_one_line():
    """A status byte that is not OK: HostError naming the op, the address and the status."""
    board = FakeBoard()
    host = StarHost(board, CFG, MEM + 1000)          # believes in a larger memory
    with pytest.raises(HostError) as e:
        arun(host.write_mem(MEM - 4, bytes(8)))
    msg = str(e.value)
    assert "\n" not in msg and "write memory at 0x" + f"{MEM - 4:x}" in msg and "0x01" in msg
    with pytest.raises(HostError, match=r"read memory at 0x[0-9a-f]+ .*0x01 \(address out"):
        arun(host.read_mem(MEM - 4, 8))
    assert board.outbuf == b""                       # the zero bytes were consumed too
    with pytest.raises(HostError, match=r"read register 0xfc: .*0x12 \(AXI4-Lite SLVERR\)"):
        arun(host.read_reg(0xFC))
    with pytest.raises(HostError, match=r"write register 0xfc: .*0x12"):
        arun(host.write_reg(0xFC, 1))
    assert arun(host.read_reg("HW_TILE")) == CFG.tile | CFG.k_tile << 16   # link still fine


def test_host_unknown_op_fake():
    board, host = host_on()
    arun(board.write(bytes([0x7F])))
    assert arun(board.read(1, 1.0)) == bytes([ST_OP])


def test_host_link_timeout():
    board, host = host_on()
    board.mute = True
    with pytest.raises(HostError, match=r"read register STATUS \(0x04\): no reply from the board "
                                        r"within 1 s"):
        arun(host.read_reg("STATUS"))


def test_host_job_timeout():
    """A job whose DONE never rises: HostError after timeout_s of transport time."""
    board, host = host_on()
    board._start = lambda: board.set("STATUS", 0b001)          # BUSY forever
    rng = np.random.default_rng(0)
    d = CFG.head_dim
    with pytest.raises(HostError, match=r"did not finish within 0.05 s \(STATUS 0x1\)"):
        arun(host.run_job(ints(rng, (4, d)), ints(rng, (20, d)), ints(rng, (20, d)),
                          mant=100, shift=12, timeout_s=0.05))


def test_host_run_job_fake_board(seed):
    """run_job on the fake board (golden.core): packing, registers, O and counters."""
    rng = np.random.default_rng(seed)
    d = CFG.head_dim
    for sq, sk, causal, dense, k_tile in ((5, 40, True, False, None), (6, 20, False, True, 2),
                                          (3, 3, True, False, 1)):
        board, host = host_on()
        board.set("STATUS", 0b110)                   # stale DONE|ERROR: cleared by run_job
        qf, kf, vf = (rng.standard_normal((n, d)) for n in (sq, sk, sk))
        o, counters, h = arun(host.run_float(qf, kf, vf, causal=causal, dense=dense,
                                             k_tile=k_tile))
        regs = host.last_regs
        assert regs["MODE"] == gcore.MODE_CAUSAL * causal | gcore.MODE_DENSE * dense
        assert regs["K_TILE"] == (CFG.k_tile if k_tile is None else k_tile)
        assert regs["SCALE_MANT"] == h.mant and regs["SCALE_SHIFT"] == h.shift
        assert regs == {**gcore.packed_layout(CFG, sq, sk), **{k: regs[k] for k in regs
                                                              if not k.endswith(("BASE",
                                                                                 "STRIDE"))}}
        want = gcore.run_job(CFG, h.q, h.k, h.v, regs)
        assert o.dtype == np.int64 and o.shape == (sq, d)
        np.testing.assert_array_equal(o, want.out)
        assert set(counters) == {n for n, _ in COUNTERS}
        assert {n: counters[n] for n in gcore.COUNTERS} == want.counters
        assert counters["CYCLES"] == board.cycles
        # Q, K, V packed little-endian from address 0
        rb = CFG.formats.row_bytes
        assert board.mem[:sq * rb] == h.q.astype("<i1").tobytes()
        assert board.mem[sq * rb:(sq + sk) * rb] == h.k.astype("<i1").tobytes()


def test_host_job_error_code():
    """A job the core refuses: HostError naming the ErrorCode."""
    board, host = host_on()
    rng = np.random.default_rng(0)
    d = CFG.head_dim
    with pytest.raises(HostError, match=r"ERROR_CODE 3 \(K_TILE\)"):
        arun(host.run_job(ints(rng, (4, d)), ints(rng, (20, d)), ints(rng, (20, d)),
                          mant=100, shift=12, k_tile=CFG.k_tile + 1))
    with pytest.raises(HostError, match=r"ERROR_CODE 5 \(SCALE\)"):
        arun(host.run_job(ints(rng, (4, d)), ints(rng, (20, d)), ints(rng, (20, d)),
                          mant=0, shift=12))


D = CFG.head_dim


@pytest.mark.parametrize("q, k, v, kw, match", [
    ((5, D + 1), (40, D), (40, D), {}, r"^q has shape \(5, 17\), expected \[Q_LEN, 16\]"),
    ((5,), (40, D), (40, D), {}, r"^q has shape \(5,\)"),
    ((5, D), (40, D - 1), (40, D), {}, r"^k has shape \(40, 15\), expected \[SEQ_LEN, 16\]"),
    ((5, D), (40, D), (41, D), {}, r"^v has shape \(41, 16\), expected \(40, 16\)"),
    ((0, D), (40, D), (40, D), {}, r"^q has 0 rows, expected Q_LEN in 1\.\.256"),
    ((5, D), (257, D), (257, D), {}, r"^k has 257 rows, expected SEQ_LEN in 1\.\.256"),
    ((9, D), (8, D), (8, D), {"causal": True}, r"^causal needs Q_LEN <= SEQ_LEN"),
])
def test_host_bad_shapes(q, k, v, kw, match):
    board, host = host_on()
    z = np.zeros
    with pytest.raises(HostError, match=match):
        arun(host.run_job(z(q, int), z(k, int), z(v, int), mant=1, shift=8, **kw))
    with pytest.raises(HostError, match=match):
        arun(host.run_float(z(q), z(k), z(v), **kw))
    assert board.received == b""


def test_host_bad_values():
    board, host = host_on()
    z = np.zeros
    with pytest.raises(HostError, match=r"^v has values in \[-129, 0\], expected the 8-bit "
                                        r"signed range \[-128, 127\]"):
        v = z((40, D), int)
        v[3, 4] = -129
        arun(host.run_job(z((5, D), int), z((40, D), int), v, mant=1, shift=8))
    with pytest.raises(HostError, match=r"^q has dtype float64, expected integers"):
        arun(host.run_job(z((5, D)), z((40, D), int), z((40, D), int), mant=1, shift=8))
    with pytest.raises(HostError, match=r"^k has values that are not finite"):
        arun(host.run_float(z((5, D)), z((40, D)) + np.nan, z((40, D))))
    assert board.received == b""


def test_host_job_too_big_for_memory():
    board, host = host_on(mem_bytes=1024)
    z = np.zeros
    with pytest.raises(HostError, match=r"needs 1440 bytes of board memory .* has 1024"):
        arun(host.run_job(z((5, D), int), z((40, D), int), z((40, D), int), mant=1, shift=8))
    assert board.received == b""


def test_serial_transport_bad_port():
    with pytest.raises(HostError, match=r"cannot open serial port '/dev/no-such-star-port'"):
        SerialTransport("/dev/no-such-star-port", 115200)


# ---- RTL: star_board under cocotb ----------------------------------------------------------------
BOARD = {"divisor": 8, "mem_bytes": 4096}
CASES = [{"q_len": 5, "seq_len": 40, "causal": True, "dense": False, "k_tile": None},
         {"q_len": 6, "seq_len": 20, "causal": False, "dense": True, "k_tile": None},
         {"q_len": 4, "seq_len": 18, "causal": False, "dense": False, "k_tile": 2},
         # integer tensors of the format's extremes (-2**(b-1), 2**(b-1) - 1, 0, ±1)
         {"q_len": 5, "seq_len": 21, "causal": True, "dense": False, "k_tile": None,
          "extreme": True}]


@functools.lru_cache(maxsize=None)
def board_verilog() -> str:
    from star.hw.verilog import convert
    from star.hw.board import BoardTop

    return convert(BoardTop(CFG, **BOARD), name="star_board")


def test_board_rtl(seed):
    """The host driver over the simulated UART (tests/board_tb.py, one Verilator build): every
    case bit-exact with golden.core's counters (round_trip); out-of-range memory, unknown
    ops and host-side errors, the link still working after each (protocol_errors)."""
    from star.sim.runner import run
    run(board_verilog(), "star_board", "board_tb", seed=seed, timeout_s=600,
        config={"cfg": CFG.to_dict(), **BOARD, "cases": CASES})


@pytest.mark.parametrize("board", [b if b == "ulx3s-85f" else pytest.param(b, marks=pytest.mark.long)
                                   for b in sorted(BOARDS)])
def test_board_elaborates(board, tmp_path, capsys):
    """``star board`` without --bitstream: the board's build files, UART pins located, the core
    clock from an EHXPLLL with the global set/reset held until it locks."""
    assert cli.main(["board", "--board", board, "-p", "tiny", "-o", str(tmp_path)]) == 0
    lpf = (tmp_path / "star_board.lpf").read_text()
    assert lpf.count("LOCATE COMP") >= 3            # clock, uart rx and tx
    il = (tmp_path / "star_board.il").read_text()
    assert "EHXPLLL" in il and "SGSR" in il
    root = str(Path(cli.__file__).resolve().parents[1])
    for f in tmp_path.iterdir():                    # reproducible: no source paths in the files
        assert root not in f.read_text() and str(tmp_path) not in f.read_text(), f.name
    report = json.loads((tmp_path / "board.json").read_text())
    assert report["clock_mhz"] == BOARDS[board].pll["mhz"]
    assert report["divisor"] == round(report["clock_mhz"] * 1e6 / 115200)
    assert "UART 115200 baud" in capsys.readouterr().out


def test_board_bad_requests(capsys):
    assert cli.main(["board", "--board", "nope", "-p", "tiny"]) == 2
    assert "--board must be one of" in capsys.readouterr().err
    assert cli.main(["board", "--board", "ulx3s-85f", "-p", "tiny", "--baud", "10"]) == 2
    assert "--baud" in capsys.readouterr().err


def test_star_host_bad_port(capsys):
    assert cli.main(["host", "--port", "/dev/nonexistent-star", "--board", "ulx3s-85f",
                     "-p", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("star: ") and "/dev/nonexistent-star" in err and "\n" not in err
