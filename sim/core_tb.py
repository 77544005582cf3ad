"""cocotb testbench: the whole STAR core (``star_core``) against golden.core, over its buses.

The core sits between an AXI4-Lite master (cocotbext-axi, registers) and an AXI4 RAM model
(Q/K/V/O; the bus models, stalls and shared checks: sim/tb_base.py). Every job places Q, K, V,
O at random row-aligned bases with random strides (K/V sometimes interleaved like two heads),
fills the rest of the RAM with a random canary, starts the job and checks: STATUS, O bit-exact
against golden.core.run_job, the counters against the model (and BYTES_READ/WRITTEN against the
beats seen on the bus), every read inside a Q/K/V row, every byte outside the O rows unchanged,
irq, and W1C clearing. Register offsets come only from star.spec.regmap.by_name.

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "cases": [{q_len, seq_len, causal, dense,
k_tile, radius (-1 off, or "small": a quarter of the mean |predicted score|), rescale (optional:
random data is drawn until the model's job takes a max-assurance rescale)}], "tests": names to
run (default all), "p_pause": bus stall probability per channel and cycle (default 0.3),
"jobs": back_to_back job count (default 6), "fuzz": random invalid register sets (default
24), "coverage": count the functional coverage points (default off)}. Tests:
    axil_map          reset values, HW_* build parameters, read-back (also with every access
                      in flight at once, stalled), SLVERR on unmapped
                      addresses and partial strobes, read-only registers ignore writes
    end_to_end        each case without and with random stalls on every channel
    back_to_back      several jobs of different shapes and modes, no reset in between
    invalid_registers each start-check error, then random boundary-value register sets:
                      ERROR_CODE = golden.core.check_registers, irq, nothing read or
                      written; IRQ_ENABLE masking; dense ignores K_TILE; START while busy
                      (job registers rewritten meanwhile must not affect the running job)
    reset_mid_job     rst during a running job (reading; at its first O write), then a
                      clean job bit-exact
    bus_error         SLVERR on a V read / an O write: ERROR_CODE BUS, the job completes

Every checked job appends {"job", "cycles", "o_sha256"} to ``journal.jsonl`` in the run
directory (tests/test_regress.py compares two simulators with it). With "coverage" on, the
functional coverage points (sim/coverage.py: per job, and a wait on every AXI channel: valid
high, ready low) are counted into ``functional.json`` there.
"""

import collections
import hashlib
import json
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiResp

from star.golden import core as gcore
from star.sim.coverage import AXI_CHANNELS, axi_point, job_points
from star.sim.tb_base import OPTS, AxiTb, test
from star.spec.config import StarConfig
from star.spec.formats import SCALE_SHIFT_MAX
from star.spec.regmap import RADIUS_OFF_VALUE, ErrorCode

MEM_SIZE = 1 << 20          # the RAM model's default size (OPTS "mem_bytes": another); addresses
                            # wrap modulo its size, so make_job checks that a job's tensors fit

# ---- journal and functional coverage (files in the run directory) -----------------------------
FUNCTIONAL = collections.Counter()


def _save_functional():
    Path("functional.json").write_text(json.dumps(dict(sorted(FUNCTIONAL.items())), indent=1))


async def _watch_axi(dut):
    """Count the cycles each AXI channel waits (valid high, ready low) into FUNCTIONAL."""
    sig = [(axi_point(bus, ch), getattr(dut, f"{bus}_{v}"), getattr(dut, f"{bus}_{r}"))
           for bus, ch, v, r in AXI_CHANNELS]
    while True:
        await RisingEdge(dut.clk)
        for name, v, r in sig:
            if v.value.is_resolvable and r.value.is_resolvable and int(v.value) \
                    and not int(r.value):
                FUNCTIONAL[name] += 1


class Core(AxiTb):
    """The DUT with its bus models, the RAM (``ram``) with a canary, and job helpers."""

    def __init__(self, dut):
        cfg = StarConfig(**OPTS["cfg"])
        super().__init__(dut, cfg, f"config {cfg.name} (lanes {cfg.lanes}, tile {cfg.tile}, "
                         f"d {cfg.head_dim}, {cfg.data_bits}-bit)", ["m_axi"],
                         int(OPTS.get("mem_bytes", MEM_SIZE)))
        self.ram = self.rams[0]

    async def start(self):
        if self.opts.get("coverage"):
            cocotb.start_soon(_watch_axi(self.dut))
        await super().start()

    # ---- jobs --------------------------------------------------------------------------------
    def layout(self, q_len: int, seq_len: int) -> dict:
        """Random row-aligned bases and strides (multiples of the row), disjoint tensors."""
        rb, rng = self.fmt.row_bytes, self.rng
        regs = {f"{n}_STRIDE": rb * int(rng.choice([1, 1, 2, 3])) for n in "QKVO"}
        items = [("Q", q_len), ("O", q_len)]
        if rng.random() < 0.3:                      # K and V interleaved, like two heads
            regs["K_STRIDE"] = regs["V_STRIDE"] = 2 * rb
            items.append(("KV", seq_len))
        else:
            items += [("K", seq_len), ("V", seq_len)]
        order = rng.permutation(len(items))
        region = int(rng.integers(0, (1 << 32) // self.mem_size)) * self.mem_size
        at = region + rb * int(rng.integers(0, 16))
        for i in order:
            name, n = items[i]
            if name == "KV":
                regs["K_BASE"], regs["V_BASE"] = at, at + rb
                at += n * 2 * rb
            else:
                regs[f"{name}_BASE"] = at
                at += (n - 1) * regs[f"{name}_STRIDE"] + rb
            at += rb * int(rng.integers(0, 4))
        assert at - region <= self.mem_size, "test layout does not fit the RAM model"
        return regs

    def rows(self, regs: dict, name: str) -> list[int]:
        n = regs["Q_LEN"] if name in ("Q", "O") else regs["SEQ_LEN"]
        return [regs[f"{name}_BASE"] + r * regs[f"{name}_STRIDE"] for r in range(n)]

    def make_job(self, spec: dict, label: str, data=None, layout=None) -> dict:
        """Data, registers and the model's answer for one case (nothing touches the DUT).

        ``data``: float (q, k, v) (default: random normal; with ``spec["rescale"]`` drawn again,
        up to 50 times, until the job takes a max-assurance rescale); ``layout``: the address
        registers (default: random, :meth:`layout`)."""
        cfg, d = self.cfg, self.cfg.head_dim
        for _ in range(50 if spec.get("rescale") and data is None else 1):
            job = self.prepare(spec, label,
                               self.layout if layout is None else lambda q, s: layout, data)
            regs = job["regs"]
            want = gcore.run_job(cfg, job["q"], job["k"], job["v"], regs)
            if want.counters["RESCALES"] or not spec.get("rescale"):
                break
        else:
            raise AssertionError(f"{label}: no random data took a rescale in 50 draws")
        spans = [gcore.tensor_span(cfg, regs, name) for name in ("Q", "K", "V", "O")]
        assert max(e for _, e in spans) - min(s for s, _ in spans) <= self.mem_size, \
            f"{label}: Q/K/V/O span more than the RAM model's {self.mem_size} bytes"
        c = want.counters
        beats = (c["BYTES_READ"] + c["BYTES_WRITTEN"]) // self.fmt.bus_bytes
        limit = 20 * beats + 10 * c["KV_ROWS"] + (c["RESCALES"] + c["MERGES"]) * (4 * d + 40) \
            + c["TILES"] * (8 * cfg.tile + 8 * d + 200) + 5000
        return {**job, "want": want, "limit": limit}

    def load(self, job: dict):
        """Canary everywhere, then Q, K, V at their rows."""
        self.ram.load((self.rows(job["regs"], t), job[t.lower()]) for t in "QKV")

    async def check(self, job: dict, error_code=None, o_void=False):
        """After irq: STATUS (ERROR with ``error_code``), O (unless void), counters, bus
        traffic, canary; clear STATUS."""
        what, regs, want = job["name"], job["regs"], job["want"]
        await self.check_status(what, error_code)
        o_rows = self.rows(regs, "O")
        if not o_void:
            self.check_o(what, self.ram, o_rows, want.out)
        got_c = await self.check_counters(what, {n: want.counters[n] for n in gcore.COUNTERS})
        self.ram.check_traffic(what, [a for t in "QKV" for a in self.rows(regs, t)], o_rows)
        o_bytes = b"".join(self.ram.row(a).tobytes() for a in o_rows)
        with open("journal.jsonl", "a") as f:
            f.write(json.dumps({"job": what, "cycles": got_c["CYCLES"],
                                "o_sha256": hashlib.sha256(o_bytes).hexdigest()}) + "\n")
        if self.opts.get("coverage") and not o_void:
            FUNCTIONAL.update(job_points(self.cfg, regs, want))
            _save_functional()
        self.dut._log.info(f"{what}: {'O void' if o_void else 'bit-exact'}, counters match, "
                           f"CYCLES {got_c['CYCLES']} "
                           f"(KV_ROWS {got_c['KV_ROWS']}, TILES {got_c['TILES']}, RESCALES "
                           f"{got_c['RESCALES']}, MERGES {got_c['MERGES']})")
        await self.clear_status(what)


def default_spec(cfg) -> dict:
    return {"q_len": cfg.lanes + 1, "seq_len": cfg.tile + 3, "causal": True, "dense": False,
            "k_tile": cfg.k_tile, "radius": -1}


# ---- tests -------------------------------------------------------------------------------------


@test
async def axil_map(dut):
    """Reset values, build parameters, read-back, SLVERR on unmapped / partial writes."""
    c = Core(dut)
    await c.start()
    assert not int(dut.irq.value), "irq high after reset"
    for r in c.regs.values():
        if r.access in ("rw", "ro", "w1c"):             # counters included: 0 after reset
            got = await c.read(r.name)
            assert got == r.reset, f"{r.name} reads 0x{got:x} after reset, expected " \
                                   f"0x{r.reset:x}; {c.where}"
    assert await c.read("CTRL") == 0, "CTRL (write-only) does not read 0"
    # read-back of the job registers (32-bit rw), then restore
    job_regs = [r for r in c.regs.values() if r.access == "rw" and r.offset >= 0x10]
    vals = {r.name: c.prng.getrandbits(32) for r in job_regs}
    for n, v in vals.items():
        await c.write(n, v)
    for n, v in vals.items():
        got = await c.read(n)
        assert got == v, f"{n} reads 0x{got:x} after writing 0x{v:x}; {c.where}"
    # pipelined: every write in flight at once, then every read, with stalls on both sides
    # (the master may issue AW/W/AR before the previous response: the slave must hold them)
    vals = {n: c.prng.getrandbits(32) for n in vals}
    c.stalls(True)
    for t in [cocotb.start_soon(c.write(n, v)) for n, v in vals.items()]:
        await t
    tasks = {n: cocotb.start_soon(c.read(n)) for n in vals}
    for n, t in tasks.items():
        got = await t
        assert got == vals[n], f"{n} reads 0x{got:x} after pipelined writes of 0x{vals[n]:x}"
    c.stalls(False)
    # unmapped word addresses answer SLVERR, reads and writes
    mapped = {r.offset for r in c.regs.values()}
    holes = [a for a in range(0, 1 << 8, 4) if a not in mapped]
    for a in [holes[0], holes[-1], *c.prng.sample(holes, min(4, len(holes)))]:
        await c.read(a, expect_resp=AxiResp.SLVERR)
        await c.write(a, 0xFFFF_FFFF, expect_resp=AxiResp.SLVERR)
    # a partial write is ignored and answered SLVERR
    off = c.regs["Q_BASE"].offset
    await c.write("Q_BASE", 0x1234_5678)
    r = await c.axil(c.lite.write(off, b"\xaa\xbb"), "partial write")
    assert r.resp == AxiResp.SLVERR, f"partial-strobe write answered {r.resp!r}, expected SLVERR"
    assert await c.read("Q_BASE") == 0x1234_5678, "partial-strobe write changed Q_BASE"
    # read-only registers ignore writes
    for name in ("HW_SHAPE", "HW_TILE", "HW_LIMITS", "HW_RADIUS_MAX", "ERROR_CODE"):
        await c.axil(c.lite.write(c.regs[name].offset, b"\xff\xff\xff\xff"), f"write {name}")
        got = await c.read(name)
        assert got == c.regs[name].reset, f"{name} changed to 0x{got:x} by a write"
    assert not int(dut.irq.value) and await c.read("STATUS") == 0, "register writes set STATUS"
    assert not c.ram.reads and not c.ram.writes, "the master moved data without a job"


@test
async def end_to_end(dut):
    """Each configured case, without and with random stalls on every channel."""
    c = Core(dut)
    await c.start()
    for n, spec in enumerate(c.opts["cases"]):
        for stall in (False, True):
            job = c.make_job(spec, f"case {n}{' stalls' if stall else ''}")
            c.stalls(stall)
            await c.run(job)
    c.stalls(False)


@test
async def back_to_back(dut):
    """Several jobs of different shapes and modes in a row, no reset in between."""
    c = Core(dut)
    await c.start()
    cfg = c.cfg
    cases = list(c.opts["cases"])
    for n in range(c.opts.get("jobs", 6)):
        spec = dict(cases[n % len(cases)])
        if n >= len(cases):                       # fresh shapes once the list is used up
            spec["q_len"] = int(c.rng.integers(1, 2 * cfg.lanes + 2))
            spec["seq_len"] = int(c.rng.integers(spec["q_len"], 2 * cfg.tile + 5))
            spec["k_tile"] = int(c.rng.integers(1, cfg.k_tile + 1))
        c.stalls(n % 2 == 1)
        await c.run(c.make_job(spec, f"job {n}"))
    c.stalls(False)


def fuzz_cases(c, g: dict) -> list:
    """Random register sets mixing boundary values (only those the model rejects): the order
    of the checks and the width of the range arithmetic."""
    cfg, fmt, rb = c.cfg, c.fmt, c.fmt.row_bytes
    top = (1 << 32) - 1
    pools = {
        "SEQ_LEN": [0, 1, cfg.max_seq, cfg.max_seq + 1, top],
        "Q_LEN": [0, 1, cfg.max_seq, cfg.max_seq + 1, top],
        "K_TILE": [0, 1, cfg.k_tile, cfg.k_tile + 1, top],
        "RADIUS": [RADIUS_OFF_VALUE, 0, fmt.radius_max, fmt.radius_max + 1, 1 << 31],
        "SCALE_MANT": [0, 1, (1 << fmt.scale_bits) - 1, 1 << fmt.scale_bits, top],
        "SCALE_SHIFT": [0, fmt.exp_frac_bits - 1, fmt.exp_frac_bits, SCALE_SHIFT_MAX,
                        SCALE_SHIFT_MAX + 1, top],
        "MODE": [0, 1, 2, 3, 4, 5, 1 << 31],
        **{f"{n}_BASE": [0, g[f"{n}_BASE"] + rb // 2, (1 << 32) - rb, (1 << 32) - 64 * rb,
                         g["Q_BASE"], g["K_BASE"]] for n in "QKVO"},
        **{f"{n}_STRIDE": [0, rb, 3 * rb, rb + 1, 1 << 31, (1 << 32) - rb] for n in "QKVO"},
    }
    out = []
    for n in range(c.opts.get("fuzz", 24)):
        while True:
            change = {k: int(c.rng.choice(v)) for k, v in pools.items() if c.rng.random() < 0.2}
            if gcore.check_registers(cfg, {**g, **change}) != ErrorCode.NONE:
                break
        out.append((f"random {n}", change, None))
    return out


@test
async def invalid_registers(dut):
    """Each start check: DONE|ERROR, ERROR_CODE as the model, irq, no traffic; START_BUSY."""
    c = Core(dut)
    await c.start()
    cfg, fmt, rb = c.cfg, c.fmt, c.fmt.row_bytes
    base = c.make_job(default_spec(cfg), "base")
    g = base["regs"]
    E = ErrorCode
    cases = [
        ("SEQ_LEN 0", {"SEQ_LEN": 0}, E.SEQ_LEN),
        ("SEQ_LEN max_seq+1", {"SEQ_LEN": cfg.max_seq + 1}, E.SEQ_LEN),
        ("Q_LEN 0", {"Q_LEN": 0}, E.Q_LEN),
        ("K_TILE 0", {"K_TILE": 0}, E.K_TILE),
        ("K_TILE k_tile+1", {"K_TILE": cfg.k_tile + 1}, E.K_TILE),
        *([("RADIUS radius_max+1", {"RADIUS": fmt.radius_max + 1}, E.RADIUS)]
          if fmt.radius_max + 1 != RADIUS_OFF_VALUE else []),     # else it means off
        ("SCALE_MANT 0", {"SCALE_MANT": 0}, E.SCALE),
        ("SCALE_MANT too wide", {"SCALE_MANT": 1 << fmt.scale_bits}, E.SCALE),
        ("SCALE_SHIFT too small", {"SCALE_SHIFT": fmt.exp_frac_bits - 1}, E.SCALE),
        ("SCALE_SHIFT too large", {"SCALE_SHIFT": SCALE_SHIFT_MAX + 1}, E.SCALE),
        ("MODE 4", {"MODE": 4}, E.MODE),
        ("CAUSAL_LEN", {"Q_LEN": g["SEQ_LEN"] + 1, "MODE": gcore.MODE_CAUSAL}, E.CAUSAL_LEN),
        ("ALIGN base", {"Q_BASE": g["Q_BASE"] + rb // 2}, E.ALIGN),
        ("ALIGN stride 0", {"K_STRIDE": 0}, E.ALIGN),
        ("ALIGN stride", {"V_STRIDE": rb + rb // 2}, E.ALIGN),
        ("RANGE", {"K_BASE": (1 << 32) - rb}, E.RANGE),
        ("OVERLAP", {"O_BASE": g["K_BASE"] + (g["SEQ_LEN"] - 1) * g["K_STRIDE"]}, E.OVERLAP),
        ("lowest code first", {"SEQ_LEN": 0, "MODE": 4, "V_STRIDE": 0}, E.SEQ_LEN),
    ]
    for n, (label, change, intended) in enumerate(cases + fuzz_cases(c, g)):
        regs = {**g, **change}
        want = gcore.check_registers(cfg, regs)
        assert intended is None or want == intended, \
            f"test case {label!r}: model gives {want!r}, not {intended!r}"
        label = f"{label} {change}" if intended is None else label
        c.stalls(n % 2 == 1)
        c.ram.load([])
        await c.start_job(regs)
        await c.wait_irq(200, f"error case {label}")
        await c.check_status(f"error case {label}", want)
        assert not c.ram.reads and not c.ram.writes, f"error case {label}: " \
            f"{len(c.ram.reads)} read and {len(c.ram.writes)} write beats"
        c.ram.check_traffic(f"error case {label}", [], [])
        if n == 0:                                # irq = OR of the enabled sticky bits
            en = {name: c.field("IRQ_ENABLE", name) for name in ("DONE", "ERROR")}
            for value, high in ((0, False), (en["DONE"], True), (en["ERROR"], True),
                                (en["DONE"] | en["ERROR"], True)):
                await c.write("IRQ_ENABLE", value)
                await ClockCycles(dut.clk, 2)
                assert int(dut.irq.value) == high, \
                    f"IRQ_ENABLE 0x{value:x} with DONE|ERROR: irq {int(dut.irq.value)}"
        await c.clear_status(f"error case {label}")
    c.stalls(False)

    # dense mode ignores K_TILE: a job with K_TILE 0 runs
    spec = {**default_spec(cfg), "dense": True}
    job = c.make_job({**spec, "k_tile": 0}, "dense, K_TILE 0")
    await c.run(job)

    # START while busy: START_BUSY recorded, the running job completes correctly
    job = c.make_job(default_spec(cfg), "START while busy")
    c.stalls(True)
    c.load(job)
    await c.start_job(job["regs"])
    await c.write("CTRL", c.field("CTRL", "START"))
    st = await c.read("STATUS")
    busy, err = c.field("STATUS", "BUSY"), c.field("STATUS", "ERROR")
    assert st & busy, f"START while busy: the job already ended (STATUS 0x{st:x}); make it longer"
    assert st & err, f"START while busy: STATUS 0x{st:x} without ERROR; {c.where}"
    code = await c.read("ERROR_CODE")
    assert code == E.START_BUSY, f"START while busy: ERROR_CODE {code}, expected " \
                                 f"{int(E.START_BUSY)}; {c.where}"
    assert int(dut.irq.value), "START while busy: irq low with STATUS.ERROR enabled"
    garbage = {**job["regs"], "Q_LEN": 1, "SEQ_LEN": 3, "K_TILE": 1, "RADIUS": 0,
               "SCALE_MANT": 1, "SCALE_SHIFT": SCALE_SHIFT_MAX, "MODE": gcore.MODE_DENSE,
               "O_BASE": job["regs"]["Q_BASE"], "V_STRIDE": 0}
    await c.write_job_regs(garbage)            # sampled at START: the running job ignores them
    await c.write("IRQ_ENABLE", c.field("IRQ_ENABLE", "DONE"))
    await c.wait_irq(job["limit"], job["name"])
    await c.check(job, error_code=E.START_BUSY)
    await c.write("IRQ_ENABLE", c.regs["IRQ_ENABLE"].reset)
    c.stalls(False)


@test
async def reset_mid_job(dut):
    """rst during a running job (once while it reads, once at its first O write): everything
    returns to reset, the bus falls silent; then a clean job is bit-exact."""
    c = Core(dut)
    await c.start()
    cfg = c.cfg
    spec = {**default_spec(cfg), "q_len": 3 * cfg.lanes + 1, "seq_len": 3 * cfg.tile + 5}
    for when in ("reading", "first O write"):
        job = c.make_job(spec, f"interrupted while {when}")
        c.stalls(True)
        c.load(job)
        await c.start_job(job["regs"])
        if when == "reading":
            await ClockCycles(dut.clk, int(c.rng.integers(100, 300)))
        else:
            for _ in range(job["limit"]):
                await RisingEdge(dut.clk)
                if c.ram.writes:
                    break
            assert c.ram.writes, f"{job['name']}: no O write within {job['limit']} cycles"
        assert not int(dut.irq.value), f"{job['name']}: the job ended before the reset"
        c.stalls(False)
        await c.reset(4)
        await ReadOnly()
        assert not int(dut.irq.value), "irq high after reset"
        await RisingEdge(dut.clk)
        n_before = (len(c.ram.reads), len(c.ram.writes))
        st = await c.read("STATUS")
        assert st == 0, f"STATUS 0x{st:x} after a reset during a job, expected 0; {c.where}"
        for name in ("Q_BASE", "K_TILE", "RADIUS", "IRQ_ENABLE", "MODE", "KV_ROWS"):
            got = await c.read(name)
            assert got == c.regs[name].reset, \
                f"{name} 0x{got:x} after reset, expected 0x{c.regs[name].reset:x}"
        await ClockCycles(dut.clk, 50)
        assert (len(c.ram.reads), len(c.ram.writes)) == n_before, \
            "bus traffic continues after reset"
        c.stalls(True)
        await c.run(c.make_job(default_spec(cfg), f"after a reset while {when}"))
    c.stalls(False)


@test
async def bus_error(dut):
    """A SLVERR on a V row read, then on an O row write: ERROR_CODE BUS, the job runs to its
    end with the model's counters (V and B responses do not steer the schedule)."""
    c = Core(dut)
    await c.start()
    cfg = c.cfg
    await c.write("IRQ_ENABLE", c.field("IRQ_ENABLE", "DONE"))   # irq at the end, not the error
    for n, what in enumerate(("V read", "O write")):
        spec = {**default_spec(cfg), "causal": False, "dense": True}
        job = c.make_job(spec, f"SLVERR on {what}")
        c.stalls(n == 1)
        if what == "V read":
            c.ram.fail_reads = {c.rows(job["regs"], "V")[int(c.rng.integers(spec["seq_len"]))]}
        else:
            c.ram.fail_writes = {c.rows(job["regs"], "O")[int(c.rng.integers(spec["q_len"]))]}
        await c.run(job, error_code=ErrorCode.BUS, o_void=True)
        c.ram.fail_reads, c.ram.fail_writes = set(), set()
    c.stalls(False)
    await c.write("IRQ_ENABLE", c.regs["IRQ_ENABLE"].reset)
    await c.run(c.make_job(default_spec(cfg), "clean job after bus errors"))
