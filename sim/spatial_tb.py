"""cocotb testbench: the Spatial-STAR array (``star_spatial``) against golden.spatial, over its
buses.

One AXI4-Lite master (cocotbext-axi) programs the array's registers; every core's AXI4 master
talks to its own AXI RAM model (sim.tb_base.Ram): channel 0 holds Q, O and core 0's K/V shard,
channel c core c's shard from K_BASE / V_BASE (golden.spatial.shard_keys). Each job checks:
STATUS, O bit-exact against golden.spatial.run_sharded, the start check against
golden.spatial.check_registers, the counters (KV_ROWS, KEYS_SELECTED, TILES, BYTES_READ,
BYTES_WRITTEN as one core) against the bytes the channels moved, every read inside that
channel's rows, every write inside the O rows, and no byte outside O changed (sim/tb_base.py).

Config (STAR_TEST_CONFIG): {"cfg": StarConfig fields, "rows", "cols", "flit_bits",
"fifo_depth", "cases": [{q_len, seq_len, causal, dense, k_tile, radius}], "tests": names to
run (default all), "p_pause": stall probability per channel and cycle (default 0.3)}. Tests:
    end_to_end        each case without and with random stalls on every channel of every bus
    back_to_back      the cases again in reverse order with random shapes, no reset between
    invalid_registers SHARD (too few tiles for the cores) and a bad register: ERROR_CODE as
                      the model, DONE, no memory traffic; then a clean job runs
"""

from star.golden import spatial as gspatial
from star.sim.tb_base import OPTS, AxiTb, test
from star.spec.config import StarConfig
from star.spec.regmap import ErrorCode
from star.spec.spatial_config import SpatialConfig

MEM_SIZE = 1 << 20          # each RAM model; addresses wrap modulo its size


class Array(AxiTb):
    """The DUT with its bus models (one RAM per channel, each with a canary) and job helpers."""

    def __init__(self, dut):
        cfg = StarConfig(**OPTS["cfg"])
        self.scfg = SpatialConfig(cfg, rows=OPTS["rows"], cols=OPTS["cols"],
                                  flit_bits=OPTS.get("flit_bits", 64),
                                  fifo_depth=OPTS.get("fifo_depth", 4))
        self.N = self.scfg.cores
        super().__init__(dut, cfg, f"array {self.scfg.rows}x{self.scfg.cols} of {cfg.name} "
                         f"(lanes {cfg.lanes}, tile {cfg.tile}, d {cfg.head_dim})",
                         [f"m{c}_axi" for c in range(self.N)], MEM_SIZE)

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
        cfg, d = self.cfg, self.cfg.head_dim
        job = self.prepare(spec, label, lambda sq, sk: self.layout(sq, sk, packed))
        job["error"] = gspatial.check_registers(cfg, job["regs"], self.N)
        job["limit"] = 500
        if job["error"] == ErrorCode.NONE:
            job["want"] = gspatial.run_sharded(cfg, job["q"], job["k"], job["v"], job["regs"],
                                               self.N)
            c = job["want"].single.counters
            beats = (c["BYTES_READ"] + c["BYTES_WRITTEN"]) // self.fmt.bus_bytes
            job["limit"] = 20 * beats + 10 * c["KV_ROWS"] + c["TILES"] * (8 * cfg.tile + 200) \
                + (spec["q_len"] + 4) * self.N * (4 * d + 100) + 5000
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
        """Each channel's canary, then its K/V shard rows (channel 0 also Q)."""
        shards = gspatial.shard_keys(self.cfg, job["regs"]["SEQ_LEN"], self.N)
        for c, ram in enumerate(self.rams):
            rows, kv = self.channel_rows(job["regs"], c), slice(shards[c].start, shards[c].stop)
            ram.load([(rows["K"], job["k"][kv]), (rows["V"], job["v"][kv])]
                     + ([(rows["Q"], job["q"])] if c == 0 else []))

    async def check(self, job: dict):
        """After irq: STATUS and ERROR_CODE as the model; a job that starts: O bit-exact and
        the counters (as one core); every channel's traffic and canary; clear STATUS."""
        what, regs, err = job["name"], job["regs"], job["error"]
        await self.check_status(what, err)
        if err != ErrorCode.NONE:
            moved = sum(len(r.reads) + len(r.writes) for r in self.rams)
            assert moved == 0, f"{what}: {moved} bus transfers for a job that must not start"
        else:
            self.check_o(what, self.rams[0], self.channel_rows(regs, 0)["O"], job["want"].out)
            single = job["want"].single.counters
            got = await self.check_counters(what, {n: single[n] for n in (
                "KV_ROWS", "KEYS_SELECTED", "TILES", "BYTES_READ", "BYTES_WRITTEN")})
            self.dut._log.info(f"{what}: bit-exact, counters match, CYCLES {got['CYCLES']}")
        for c, ram in enumerate(self.rams):
            rows = self.channel_rows(regs, c)
            ram.check_traffic(f"{what}: channel {c}", [a for t in "QKV" for a in rows.get(t, [])],
                              rows.get("O", []) if err == ErrorCode.NONE else [])
        await self.clear_status(what)


# ---- tests -------------------------------------------------------------------------------------


@test
async def end_to_end(dut):
    """Each configured case, without and with random stalls on every channel."""
    a = Array(dut)
    await a.start()
    for n, spec in enumerate(a.opts["cases"]):
        for stall in (False, True):
            a.stalls(stall)
            await a.run(a.make_job(spec, f"case {n}{' stalls' if stall else ''}"))
    a.stalls(False)


@test
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


@test
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
