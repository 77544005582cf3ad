"""cocotb testbench: the Spatial-STAR array (``star_spatial``) against golden.spatial, over its
buses.

One AXI4-Lite master (cocotbext-axi) programs the array's registers; every core's AXI4 master
talks to its own AXI RAM model (cocotbext-axi): channel 0 holds Q, O and core 0's K/V shard,
channel c core c's shard from K_BASE / V_BASE (golden.spatial.shard_keys). Each job checks:
STATUS, O bit-exact against golden.spatial.run_sharded, the start check against
golden.spatial.check_registers, the counters (KV_ROWS, KEYS_SELECTED, TILES, BYTES_READ, BYTES_WRITTEN as one core), the bytes
each channel moved, every read inside that channel's rows, and no byte outside O changed.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "rows", "cols", "flit_bits",
"fifo_depth", "cases": [{q_len, seq_len, causal, dense, k_tile, radius}], "tests": names to
run (default all), "p_pause": stall probability per channel and cycle (default 0.3)}. Tests:
    end_to_end        each case without and with random stalls on every channel of every bus
    back_to_back      the cases again in reverse order with random shapes, no reset between
    invalid_registers SHARD (too few tiles for the cores) and a bad register: ERROR_CODE as
                      the model, DONE, no memory traffic; then a clean job runs
"""

import logging
import random
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from star.golden import core as gcore
from star.golden import pipeline
from star.golden import spatial as gspatial
from star.sim.regbus import CLK_NS, RegisterBus, pauses
from star.sim.runner import env_config, env_seed
from star.spec.config import StarConfig
from star.spec.formats import Formats
from star.spec.regmap import RADIUS_OFF_VALUE, ErrorCode, by_name
from star.spec.spatial_config import SpatialConfig

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

TESTS = ("end_to_end", "back_to_back", "invalid_registers")
MEM_SIZE = 1 << 20          # each RAM model; addresses wrap modulo its size
OPTS = env_config({}) or {}


def _skip(name: str) -> bool:
    return name not in (OPTS.get("tests") or TESTS)


class Array(RegisterBus):
    """The DUT with its bus models (one RAM per channel, each with a canary) and job helpers."""

    def __init__(self, dut):
        self.dut = dut
        self.opts = OPTS
        self.cfg = StarConfig(**OPTS["cfg"])
        self.scfg = SpatialConfig(self.cfg, rows=OPTS["rows"], cols=OPTS["cols"],
                                  flit_bits=OPTS.get("flit_bits", 64),
                                  fifo_depth=OPTS.get("fifo_depth", 4))
        self.N = self.scfg.cores
        self.fmt = Formats(self.cfg)
        self.seed = env_seed()
        self.rng = np.random.default_rng(self.seed)
        self.prng = random.Random(self.seed + 99)
        self.regs = by_name(self.cfg)
        self.where = f"array {self.scfg.rows}x{self.scfg.cols} of {self.cfg.name} (lanes " \
                     f"{self.cfg.lanes}, tile {self.cfg.tile}, d {self.cfg.head_dim}), " \
                     f"seed {self.seed}"
        dut._log.info(f"{self.where}; rerun with --seed {self.seed}")
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.mems = [bytearray(MEM_SIZE) for _ in range(self.N)]
        self.canary = [bytes(self.rng.integers(0, 256, MEM_SIZE, dtype=np.uint8))
                       for _ in range(self.N)]
        self.rams = [AxiRam(AxiBus.from_prefix(dut, f"m{c}_axi"), dut.clk, dut.rst, mem=mem)
                     for c, mem in enumerate(self.mems)]
        self.reads = [[] for _ in range(self.N)]      # (address, bytes) per channel
        self.writes = [[] for _ in range(self.N)]
        for m in (self.lite.write_if, self.lite.read_if):
            m.log.setLevel(logging.WARNING)
        for c, ram in enumerate(self.rams):
            ram.write_if.log.setLevel(logging.WARNING)
            ram.read_if.log.setLevel(logging.WARNING)
            self._record(c, ram)

    def _record(self, c: int, ram):
        r_orig, w_orig = ram.read_if._read, ram.write_if._write

        async def rec_read(address, length):
            self.reads[c].append((address, length))
            return await r_orig(address, length)

        async def rec_write(address, data):
            self.writes[c].append((address, len(data)))
            await w_orig(address, data)

        ram.read_if._read, ram.write_if._write = rec_read, rec_write

    # ---- clock, reset, stalls ----------------------------------------------------------------
    async def start(self):
        Clock(self.dut.clk, CLK_NS, unit="ns").start()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def stalls(self, on: bool):
        """Random ready/valid pauses on every channel of every bus (or none)."""
        p = self.opts.get("p_pause", 0.3)
        chans = [self.lite.write_if.aw_channel, self.lite.write_if.w_channel,
                 self.lite.write_if.b_channel, self.lite.read_if.ar_channel,
                 self.lite.read_if.r_channel]
        for ram in self.rams:
            chans += [ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                      ram.read_if.ar_channel, ram.read_if.r_channel]
        for ch in chans:
            if on:
                ch.set_pause_generator(pauses(random.Random(self.prng.random()), p))
            else:
                ch.clear_pause_generator()
                ch.pause = False

    # ---- jobs --------------------------------------------------------------------------------
    def layout(self, q_len: int, seq_len: int, packed: bool = False) -> dict:
        """Random row-aligned bases and strides (``packed``: Q, O, K, V one after another, stride
        one row); channel 0 holds Q, O and the largest shard."""
        rb, rng = self.fmt.row_bytes, self.rng
        kv_rows = len(gspatial.shard_keys(self.cfg, seq_len, self.N)[0])
        items = [("Q", q_len), ("O", q_len), ("K", kv_rows), ("V", kv_rows)]
        if packed:
            regs, at = {}, 0
            for name, n in items:
                regs[f"{name}_BASE"], regs[f"{name}_STRIDE"] = at, rb
                at += n * rb
            assert at <= MEM_SIZE, "the packed tensors do not fit the RAM model"
            return regs
        regs = {f"{n}_STRIDE": rb * int(rng.choice([1, 1, 2, 3])) for n in "QKVO"}
        at = rb * int(rng.integers(0, 16)) + int(rng.integers(0, 8)) * MEM_SIZE
        for i in rng.permutation(len(items)):
            name, n = items[i]
            regs[f"{name}_BASE"] = at
            at += (n - 1) * regs[f"{name}_STRIDE"] + rb + rb * int(rng.integers(0, 4))
        return regs

    def make_job(self, spec: dict, label: str, packed: bool = False) -> dict:
        cfg, fmt, d = self.cfg, self.fmt, self.cfg.head_dim
        sq, sk = spec["q_len"], spec["seq_len"]
        causal, dense = bool(spec.get("causal")), bool(spec.get("dense"))
        qf, kf, vf = (2.0 * self.rng.standard_normal((n, d)) for n in (sq, sk, sk))
        h = pipeline.prepare(fmt, qf, kf, vf, causal=causal, softmax_scale=d ** -0.5)
        radius = spec.get("radius", -1)
        if radius == "small":
            radius = int(np.abs(pipeline.predicted_scores(h, fmt, "dlzs")).mean() // 4)
        regs = {**self.layout(sq, sk, packed), "SEQ_LEN": sk, "Q_LEN": sq,
                "K_TILE": spec.get("k_tile") or cfg.k_tile,
                "RADIUS": RADIUS_OFF_VALUE if radius < 0 else radius,
                "SCALE_MANT": h.mant, "SCALE_SHIFT": h.shift,
                "MODE": gcore.MODE_CAUSAL * causal | gcore.MODE_DENSE * dense}
        name = f"{label} [q_len {sq}, seq_len {sk}, {'causal' if causal else 'full'}, " \
               f"{'dense' if dense else 'sparse'}, k_tile {regs['K_TILE']}, radius {radius}]"
        job = {"name": name, "regs": regs, "q": h.q, "k": h.k, "v": h.v,
               "error": gspatial.check_registers(cfg, regs, self.N)}
        if job["error"] == ErrorCode.NONE:
            job["want"] = gspatial.run_sharded(cfg, h.q, h.k, h.v, regs, self.N)
            c = job["want"].single.counters
            beats = (c["BYTES_READ"] + c["BYTES_WRITTEN"]) // fmt.bus_bytes
            job["limit"] = 20 * beats + 10 * c["KV_ROWS"] + c["TILES"] * (8 * cfg.tile + 200) \
                + (sq + 4) * self.N * (4 * d + 100) + 5000
        else:
            job["limit"] = 500
        return job

    def channel_rows(self, regs: dict, c: int) -> dict:
        """Row addresses per tensor in channel c."""
        n = len(gspatial.shard_keys(self.cfg, regs["SEQ_LEN"], self.N)[c])
        out = {t: [regs[f"{t}_BASE"] + i * regs[f"{t}_STRIDE"] for i in range(n)] for t in "KV"}
        if c == 0:
            out.update({t: [regs[f"{t}_BASE"] + i * regs[f"{t}_STRIDE"]
                            for i in range(regs["Q_LEN"])] for t in "QO"})
        return out

    def load(self, job: dict):
        dt = "<i1" if self.fmt.data_bits == 8 else "<i2"
        rb = self.fmt.row_bytes
        shards = gspatial.shard_keys(self.cfg, job["regs"]["SEQ_LEN"], self.N)
        for c in range(self.N):
            self.mems[c][:] = self.canary[c]
            rows = self.channel_rows(job["regs"], c)
            data = {"K": job["k"][shards[c].start:shards[c].stop],
                    "V": job["v"][shards[c].start:shards[c].stop]}
            if c == 0:
                data["Q"] = job["q"]
            for t, x in data.items():
                for addr, row in zip(rows[t], x):
                    a = addr % MEM_SIZE
                    self.mems[c][a:a + rb] = row.astype(dt).tobytes()
            self.reads[c].clear()
            self.writes[c].clear()
        job["images"] = [bytes(mem) for mem in self.mems]

    async def run(self, job: dict):
        self.load(job)
        await self.write_job_regs(job["regs"])
        await self.write("CTRL", self.field("CTRL", "START"))
        await self.wait_irq(job["limit"], job["name"])
        await self.check(job)

    async def check(self, job: dict):
        what, regs = job["name"], job["regs"]
        rb, N = self.fmt.row_bytes, self.N
        err = job["error"]
        done, error_bit = self.field("STATUS", "DONE"), self.field("STATUS", "ERROR")
        st = await self.read("STATUS")
        want_st = done | (error_bit if err != ErrorCode.NONE else 0)
        assert st == want_st, f"{what}: STATUS 0x{st:x}, expected 0x{want_st:x}; {self.where}"
        code = await self.read("ERROR_CODE")
        assert code == err, f"{what}: ERROR_CODE {code}, expected {err!r}; {self.where}"
        if err != ErrorCode.NONE:
            moved = sum(len(r) for r in self.reads) + sum(len(w) for w in self.writes)
            assert moved == 0, f"{what}: {moved} bus transfers for a job that must not start"
        else:
            self.check_o(job)
            await self.check_counters(job)
        for c in range(N):
            rows = self.channel_rows(regs, c)
            inputs = {a for t in "QKV" for a in rows.get(t, [])}
            stray = [a for a, _ in self.reads[c] if a - a % rb not in inputs]
            assert not stray, f"{what}: channel {c}: {len(stray)} reads outside its Q/K/V " \
                              f"rows, first at 0x{stray[0]:x}; {self.where}"
            o_rows = rows.get("O", []) if err == ErrorCode.NONE else []
            stray = [a for a, _ in self.writes[c] if a - a % rb not in set(o_rows)]
            assert not stray, f"{what}: channel {c}: {len(stray)} writes outside the O rows"
            diff = np.frombuffer(bytes(self.mems[c]), np.uint8) \
                != np.frombuffer(job["images"][c], np.uint8)
            for addr in o_rows:
                diff[addr % MEM_SIZE: addr % MEM_SIZE + rb] = False
            bad = np.flatnonzero(diff)
            assert not bad.size, f"{what}: channel {c}: {bad.size} bytes changed outside O, " \
                                 f"first at offset 0x{int(bad[0]):x}; {self.where}"
        await self.write("STATUS", done | error_bit)
        await ClockCycles(self.dut.clk, 2)
        assert await self.read("STATUS") == 0, f"{what}: STATUS not cleared"

    def check_o(self, job: dict):
        what, regs, want = job["name"], job["regs"], job["want"].out
        rb = self.fmt.row_bytes
        dt = "<i1" if self.fmt.data_bits == 8 else "<i2"
        errors = []
        for i, addr in enumerate(self.channel_rows(regs, 0)["O"]):
            a = addr % MEM_SIZE
            got = np.frombuffer(bytes(self.mems[0][a:a + rb]), dtype=dt)
            errors += [(i, e, int(want[i, e]), int(got[e])) for e in range(self.cfg.head_dim)
                       if got[e] != want[i, e]]
        for i, e, w, g in errors[:8]:
            self.dut._log.error(f"{what}: O row {i} element {e}: expected {w}, got {g}")
        assert not errors, f"{what}: {len(errors)} O elements differ (first: row {errors[0][0]}" \
            f" element {errors[0][1]} expected {errors[0][2]} got {errors[0][3]}); {self.where}"

    async def check_counters(self, job: dict):
        what, single = job["name"], job["want"].single.counters
        want = {n: single[n]
                for n in ("KV_ROWS", "KEYS_SELECTED", "TILES", "BYTES_READ", "BYTES_WRITTEN")}
        got = {n: await self.read(n) for n in (*want, "CYCLES")}
        bad = [f"{n} {got[n]} (expected {w})" for n, w in want.items() if got[n] != w]
        assert not bad, f"{what}: counters differ: {', '.join(bad)}; {self.where}"
        moved = (sum(n for r in self.reads for _, n in r), sum(n for w in self.writes for _, n in w))
        assert moved == (want["BYTES_READ"], want["BYTES_WRITTEN"]), \
            f"{what}: the channels moved {moved} bytes (read, written), expected " \
            f"{(want['BYTES_READ'], want['BYTES_WRITTEN'])}; {self.where}"
        self.dut._log.info(f"{what}: bit-exact, counters match, CYCLES {got['CYCLES']}")


# ---- tests -------------------------------------------------------------------------------------


@cocotb.test(skip=_skip("end_to_end"))
async def end_to_end(dut):
    """Each configured case, without and with random stalls on every channel."""
    a = Array(dut)
    await a.start()
    for n, spec in enumerate(a.opts["cases"]):
        for stall in (False, True):
            a.stalls(stall)
            await a.run(a.make_job(spec, f"case {n}{' stalls' if stall else ''}"))
    a.stalls(False)


@cocotb.test(skip=_skip("back_to_back"))
async def back_to_back(dut):
    """The cases in reverse order, then random shapes, stalls on every other job."""
    a = Array(dut)
    await a.start()
    cfg, N = a.cfg, a.N
    specs = list(reversed(a.opts["cases"]))
    for _ in range(2):
        sk = int(a.rng.integers((N - 1) * cfg.tile + 1, (N + 1) * cfg.tile + 5))
        sq = int(a.rng.integers(1, min(sk, 2 * cfg.lanes + 2) + 1))
        specs.append({"q_len": sq, "seq_len": sk, "causal": bool(a.rng.random() < 0.5),
                      "dense": bool(a.rng.random() < 0.3),
                      "k_tile": int(a.rng.integers(1, cfg.k_tile + 1))})
    for n, spec in enumerate(specs):
        a.stalls(n % 2 == 1)
        await a.run(a.make_job(spec, f"job {n}"))
    a.stalls(False)


@cocotb.test(skip=_skip("invalid_registers"))
async def invalid_registers(dut):
    """SHARD and a bad register give their error code without memory traffic; a clean job
    still runs bit-exact afterwards."""
    a = Array(dut)
    await a.start()
    cfg, N = a.cfg, a.N
    short = {"q_len": 1, "seq_len": (N - 1) * cfg.tile, "causal": False}     # N - 1 tiles
    job = a.make_job(short, "too short for the array")
    assert job["error"] == ErrorCode.SHARD, f"model gives {job['error']!r} for {job['name']}"
    await a.run(job)
    job = a.make_job({"q_len": 3, "seq_len": N * cfg.tile, "causal": False}, "K_TILE 0")
    job["regs"]["K_TILE"] = 0
    job["error"] = gspatial.check_registers(cfg, job["regs"], N)
    assert job["error"] == ErrorCode.K_TILE
    await a.run(job)
    await a.run(a.make_job({"q_len": cfg.lanes + 1, "seq_len": N * cfg.tile + 3,
                            "causal": True}, "clean job after errors"))
