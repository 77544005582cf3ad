"""cocotb testbench: the board top (``star_board``) driven by the host driver ``gen/host.py``
over a simulated UART (cocotbext-uart), against golden.core. It tests a tool (the host driver),
so it sits with the tests rather than in sim/, which may not import the tools (docs/decisions.md,
"Code layout"); cocotb imports it as ``board_tb`` (pytest puts tests/ on the path the runner
hands to the simulator).

:class:`SimTransport` gives :class:`gen.host.StarHost` the transport it needs (``write``,
``read(n, timeout)``, ``now``) on the DUT's ``uart_rx`` / ``uart_tx``; reads fail with HostError
instead of hanging (cocotb.triggers.with_timeout, in simulated time).

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "divisor": clock cycles per UART bit,
"mem_bytes": the board memory, "cases": [{q_len, seq_len, causal, dense, k_tile (None: the
built maximum)}], "job_timeout_s": simulated seconds a job may take (default 0.005)}. Tests:
    round_trip       each case: random float Q/K/V through StarHost.run_float; O bit-exact and
                     the data counters against golden.core.run_job with the driver's registers
    protocol_errors  memory accesses out of range (status 0x01) refused by the board and then
                     the link still works; a register access outside the map (SLVERR); unknown
                     op bytes (status 0x02); a shape error raised before anything is sent
"""

import logging
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.uart import UartSink, UartSource

from star.gen.host import HostError, StarHost
from star.golden import core as gcore
from star.sim.runner import env_config, env_seed
from star.spec.board_protocol import OP_READ_REG, ST_OP, ST_RANGE
from star.spec.config import StarConfig
from star.spec.formats import encode_score_scale

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

CLK_NS = 10
OPTS = env_config({}) or {}


class SimTransport:
    """gen.host's transport on the simulated UART: ``divisor`` clock cycles of ``clk_ns`` a bit.

    ``read(n, timeout)`` waits at most ``min(timeout, n byte times + slack_cycles)`` of simulated
    time, then raises HostError. ``sent`` counts the bytes written (to check nothing was)."""

    def __init__(self, dut, divisor: int, clk_ns: int = CLK_NS, slack_cycles: int = 4000):
        bit_ns = divisor * clk_ns
        baud = 1e9 / bit_ns
        if int(1e9 / baud) != bit_ns:        # cocotbext-uart truncates 1e9/baud to whole ns
            baud = 1e9 / (bit_ns + 0.25)
        for sig in (dut.uart_rx, dut.uart_tx):         # no per-byte (or banner) INFO logs
            logging.getLogger(f"cocotb.{sig._path}").setLevel(logging.WARNING)
        self.source = UartSource(dut.uart_rx, baud=baud, bits=8)
        self.sink = UartSink(dut.uart_tx, baud=baud, bits=8)
        self.byte_ns = 10 * bit_ns
        self.slack_ns = slack_cycles * clk_ns
        self.sent = 0

    def now(self) -> float:
        return get_sim_time("ns") * 1e-9

    async def write(self, data: bytes):
        data = bytes(data)
        self.sent += len(data)
        await self.source.write(data)
        try:
            await with_timeout(self.source.wait(), len(data) * self.byte_ns + self.slack_ns, "ns")
        except SimTimeoutError:
            raise HostError(f"the UART source did not send {len(data)} bytes in time") from None

    async def read(self, n: int, timeout: float) -> bytes:
        limit_ns = int(min(timeout * 1e9, n * self.byte_ns + self.slack_ns))
        deadline = get_sim_time("ns") + limit_ns
        out = bytearray()
        while len(out) < n:
            if self.sink.count():
                out += self.sink.read_nowait(min(n - len(out), self.sink.count()))
                continue
            left = int(deadline - get_sim_time("ns"))
            try:
                if left <= 0:
                    raise SimTimeoutError()
                await with_timeout(self.sink.wait(), left, "ns")
            except SimTimeoutError:
                raise HostError(f"no reply from the board within {limit_ns * 1e-9:.3g} s "
                                f"(simulated; got {len(out)} of {n} bytes)") from None
        return bytes(out)


class Board:
    """The DUT with its clock, a SimTransport and a StarHost."""

    def __init__(self, dut):
        self.dut = dut
        self.cfg = StarConfig(**OPTS["cfg"])
        self.divisor = int(OPTS["divisor"])
        self.mem_bytes = int(OPTS["mem_bytes"])
        self.seed = env_seed()
        self.rng = np.random.default_rng(self.seed)
        self.where = f"config {self.cfg.name} (lanes {self.cfg.lanes}, tile {self.cfg.tile}, " \
                     f"d {self.cfg.head_dim}, {self.cfg.data_bits}-bit), divisor " \
                     f"{self.divisor}, mem_bytes {self.mem_bytes}, seed {self.seed}"
        dut._log.info(f"{self.where}; rerun with --seed {self.seed}")
        self.link = SimTransport(dut, self.divisor)
        self.host = StarHost(self.link, self.cfg, self.mem_bytes)

    async def start(self):
        Clock(self.dut.clk, CLK_NS, unit="ns").start()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 4 * self.divisor)


async def _expect_error(what: str, coro, *needles: str) -> str:
    try:
        await coro
    except HostError as e:
        msg = str(e)
        assert "\n" not in msg, f"{what}: HostError message is not one line: {msg!r}"
        for n in needles:
            assert n in msg, f"{what}: HostError {msg!r} does not mention {n!r}"
        return msg
    raise AssertionError(f"{what}: no HostError")


@cocotb.test()
async def round_trip(dut):
    """Each case through the host driver: O bit-exact, counters as golden.core.run_job."""
    b = Board(dut)
    await b.start()
    cfg, host, d = b.cfg, b.host, b.cfg.head_dim
    await host.check_build()
    limit = float(OPTS.get("job_timeout_s", 0.005))
    for spec in OPTS["cases"]:
        sq, sk = spec["q_len"], spec["seq_len"]
        causal, dense = bool(spec.get("causal")), bool(spec.get("dense"))
        what = f"[q_len {sq}, seq_len {sk}, {'causal' if causal else 'full'}, " \
               f"{'dense' if dense else 'sparse'}, k_tile {spec.get('k_tile')}]"
        t0 = get_sim_time("ns")
        if spec.get("extreme"):           # integers at the format's limits, a small scale
            fmt = cfg.formats
            q, k, v = (b.rng.choice([fmt.qmin, fmt.qmax, 0, 1, -1], (n, d),
                                    p=[.4, .4, .1, .05, .05]) for n in (sq, sk, sk))
            mant, shift = encode_score_scale(2.0 ** -12, cfg.scale_bits, cfg.exp_frac_bits)
            what += " extreme values"
            o, got = await host.run_job(q, k, v, mant=mant, shift=shift, causal=causal,
                                        dense=dense, k_tile=spec.get("k_tile"), timeout_s=limit)
        else:
            qf, kf, vf = (b.rng.standard_normal((n, d)) for n in (sq, sk, sk))
            o, got, h = await host.run_float(qf, kf, vf, causal=causal, softmax_scale=d ** -0.5,
                                             dense=dense, k_tile=spec.get("k_tile"),
                                             timeout_s=limit)
            q, k, v = h.q, h.k, h.v
        want = gcore.run_job(cfg, q, k, v, host.last_regs)
        diff = np.argwhere(o != want.out)
        assert not diff.size, \
            f"{what}: {len(diff)} O elements differ (first: row {diff[0][0]} element " \
            f"{diff[0][1]} expected {want.out[tuple(diff[0])]} got {o[tuple(diff[0])]}); " \
            f"{b.where}"
        bad = [f"{n} {got[n]} (expected {want.counters[n]})" for n in gcore.COUNTERS
               if got[n] != want.counters[n]]
        assert not bad, f"{what}: counters differ: {', '.join(bad)}; {b.where}"
        assert got["CYCLES"] > 0, f"{what}: CYCLES is 0; {b.where}"
        dut._log.info(f"{what}: bit-exact, counters match, CYCLES {got['CYCLES']}, "
                      f"{(get_sim_time('ns') - t0) / 1e3:.0f} us simulated over the UART")


@cocotb.test()
async def protocol_errors(dut):
    """Out-of-range memory accesses, SLVERR, unknown ops, host-side shape errors."""
    b = Board(dut)
    await b.start()
    cfg, host, link, n = b.cfg, b.host, b.link, b.mem_bytes
    regs = host.regs
    # the board refuses what a host that believes in a larger memory sends
    big = StarHost(link, cfg, n + 4096)
    await _expect_error("write past the end", big.write_mem(n - 4, bytes(range(8))),
                        "0x01", "write memory")
    await _expect_error("read past the end", big.read_mem(n - 4, 8), "0x01", "read memory")
    await _expect_error("read from the end", big.read_mem(n, 1), "0x01")
    # the link still works: registers and memory
    assert await host.read_reg("HW_SHAPE") == regs["HW_SHAPE"].reset, b.where
    assert await host.read_reg("K_TILE") == cfg.k_tile, b.where
    await host.check_build()
    data = bytes(b.rng.integers(0, 256, 64, dtype=np.uint8))
    await host.write_mem(n - 64, data)
    assert await host.read_mem(n - 64, 64) == data, f"memory read-back differs; {b.where}"
    # the driver refuses out-of-range accesses before sending anything
    sent = link.sent
    await _expect_error("driver range check", host.read_mem(n - 4, 8), "outside")
    await _expect_error("driver range check", host.write_mem(n, b"x"), "outside")
    assert link.sent == sent, "the driver sent a request it should have refused"
    # a register outside the map: SLVERR (0x12); then an ordinary access
    used = {r.offset for r in regs.values()}
    unmapped = max(off for off in range(0, 256, 4) if off not in used)
    await _expect_error("unmapped register", host.read_reg(unmapped), "0x12")
    await host.write_reg("SEQ_LEN", 1234)
    assert await host.read_reg("SEQ_LEN") == 1234, b.where
    # unknown op bytes: status 0x02 at once, nothing else consumed
    for op in (0x00, 0x05, 0x7F, 0xFF):
        await link.write(bytes([op]))
        reply = await link.read(1, 1.0)
        assert reply == bytes([ST_OP]), f"op 0x{op:02x}: reply {reply.hex()}, expected " \
                                        f"{ST_OP:02x}; {b.where}"
    # a raw register read right after: the bridge is back at the op byte
    await link.write(bytes([OP_READ_REG, regs["HW_TILE"].offset]))
    reply = await link.read(5, 1.0)
    assert int.from_bytes(reply[:4], "little") == regs["HW_TILE"].reset and reply[4] == 0x10, \
        f"raw HW_TILE read: reply {reply.hex()}; {b.where}"
    # a raw out-of-range read returns count zero bytes, then 0x01
    await link.write(bytes([0x02]) + (n - 1).to_bytes(4, "little") + (3).to_bytes(2, "little"))
    reply = await link.read(4, 1.0)
    assert reply == bytes(3) + bytes([ST_RANGE]), f"raw read past the end: reply " \
                                                  f"{reply.hex()}; {b.where}"
    # host-side errors: nothing is sent
    d = cfg.head_dim
    sent = link.sent
    z = np.zeros
    await _expect_error("shape", host.run_job(z((5, d + 1), int), z((40, d), int),
                                              z((40, d), int), mant=1, shift=8), "q", "shape")
    await _expect_error("k/v", host.run_job(z((5, d), int), z((40, d), int), z((41, d), int),
                                            mant=1, shift=8), "v", "shape")
    await _expect_error("causal", host.run_job(z((9, d), int), z((8, d), int), z((8, d), int),
                                               mant=1, shift=8, causal=True), "causal")
    big_k = z((40, d), int) + (1 << cfg.data_bits)
    await _expect_error("range", host.run_job(z((5, d), int), big_k, z((40, d), int), mant=1,
                                              shift=8), "k", "range")
    assert link.sent == sent, "the driver sent bytes for a job it should have refused"
    dut._log.info(f"protocol errors as documented; {b.where}")
