"""The shared base of the AXI testbenches of star_core (sim/core_tb.py) and star_spatial
(sim/spatial_tb.py): one AXI4-Lite master (cocotbext-axi) for the registers, and one AXI4 slave
per memory channel whose memory is a :class:`Ram`.

Provides the config (``OPTS``, STAR_TEST_CONFIG) and test selection (:func:`test`: its "tests"
option), and :class:`AxiTb`: the seeds, clock, reset and bus models (their log levels), random
stalls on every channel (sim.regbus.pauses), job registers (pipeline.prepare, a layout; programmed
by name through sim.regbus.RegisterBus) and the checks every job shares: STATUS and ERROR_CODE,
O bit-exact, counters against the bytes the channels moved, every read inside an input row,
every write inside an O row, no byte outside the O rows changed, W1C clearing.

A :class:`Ram` is a cocotbext-axi ``MemoryRegion`` (the ``target`` of an ``AxiSlave``): its public
``read``/``write`` coroutines see every beat (write strobes split a beat into its runs of bytes),
record it, and raise on chosen rows, which the slave answers with SLVERR.
"""

import logging
import random
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiSlave, MemoryRegion

from star.golden import core as gcore
from star.golden import pipeline
from star.sim.regbus import CLK_NS, RegisterBus, pauses
from star.sim.runner import env_config, env_seed
from star.spec.config import StarConfig
from star.spec.regmap import RADIUS_OFF_VALUE, ErrorCode, by_name

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

__all__ = ["OPTS", "test", "Ram", "AxiTb"]

OPTS = env_config({}) or {}


def test(fn):
    """``cocotb.test``, skipped unless OPTS "tests" names it (absent: every test runs)."""
    return cocotb.test(skip=bool(OPTS.get("tests")) and fn.__name__ not in OPTS["tests"])(fn)


def _code_name(code: int) -> str:
    return ErrorCode(code).name if code in ErrorCode._value2member_map_ else "?"


class Ram(MemoryRegion):
    """``size`` bytes that the bus addresses wrap onto, with a random canary (drawn from ``rng``)
    under the rows a job loads; ``reads``/``writes`` hold (address, bytes) of every R / W beat
    since the last :meth:`clear`, rows in ``fail_reads``/``fail_writes`` answer SLVERR."""

    def __init__(self, size: int, rng, fmt):
        super().__init__(size, mem=bytearray(size))
        self.canary = bytes(rng.integers(0, 256, size, dtype=np.uint8))
        self.rb, self.dt = fmt.row_bytes, "<i1" if fmt.data_bits == 8 else "<i2"
        self.reads, self.writes = [], []
        self.fail_reads, self.fail_writes = set(), set()
        self.image = self.canary                # what the RAM must hold outside the O rows

    async def read(self, address, length, **kwargs):
        self.reads.append((address, length))
        if address - address % self.rb in self.fail_reads:
            raise OSError("injected read error")        # AxiSlaveRead answers SLVERR
        return await super().read(address % self.size, length, **kwargs)

    async def write(self, address, data, **kwargs):
        self.writes.append((address, len(data)))
        if address - address % self.rb in self.fail_writes:
            raise OSError("injected write error")       # SLVERR in the B response
        await super().write(address % self.size, data, **kwargs)

    def clear(self):
        self.reads.clear()
        self.writes.clear()

    def moved(self) -> tuple[int, int]:
        """Bytes read and written since the last :meth:`clear`."""
        return sum(n for _, n in self.reads), sum(n for _, n in self.writes)

    def load(self, tensors):
        """The canary everywhere, then each (row addresses, integer rows) of ``tensors``."""
        self.mem[:] = self.canary
        for addrs, x in tensors:
            for addr, row in zip(addrs, x):
                a = addr % self.size
                self.mem[a:a + self.rb] = row.astype(self.dt).tobytes()
        self.image = bytes(self.mem)

    def row(self, addr: int) -> np.ndarray:
        a = addr % self.size
        return np.frombuffer(bytes(self.mem[a:a + self.rb]), dtype=self.dt)

    def check_traffic(self, what: str, inputs, outputs):
        """Every read inside an ``inputs`` row, every write inside an ``outputs`` row and no
        byte outside the ``outputs`` rows changed since :meth:`load`."""
        inputs, outputs = set(inputs), set(outputs)
        stray = [a for a, _ in self.reads if a - a % self.rb not in inputs]
        assert not stray, f"{what}: {len(stray)} reads outside the input rows, first at " \
                          f"0x{stray[0]:x}"
        stray = [a for a, _ in self.writes if a - a % self.rb not in outputs]
        assert not stray, f"{what}: {len(stray)} writes outside the O rows, first at " \
                          f"0x{stray[0]:x}"
        diff = np.frombuffer(bytes(self.mem), np.uint8) != np.frombuffer(self.image, np.uint8)
        for addr in outputs:
            diff[addr % self.size: addr % self.size + self.rb] = False
        bad = np.flatnonzero(diff)
        assert not bad.size, f"{what}: {bad.size} bytes changed outside O, first at RAM " \
                             f"offset 0x{int(bad[0]):x}"


class AxiTb(RegisterBus):
    """The DUT (clk, rst, irq, ``s_axil`` registers) with an AXI4 slave and :class:`Ram` of
    ``mem_size`` bytes on each bus prefix of ``channels`` (``rams`` in that order). A subclass
    provides ``load(job)`` (each RAM's :meth:`Ram.load`) and ``check(job, **kw)`` (after irq:
    every check of the job, then :meth:`clear_status`)."""

    def __init__(self, dut, cfg: StarConfig, what: str, channels, mem_size: int):
        self.dut, self.opts, self.cfg = dut, OPTS, cfg
        self.fmt = cfg.formats
        self.seed = env_seed()
        self.rng = np.random.default_rng(self.seed)
        self.prng = random.Random(self.seed + 99)
        self.regs = by_name(cfg)
        self.where = f"{what}, seed {self.seed}"
        dut._log.info(f"{self.where}; rerun with --seed {self.seed}")
        self.mem_size = mem_size
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.rams = [Ram(mem_size, self.rng, self.fmt) for _ in channels]
        self.slaves = [AxiSlave(AxiBus.from_prefix(dut, p), dut.clk, dut.rst, target=ram)
                       for p, ram in zip(channels, self.rams)]
        for m in (self.lite, *self.slaves):
            m.write_if.log.setLevel(logging.WARNING)
            m.read_if.log.setLevel(logging.WARNING)

    # ---- clock, reset, stalls ----------------------------------------------------------------
    async def start(self):
        Clock(self.dut.clk, CLK_NS, unit="ns").start()
        await self.reset(4)

    async def reset(self, cycles: int):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def stalls(self, on: bool):
        """Random ready/valid pauses on every channel of every bus (or none)."""
        p = self.opts.get("p_pause", 0.3)
        for m in (self.lite, *self.slaves):
            w, r = m.write_if, m.read_if
            for ch in (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel):
                if on:
                    ch.set_pause_generator(pauses(random.Random(self.prng.random()), p))
                else:
                    ch.clear_pause_generator()
                    ch.pause = False             # the generator may have been stopped mid-pause

    # ---- jobs --------------------------------------------------------------------------------
    def prepare(self, spec: dict, label: str, layout, data=None) -> dict:
        """A case's name, registers (address registers ``layout(q_len, seq_len)``) and integer
        q, k, v from float ``data`` (default: random normal); spec: q_len, seq_len, causal,
        dense, k_tile (None: the built maximum), radius (-1 off, or "small": a quarter of the
        mean |predicted score|)."""
        cfg, d = self.cfg, self.cfg.head_dim
        sq, sk = spec["q_len"], spec["seq_len"]
        causal, dense = bool(spec.get("causal")), bool(spec.get("dense"))
        qf, kf, vf = data if data is not None else \
            (2.0 * self.rng.standard_normal((n, d)) for n in (sq, sk, sk))
        h = pipeline.prepare(self.fmt, qf, kf, vf, causal=causal, softmax_scale=d ** -0.5)
        radius = spec.get("radius", -1)
        if radius == "small":
            radius = int(np.abs(pipeline.predicted_scores(h, self.fmt, "dlzs")).mean() // 4)
        k_tile = spec.get("k_tile")
        regs = {**layout(sq, sk), "SEQ_LEN": sk, "Q_LEN": sq,
                "K_TILE": cfg.k_tile if k_tile is None else k_tile,
                "RADIUS": RADIUS_OFF_VALUE if radius < 0 else radius,
                "SCALE_MANT": h.mant, "SCALE_SHIFT": h.shift,
                "MODE": gcore.MODE_CAUSAL * causal | gcore.MODE_DENSE * dense}
        name = f"{label} [q_len {sq}, seq_len {sk}, {'causal' if causal else 'full'}, " \
               f"{'dense' if dense else 'sparse'}, k_tile {regs['K_TILE']}, radius {radius}]"
        return {"name": name, "regs": regs, "q": h.q, "k": h.k, "v": h.v}

    async def start_job(self, regs: dict):
        """Program the job registers, forget the recorded beats, START."""
        await self.write_job_regs(regs)
        for ram in self.rams:
            ram.clear()
        await self.write("CTRL", self.field("CTRL", "START"))

    async def run(self, job: dict, **check):
        """Load, start and check a job (``check``: more arguments of :meth:`check`)."""
        self.load(job)
        await self.start_job(job["regs"])
        await self.wait_irq(job["limit"], job["name"])
        await self.check(job, **check)

    def moved(self) -> tuple[int, int]:
        """Bytes read and written on all channels since the job started."""
        per = [ram.moved() for ram in self.rams]
        return sum(r for r, _ in per), sum(w for _, w in per)

    async def check_status(self, what: str, error_code=None):
        """STATUS DONE (and ERROR unless ``error_code`` is None or NONE), ERROR_CODE."""
        error = error_code not in (None, ErrorCode.NONE)
        want = self.field("STATUS", "DONE") | (self.field("STATUS", "ERROR") if error else 0)
        st = await self.read("STATUS")
        assert st == want, f"{what}: STATUS 0x{st:x}, expected 0x{want:x} (DONE" \
                           f"{', ERROR' if error else ''}, not BUSY); {self.where}"
        if error_code is not None:
            code = await self.read("ERROR_CODE")
            assert code == error_code, f"{what}: ERROR_CODE {code} ({_code_name(code)}), " \
                f"expected {int(error_code)} ({_code_name(error_code)}); {self.where}"

    def check_o(self, what: str, ram: Ram, rows, want: np.ndarray):
        """The O rows at addresses ``rows`` of ``ram`` bit-exact against ``want``."""
        errors = []
        for i, addr in enumerate(rows):
            got = ram.row(addr)
            errors += [(i, e, int(want[i, e]), int(got[e])) for e in range(self.cfg.head_dim)
                       if got[e] != want[i, e]]
        for i, e, w, g in errors[:8]:
            self.dut._log.error(f"{what}: O row {i} element {e}: expected {w}, got {g}; "
                                f"{self.where}")
        assert not errors, f"{what}: {len(errors)} O elements differ (first: row {errors[0][0]}" \
            f" element {errors[0][1]} expected {errors[0][2]} got {errors[0][3]}); {self.where}"

    async def check_counters(self, what: str, want: dict) -> dict:
        """The counters of ``want`` (with BYTES_READ and BYTES_WRITTEN, also against the bytes
        the channels moved) and CYCLES > 0; returns them read, CYCLES included."""
        got = {n: await self.read(n) for n in (*want, "CYCLES")}
        bad = [f"{n} {got[n]} (expected {w})" for n, w in want.items() if got[n] != w]
        assert not bad, f"{what}: counters differ: {', '.join(bad)}; {self.where}"
        assert got["CYCLES"] > 0, f"{what}: CYCLES is 0"
        moved = self.moved()
        assert moved == (want["BYTES_READ"], want["BYTES_WRITTEN"]), \
            f"{what}: the bus moved {moved} bytes (read, written), expected " \
            f"{(want['BYTES_READ'], want['BYTES_WRITTEN'])}; {self.where}"
        return got

    async def clear_status(self, what: str):
        """W1C of DONE and ERROR: STATUS 0, irq low."""
        await self.write("STATUS", self.field("STATUS", "DONE") | self.field("STATUS", "ERROR"))
        await ClockCycles(self.dut.clk, 2)
        st = await self.read("STATUS")
        assert st == 0, f"{what}: STATUS 0x{st:x} after W1C clear, expected 0; {self.where}"
        assert not int(self.dut.irq.value), f"{what}: irq still high after clearing STATUS"
