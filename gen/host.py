"""Host driver for ``star_board``: the STAR core with block RAM behind a UART bridge.

Pure Python (numpy), transport-agnostic and async. The serial protocol is docs/board.md:
memory writes/reads (chunks of at most 65535 bytes) and register writes/reads, each answered
by a status byte. :class:`StarHost` builds on it: :meth:`StarHost.run_job` loads Q/K/V (packed
from address 0, ``golden.core.packed_layout``), sets the job registers, starts the job, polls
STATUS and returns O and the performance counters; :meth:`StarHost.run_float` quantises float
tensors first (``golden.pipeline.prepare``). Every failure is a :class:`HostError` with a
one-line message.

A transport is any object with ``async write(data: bytes)`` and ``async read(n, timeout) ->
bytes`` (exactly n bytes, or HostError when the board does not answer within ``timeout``
seconds); it may also have ``now() -> float`` (seconds; a simulation gives simulated time), used
for the job timeout (default ``time.monotonic``). :class:`SerialTransport` is pyserial's; the
cocotb testbench ``tests/board_tb.py`` has one over a simulated UART. The driver uses no asyncio
primitive, so it also runs under cocotb's scheduler.

Usage::

    import asyncio
    import numpy as np
    from star.spec.config import preset
    from star.gen.host import SerialTransport, StarHost

    async def main():
        cfg = preset("tiny")
        host = StarHost(SerialTransport("/dev/ttyUSB0", 115200), cfg, mem_bytes=4096)
        await host.check_build()
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((n, cfg.head_dim)) for n in (5, 40, 40))
        o, counters, h = await host.run_float(q, k, v, causal=True)
        print(o, counters["CYCLES"])

    asyncio.run(main())
"""

from __future__ import annotations

import time

import numpy as np

from star.spec.board_protocol import (ADDR_BYTES, COUNT_BYTES, MAX_CHUNK, OP_READ_MEM,
                                      OP_READ_REG, OP_WRITE_MEM, OP_WRITE_REG, ST_OK,
                                      ST_REG_OK, status_text)
from star.golden.core import MODE_CAUSAL, MODE_DENSE, packed_layout
from star.spec.regmap import COUNTERS, JOB_NAMES, RADIUS_OFF_VALUE, ErrorCode, by_name

__all__ = ["HostError", "SerialTransport", "StarHost"]

class HostError(Exception):
    """Anything that went wrong on the host side, on the link or on the board (one line)."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ---- transports ----------------------------------------------------------------------------------
class SerialTransport:
    """A serial port (pyserial): 8 data bits, no parity, 1 stop bit at ``baud``.

    ``read(n, timeout)`` waits ``timeout`` seconds plus the time n bytes take on the line. The
    calls block (the link is the bottleneck; one request is in flight at a time)."""

    def __init__(self, port: str, baud: int):
        try:
            import serial
        except ImportError:
            raise HostError("pyserial is not installed (pip install pyserial)") from None
        self.port, self.baud = port, int(baud)
        try:
            self._ser = serial.Serial(port, self.baud, bytesize=8, parity="N", stopbits=1,
                                      timeout=1.0, write_timeout=None)
        except (serial.SerialException, OSError, ValueError) as e:
            raise HostError(f"cannot open serial port {port!r} at {baud} baud: "
                            f"{_one_line(e)}") from None
        self._ser.reset_input_buffer()

    def byte_time(self) -> float:
        """Seconds one byte takes on the line (10 bit times)."""
        return 10.0 / self.baud

    async def write(self, data: bytes):
        try:
            self._ser.write(bytes(data))
            self._ser.flush()
        except Exception as e:       # serial.SerialException, OSError
            raise HostError(f"serial port {self.port!r}: write failed: {_one_line(e)}") from None

    async def read(self, n: int, timeout: float) -> bytes:
        limit = timeout + n * self.byte_time()
        try:
            self._ser.timeout = limit
            data = self._ser.read(n)
        except Exception as e:
            raise HostError(f"serial port {self.port!r}: read failed: {_one_line(e)}") from None
        if len(data) < n:
            raise HostError(f"no reply from the board within {limit:.3g} s "
                            f"(got {len(data)} of {n} bytes)")
        return bytes(data)

    def now(self) -> float:
        return time.monotonic()

    def close(self):
        self._ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the driver ----------------------------------------------------------------------------------
class StarHost:
    """The core's registers and the board memory over a transport, and whole jobs.

    ``mem_bytes``: the board memory's size (a build parameter of star_board); memory accesses
    outside ``[0, mem_bytes)`` are refused here before anything is sent. ``link_timeout_s``:
    how long to wait for each response. After :meth:`run_job`, :attr:`last_regs` holds the job
    register values it wrote ({name: value}, every name of ``star.spec.regmap.JOB_NAMES``)."""

    def __init__(self, transport, cfg, mem_bytes: int, *, link_timeout_s: float = 1.0):
        self.transport = transport
        self.cfg = cfg
        self.fmt = cfg.formats
        self.mem_bytes = int(mem_bytes)
        self.link_timeout_s = float(link_timeout_s)
        self.regs = by_name(cfg)
        self.last_regs: dict | None = None
        self._now = getattr(transport, "now", None) or time.monotonic

    # ---- low level ----------------------------------------------------------------------------
    async def _request(self, what: str, req: bytes, n_reply: int, ok: int) -> bytes:
        """Send ``req``, read ``n_reply`` bytes and the status byte; check it is ``ok``."""
        await self.transport.write(req)
        try:
            reply = await self.transport.read(n_reply + 1, self.link_timeout_s)
        except HostError as e:
            raise HostError(f"{what}: {e}") from None
        if len(reply) != n_reply + 1:
            raise HostError(f"{what}: the transport returned {len(reply)} bytes, "
                            f"expected {n_reply + 1}")
        if reply[-1] != ok:
            raise HostError(f"{what}: the board answered status {status_text(reply[-1])}, "
                            f"expected {status_text(ok)}")
        return bytes(reply[:-1])

    def _check_range(self, what: str, addr: int, n: int):
        if n < 0:
            raise HostError(f"{what}: negative byte count {n}")
        if addr < 0 or addr + n > self.mem_bytes or addr + n > 1 << 32:
            raise HostError(f"{what}: bytes [0x{addr:x}, 0x{addr + n:x}) are outside the "
                            f"board memory [0, 0x{self.mem_bytes:x})")

    async def write_mem(self, addr: int, data: bytes):
        """Write ``data`` to the board memory at byte address ``addr``."""
        data = bytes(data)
        self._check_range(f"write memory at 0x{addr:x}", addr, len(data))
        for at in range(0, len(data), MAX_CHUNK):
            chunk = data[at:at + MAX_CHUNK]
            a = addr + at
            req = bytes([OP_WRITE_MEM]) + a.to_bytes(ADDR_BYTES, "little") \
                + len(chunk).to_bytes(COUNT_BYTES, "little") + chunk
            await self._request(f"write memory at 0x{a:x} ({len(chunk)} bytes)", req, 0, ST_OK)

    async def read_mem(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes of the board memory from byte address ``addr``."""
        self._check_range(f"read memory at 0x{addr:x}", addr, n)
        out = bytearray()
        for at in range(0, n, MAX_CHUNK):
            a, c = addr + at, min(MAX_CHUNK, n - at)
            req = bytes([OP_READ_MEM]) + a.to_bytes(ADDR_BYTES, "little") \
                + c.to_bytes(COUNT_BYTES, "little")
            out += await self._request(f"read memory at 0x{a:x} ({c} bytes)", req, c, ST_OK)
        return bytes(out)

    def offset(self, name_or_offset) -> int:
        """A register's byte offset: by name (star.spec.regmap) or given as an int (0..255)."""
        if isinstance(name_or_offset, str):
            reg = self.regs.get(name_or_offset)
            if reg is None:
                raise HostError(f"unknown register {name_or_offset!r}")
            return reg.offset
        off = int(name_or_offset)
        if not 0 <= off <= 0xFF:
            raise HostError(f"register offset 0x{off:x} is outside 0x00..0xff")
        return off

    def _reg_label(self, name_or_offset, off: int) -> str:
        return f"{name_or_offset} (0x{off:02x})" if isinstance(name_or_offset, str) \
            else f"0x{off:02x}"

    async def write_reg(self, name_or_offset, value: int):
        """Write a 32-bit register (negative values down to -2**31 are written modulo 2**32)."""
        off = self.offset(name_or_offset)
        value = int(value)
        label = self._reg_label(name_or_offset, off)
        if not -(1 << 31) <= value < 1 << 32:
            raise HostError(f"write register {label}: value {value} does not fit 32 bits")
        req = bytes([OP_WRITE_REG, off]) + (value & 0xFFFF_FFFF).to_bytes(4, "little")
        await self._request(f"write register {label}", req, 0, ST_REG_OK)

    async def read_reg(self, name_or_offset) -> int:
        """Read a 32-bit register (unsigned)."""
        off = self.offset(name_or_offset)
        label = self._reg_label(name_or_offset, off)
        data = await self._request(f"read register {label}", bytes([OP_READ_REG, off]), 4,
                                   ST_REG_OK)
        return int.from_bytes(data, "little")

    def field(self, reg: str, name: str) -> int:
        """The mask of bit field ``reg.name`` (star.spec.regmap)."""
        return self.regs[reg].mask(name)

    async def check_build(self):
        """Compare the board's HW_* build-parameter registers with ``cfg`` (HostError if not)."""
        bad = []
        for name in ("HW_SHAPE", "HW_TILE", "HW_LIMITS", "HW_RADIUS_MAX"):
            got, want = await self.read_reg(name), self.regs[name].reset
            if got != want:
                bad.append(f"{name} 0x{got:x} (expected 0x{want:x})")
        if bad:
            raise HostError(f"the board was not built for config {self.cfg.name}: "
                            + ", ".join(bad))

    # ---- jobs ---------------------------------------------------------------------------------
    def _check_shapes(self, q, k, v, causal: bool, integer: bool):
        """Shapes (and for integer tensors: dtype and value range) of a job's inputs."""
        d, max_seq = self.cfg.head_dim, self.cfg.max_seq
        out = []
        for name, x, rows in (("q", q, "Q_LEN"), ("k", k, "SEQ_LEN"), ("v", v, "SEQ_LEN")):
            try:
                x = np.asarray(x)
            except Exception as e:
                raise HostError(f"{name} is not an array: {_one_line(e)}") from None
            if x.ndim != 2 or x.shape[1] != d:
                raise HostError(f"{name} has shape {tuple(x.shape)}, expected [{rows}, {d}] "
                                f"(head_dim {d})")
            if not 1 <= x.shape[0] <= max_seq:
                raise HostError(f"{name} has {x.shape[0]} rows, expected {rows} in "
                                f"1..{max_seq} (max_seq)")
            if integer and not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
                raise HostError(f"{name} has dtype {x.dtype}, expected integers "
                                f"({self.fmt.data_bits}-bit signed values)")
            if not integer and not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
                raise HostError(f"{name} has dtype {x.dtype}, expected numbers")
            out.append(x)
        q, k, v = out
        if v.shape != k.shape:
            raise HostError(f"v has shape {tuple(v.shape)}, expected {tuple(k.shape)} "
                            f"(the shape of k)")
        if causal and q.shape[0] > k.shape[0]:
            raise HostError(f"causal needs Q_LEN <= SEQ_LEN: q has {q.shape[0]} rows, "
                            f"k {k.shape[0]}")
        if integer:
            lo, hi = self.fmt.qmin, self.fmt.qmax
            for name, x in (("q", q), ("k", k), ("v", v)):
                x_lo, x_hi = int(x.min()), int(x.max())
                if x_lo < lo or x_hi > hi:
                    raise HostError(f"{name} has values in [{x_lo}, {x_hi}], expected the "
                                    f"{self.fmt.data_bits}-bit signed range [{lo}, {hi}]")
        elif not all(np.isfinite(x).all() for x in out):
            bad = next(n for n, x in zip("qkv", out) if not np.isfinite(x).all())
            raise HostError(f"{bad} has values that are not finite")
        return q, k, v

    def _dtype(self) -> str:
        b = self.fmt.data_bits
        if b not in (8, 16):
            raise HostError(f"data_bits {b} is not supported by the host driver (8 or 16)")
        return "<i1" if b == 8 else "<i2"

    async def run_job(self, q, k, v, *, mant: int, shift: int, causal: bool = False,
                      dense: bool = False, k_tile: int | None = None, radius: int = -1,
                      timeout_s: float = 10.0):
        """Run one attention head on the board; return ``(o, counters)``.

        ``q`` [Q_LEN, d], ``k``/``v`` [SEQ_LEN, d]: integers in the data_bits signed range;
        ``mant``/``shift``: the score scale (SCALE_MANT, SCALE_SHIFT); ``k_tile`` default the
        config's; ``radius`` < 0: off. ``timeout_s``: how long the job may take (transport
        time). ``o``: int64 [Q_LEN, d]; ``counters``: {name: value} of every counter
        (spec/regmap.py).
        A job the core refuses or ends with ERROR raises HostError naming the ErrorCode."""
        q, k, v = self._check_shapes(q, k, v, causal, integer=True)
        dt, rb = self._dtype(), self.fmt.row_bytes
        sq, sk = q.shape[0], k.shape[0]
        layout = packed_layout(self.cfg, sq, sk, 0)
        end = layout["O_BASE"] + sq * rb
        if end > self.mem_bytes:
            raise HostError(f"the job needs {end} bytes of board memory (Q, K, V, O packed: "
                            f"Q_LEN {sq}, SEQ_LEN {sk}, {rb} bytes a row), the board has "
                            f"{self.mem_bytes}")
        for name, x in (("Q", q), ("K", k), ("V", v)):
            await self.write_mem(layout[f"{name}_BASE"], x.astype(dt).tobytes())
        done, error = self.field("STATUS", "DONE"), self.field("STATUS", "ERROR")
        await self.write_reg("STATUS", done | error)
        regs = {**layout, "SEQ_LEN": sk, "Q_LEN": sq,
                "K_TILE": self.cfg.k_tile if k_tile is None else int(k_tile),
                "RADIUS": RADIUS_OFF_VALUE if radius < 0 else int(radius),
                "SCALE_MANT": int(mant), "SCALE_SHIFT": int(shift),
                "MODE": (MODE_CAUSAL if causal else 0) | (MODE_DENSE if dense else 0)}
        self.last_regs = {name: regs[name] for name in JOB_NAMES}
        for name in JOB_NAMES:
            await self.write_reg(name, regs[name])
        await self.write_reg("CTRL", self.field("CTRL", "START"))
        t0 = self._now()
        while True:
            st = await self.read_reg("STATUS")
            if st & done:
                break
            if self._now() - t0 > timeout_s:
                raise HostError(f"the job did not finish within {timeout_s:g} s "
                                f"(STATUS 0x{st:x})")
        if st & error:
            code = await self.read_reg("ERROR_CODE")
            try:
                label = ErrorCode(code).name
            except ValueError:
                label = "unknown"
            raise HostError(f"the job ended with an error: ERROR_CODE {code} ({label})")
        raw = await self.read_mem(layout["O_BASE"], sq * rb)
        o = np.frombuffer(raw, dtype=dt).reshape(sq, self.cfg.head_dim).astype(np.int64)
        counters = {name: await self.read_reg(name) for name, _ in COUNTERS}
        return o, counters

    async def run_float(self, qf, kf, vf, *, causal: bool = False,
                        softmax_scale: float | None = None, **kw):
        """Quantise float q/k/v (golden.pipeline.prepare; ``softmax_scale`` default
        head_dim**-0.5) and run the job; return ``(o_int, counters, h)`` with ``h`` the
        HeadInputs (int tensors and scales: dequantise O with ``h.scale_v``)."""
        from star.golden.pipeline import prepare

        qf, kf, vf = self._check_shapes(qf, kf, vf, causal, integer=False)
        if softmax_scale is None:
            softmax_scale = self.cfg.head_dim ** -0.5
        h = prepare(self.fmt, np.asarray(qf, float), np.asarray(kf, float),
                    np.asarray(vf, float), causal=causal, softmax_scale=softmax_scale)
        o, counters = await self.run_job(h.q, h.k, h.v, mant=h.mant, shift=h.shift,
                                         causal=causal, **kw)
        return o, counters, h
