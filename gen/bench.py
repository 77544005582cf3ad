"""``star bench``: STAR vs the dense FlashAttention baseline on the core RTL, as a report.

Runs ``star_core`` of a configuration under Verilator (cocotb testbench ``sim/bench_tb.py``; every
job is also checked bit-exact against golden.core) and writes into the output directory:
``report.md``, ``report.json`` and PNG plots (cycles, bytes read and utilization vs sequence
length). Optionally the area per module (``--area``, Yosys) and, when the config's head_dim matches
a captured workload (:data:`REAL`), the selection accuracy of ``star eval`` on it.

Cases: one block of ``lanes`` queries over S keys (non-causal), random normal Q/K/V, each k
fraction of a tile and the dense baseline; plus real attention when head_dim matches a workload of
:data:`REAL`: MiniLM layer 5 (d = 32; heads 0 and 6, all 256 queries) or the Gemma 3 decoder's
global layer 5 (d = 256; query heads 0 and 2, the last ``lanes`` queries over all 2048 keys,
causal). Utilization = stage lower bound / CYCLES, the bound being the
busiest resource: AXI read beats (BYTES_READ / bus bytes), keys predicted (PRED_BUSY, one per
cycle) or the SU-FA lanes (per block, the busiest lane's keys · head_dim / sufa_macs).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

__all__ = ["cases", "run_bench", "utilization", "report_markdown", "plots", "roofs",
           "roofline_point", "roofline_plot"]

ROOT = Path(__file__).resolve().parents[1]
#: captured workloads by head_dim: label, file, heads, keys, queries (None: one block of lanes,
#: the last ones), causal
REAL = {
    32: {"label": "MiniLM L5", "path": ROOT / "data" / "minilm" / "minilm_l5.npz",
         "heads": (0, 6), "seq_len": 256, "q_len": 256, "causal": False},
    256: {"label": "Gemma3 L5", "path": ROOT / "data" / "gemma3" / "gemma3_l5.npz",
          "heads": (0, 2), "seq_len": 2048, "q_len": None, "causal": True},
}


def real_workload(cfg) -> dict | None:
    """The captured workload of :data:`REAL` whose head_dim is the config's, if the config holds
    its keys; else None."""
    real = REAL.get(cfg.head_dim)
    return real if real and cfg.max_seq >= real["seq_len"] else None


def cases(cfg, seqs, fractions) -> list[dict]:
    """The bench jobs: per S the dense baseline then each k fraction; then the captured workload
    of :data:`REAL` whose head_dim is the config's, if the config holds its keys."""
    def k_of(f):
        return max(1, min(cfg.k_tile, round(f * cfg.tile)))
    out = []
    for s in seqs:
        base = {"data": "random", "head": 0, "seq_len": s, "q_len": cfg.lanes}
        out.append({**base, "label": f"random S={s} dense", "dense": True, "k_tile": cfg.k_tile,
                    "frac": 1.0})
        out += [{**base, "label": f"random S={s} k={f:.0%}", "dense": False, "k_tile": k_of(f),
                 "frac": f} for f in fractions]
    real = real_workload(cfg)
    if real:
        for head in real["heads"]:
            name = f"{real['label']} h{head}"
            base = {"data": str(real["path"]), "head": head, "seq_len": real["seq_len"],
                    "q_len": real["q_len"] or cfg.lanes, "causal": real["causal"]}
            out.append({**base, "label": f"{name} dense", "dense": True,
                        "k_tile": cfg.k_tile, "frac": 1.0})
            out += [{**base, "label": f"{name} k={f:.0%}", "dense": False,
                     "k_tile": k_of(f), "frac": f} for f in fractions]
    return out


def ram_bytes(cfg, group: list[dict]) -> int:
    """The RAM model's size for a group of cases (sim/core_tb.py: 1 MiB unless the packed Q, K,
    V and O of a case need more; then the next power of two)."""
    need = max(2 * (c["q_len"] + c["seq_len"]) for c in group) * cfg.formats.row_bytes
    return max(1 << 20, 1 << (need - 1).bit_length())


def run_bench(cfg, todo: list[dict], workdir: Path, seed: int, progress=None) -> list[dict]:
    """Simulate the jobs, one simulation per data source and length (each a step on
    ``progress``, a gen.progress.Progress)."""
    from star.hw.core import StarCore
    from star.sim.runner import run

    from .progress import Progress
    from star.hw.verilog import convert
    progress = progress or Progress("bench", cfg.name)
    with progress.step("converting star_core"):
        text = convert(StarCore(cfg), name="star_core")
    groups: dict = {}
    for case in todo:
        groups.setdefault((case["data"], case["head"], case["seq_len"]), []).append(case)
    results = []
    workdir.mkdir(parents=True, exist_ok=True)
    for n, (key, group) in enumerate(groups.items(), 1):
        raw = workdir / f"raw_{n}.json"
        first = " (and the Verilator build: minutes when new)" if n == 1 else ""
        with progress.step(f"[{n}/{len(groups)}] {group[0]['label'].rsplit(' ', 1)[0]} "
                           f"({len(group)} jobs){first}"):
            run(text, "star_core", "star.sim.bench_tb", seed=seed, timeout_s=7200,
                config={"cfg": cfg.to_dict(), "cases": group, "out": str(raw.resolve()),
                        "mem_bytes": ram_bytes(cfg, group)})
        results += json.loads(raw.read_text())
    return results


def lane_bound(blocks: list[dict], fmt) -> int:
    """SU-FA's multiplier-cycle bound: per query block its busiest lane's keys (the lanes work
    in parallel; a block ends when its last lane does) · head_dim / sufa_macs, summed over the
    blocks."""
    return sum(max(sum(col) for col in zip(*b["counts"])) for b in blocks) * fmt.sufa_chunks


def utilization(c: dict, fmt, blocks: list[dict]) -> tuple[float, str]:
    """(bound / cycles, name of the busiest resource): AXI read beats, keys predicted, or the
    busiest SU-FA lane's multiplier cycles (:func:`lane_bound`)."""
    bounds = {"memory": c["BYTES_READ"] // fmt.bus_bytes, "predictor": c["PRED_BUSY"] * fmt.cfg.pred_cycles,
              "SU-FA lanes": lane_bound(blocks, fmt)}
    which = max(bounds, key=bounds.get)
    return bounds[which] / c["CYCLES"], which


def roofs(cfg) -> dict:
    """The roofline of a config: ``compute``, the SU-FA multipliers' MACs per cycle (lanes × 2 ×
    sufa_macs: P for q·k and P for p·v per lane), ``bus_bytes`` read per cycle (one AXI beat),
    and ``ridge``, the arithmetic intensity (MACs per byte read) where the two meet."""
    compute = cfg.lanes * 2 * cfg.sufa_macs
    bus = cfg.formats.bus_bytes
    return {"compute": compute, "bus_bytes": bus, "ridge": compute / bus}


def roofline_point(cfg, counters: dict) -> tuple[float, float]:
    """A job on the roofline: (MACs per byte read, MACs per cycle), its MACs being the exact
    attention's, KEYS_SELECTED · head_dim for q·k and as many for p·v."""
    macs = 2 * counters["KEYS_SELECTED"] * cfg.head_dim
    return macs / counters["BYTES_READ"], macs / counters["CYCLES"]


def roofline_plot(cfg, results, path: Path) -> Path:
    """Every job as a point under the compute roof and the memory roof (log-log)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    r = roofs(cfg)
    pts = [(res, *roofline_point(cfg, res["counters"])) for res in results]
    xs = [x for _, x, _ in pts]
    lo, hi = min(xs + [r["ridge"]]) / 4, max(xs + [r["ridge"]]) * 4
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(r["compute"], r["bus_bytes"] * x) for x in grid], color="black", lw=1.5,
            label=f"roofs: {r['compute']} MAC/cycle, {r['bus_bytes']} B/cycle")
    ax.axvline(r["ridge"], color="grey", ls=":", lw=1)
    modes = sorted({None if res["dense"] else res["frac"] for res, _, _ in pts},
                   key=lambda f: -1 if f is None else f)
    for mode in modes:
        sel = [(x, y) for res, x, y in pts if (None if res["dense"] else res["frac"]) == mode]
        ax.scatter(*zip(*sel), marker="s" if mode is None else "o", zorder=3,
                   label="dense" if mode is None else f"STAR k={mode:.0%}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("arithmetic intensity (SU-FA MACs per byte read)")
    ax.set_ylabel("SU-FA MACs per cycle")
    ax.set_title(f"{cfg.name}: roofline (ridge {r['ridge']:.3g} MAC/B)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def _key_rate(cfg) -> str:
    """The predictor's rate in words."""
    n = cfg.pred_cycles
    return "one key per cycle" if n == 1 else f"one key every {n} cycles"


def roofline_markdown(cfg, results) -> list[str]:
    """The roofline section of the report: the roofs and each job's place under them."""
    r = roofs(cfg)
    lines = ["", "## Roofline", "",
             f"Compute roof: {r['compute']} SU-FA MACs per cycle ({cfg.lanes} lanes × 2 × "
             f"{cfg.sufa_macs}); memory roof: {r['bus_bytes']} bytes read per cycle × the "
             "arithmetic intensity (MACs per byte read: KEYS_SELECTED × head_dim × 2 / "
             f"BYTES_READ); ridge at {r['ridge']:.3g} MAC/B. STAR reads every K row (prediction) "
             "but computes only the selected keys, so its intensity is below dense's: it gains "
             "by needing less work, not by working faster. A job below its roof is held by what "
             "the roofs leave out: the busiest lane (imbalance), the predictor "
             f"({_key_rate(cfg)}) or the pipeline's fill and drain.", "",
             "| case | MAC/B | MAC/cycle | roof | of the roof |", "|---|---|---|---|---|"]
    for res in results:
        x, y = roofline_point(cfg, res["counters"])
        roof = min(r["compute"], r["bus_bytes"] * x)
        which = "compute" if r["compute"] <= r["bus_bytes"] * x else "memory"
        lines.append(f"| {res['label']} | {x:.3g} | {y:.3g} | {which} {roof:.3g} | "
                     f"{y / roof:.1%} |")
    return lines


def bench_rows(cfg, results):
    """Per result: (result, counters, its dense counters, utilization, bound, union fraction)."""
    fmt = cfg.formats
    dense = {}
    for r in results:
        c = r["counters"]
        key = (r["data"], r["head"], r["seq_len"])
        if r["dense"]:
            dense[key] = c
        d = dense[key]
        util, which = utilization(c, fmt, r["blocks"])
        yield r, c, d, util, which, c["KV_ROWS"] / (c["TILES"] * cfg.tile)


def area_efficiency(cfg, counters, dense_counters, area) -> float:
    """Dense-equivalent MACs per cycle per million cells: the dense job's work (its visible keys
    per query, KEYS_SELECTED of the dense run, × head_dim for q·k and as many for p·v) over this
    job's cycles, per million Yosys cells of the core (``area``: a ``module_stats`` report)."""
    macs = 2 * dense_counters["KEYS_SELECTED"] * cfg.head_dim
    return macs / counters["CYCLES"] / (area["total"]["cells"] / 1e6)


def report_markdown(cfg, results, *, seconds: float, cmd: str, area=None, accuracy=None,
                    plot_files=()) -> str:
    from star.hw.sufa_lane import rescale_cycles
    fmt = cfg.formats
    lines = [
        "# STAR core vs dense FlashAttention (RTL cycle counts)", "",
        f"Command: `{cmd}` · machine: {platform.machine()} {platform.system()}, 2 cores, "
        f"Python {platform.python_version()} · wall time {seconds:.0f} s", "",
        f"Config `{cfg.name}`: {cfg.data_bits}-bit data, d = {cfg.head_dim}, lanes (queries per "
        f"block) = {cfg.lanes}, tile = {cfg.tile} keys, AXI {cfg.axi_data_bits}-bit "
        f"({fmt.row_beats} beats per row), AxiRam model (cocotbext-axi) without stalls. Every "
        "job was checked bit-exact against golden.core, counters included.", "",
        f"SU-FA: {cfg.sufa_macs} + {cfg.sufa_macs} multipliers per lane, "
        f"{cfg.lanes * 2 * cfg.sufa_macs} in all (`sufa_macs` = {cfg.sufa_macs}). Union = "
        "KV_ROWS / (TILES × tile): the fraction of each tile's keys that at least one query of "
        "the block selected (the V rows read). Bound = the busiest resource (AXI read beats, "
        "keys predicted, or the SU-FA lanes: per block its busiest lane's keys × head_dim / "
        "sufa_macs); utilization = bound / cycles."
        + (" Area efficiency = dense-equivalent MACs (the dense job's visible keys × d, for "
           "q·k and p·v) per cycle per million cells of the core (the area below)."
           if area else ""), "",
        "| case | cycles | vs dense | bytes read | vs dense | union | bound | utilization |"
        + (" area efficiency |" if area else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if area else "")]
    for r, c, d, util, which, union in bench_rows(cfg, results):
        sp = "1" if r["dense"] else f"{d['CYCLES'] / c['CYCLES']:.2f}× fewer"
        by = "1" if r["dense"] else f"{d['BYTES_READ'] / c['BYTES_READ']:.2f}× fewer"
        eff = (f" {area_efficiency(cfg, c, d, area):.1f} |" if area else "")
        lines.append(f"| {r['label']} | {c['CYCLES']:,} | {sp} | {c['BYTES_READ']:,} | {by} | "
                     f"{union:.2f} | {which} | {util:.1%} |{eff}")
    lines += ["", *(f"![{p.stem}]({p.name})" for p in plot_files)]
    lines += roofline_markdown(cfg, results)
    lines += ["", "## What limits it", "",
              f"Each of the {cfg.lanes} SU-FA lanes has {cfg.sufa_macs} multipliers for q·k and "
              f"{cfg.sufa_macs} for p·v and walks only its own selected keys, "
              f"{fmt.sufa_chunks} cycles per key, so a block takes at least its busiest lane's "
              "keys × that (`SU-FA lanes`); the bus reads every K row (prediction) and the "
              f"union of the lanes' V rows (`memory`); the predictor takes "
              f"{_key_rate(cfg)}. "
              "Per case, each resource's busy cycles as a share of the job's cycles; the rest "
              "is pipeline fill and drain and rescale stalls: the first tile is read and "
              "predicted before the lanes have work (sparse: they start accumulating a tile once "
              "its first two keys are scored; dense: once all are); a rescale stalls its lane "
              f"{rescale_cycles(cfg)} cycles plus its pipeline drain; after a block's last key each lane divides "
              f"O by L (reciprocal, then d cycles) and the block's {cfg.lanes} rows are written "
              "before its lanes accumulate the next block (the next block's scores are already "
              "computed). The random cases are one block of queries, so nothing hides their fill "
              "and drain; MiniLM has 4 tiles per block, so the per-block O / L and output weigh "
              "most at small k; the decoder cases are the last block of a 2048-token causal "
              "prefill (32 tiles).", ""]
    for r, c, _, util, which, _ in bench_rows(cfg, results):
        shares = {"SU-FA lanes": lane_bound(r["blocks"], fmt),
                  "memory": c["BYTES_READ"] // fmt.bus_bytes, "predictor": c["PRED_BUSY"] * fmt.cfg.pred_cycles}
        parts = ", ".join(f"{k} {v / c['CYCLES']:.0%}" for k, v in shares.items())
        events = c["RESCALES"] + c["MERGES"]
        lines.append(f"- {r['label']}: {which}-bound ({parts}); {events} rescale events")
    lines.append("")
    if area:
        from .synth import stage_cells
        cells, ffs = stage_cells(area), stage_cells(area, "flip_flops")
        bits = stage_cells(area, "memory_bits")
        total = area["total"]
        lines += ["## Area per stage (`star synth`: Yosys generic cells, every lane counted)", "",
                  "Memories are kept as memory cells (SRAM macros), counted in bits.", "",
                  "| stage | cells | share | flip-flops | memory bits |", "|---|---|---|---|---|"]
        for stage in sorted(cells, key=lambda k: -cells[k]):
            lines.append(f"| {stage} | {cells[stage]:,} | {cells[stage] / total['cells']:.1%} | "
                         f"{ffs[stage]:,} | {bits[stage]:,} |")
        lines += [f"| total | {total['cells']:,} | | {total['flip_flops']:,} | "
                  f"{total['memory_bits']:,} |", "", "![area](area.png)", ""]
    if accuracy:
        from .evaluate import format_table
        lines += [f"## Selection accuracy on real attention (`star eval`, {accuracy['data']})", "",
                  format_table(accuracy), ""]
    return "\n".join(lines)


def plots(cfg, results, outdir: Path) -> list[Path]:
    """PNG plots of cycles, bytes read and utilization vs S (random data), and the roofline of
    every job (:func:`roofline_plot`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series: dict = {}
    for r, c, _, util, _, _ in bench_rows(cfg, results):
        if r["data"] != "random":
            continue
        mode = "dense" if r["dense"] else f"STAR k={r['frac']:.0%}"
        s = series.setdefault(mode, {"S": [], "cycles": [], "bytes": [], "util": []})
        s["S"].append(r["seq_len"])
        s["cycles"].append(c["CYCLES"])
        s["bytes"].append(c["BYTES_READ"])
        s["util"].append(100 * util)
    files = []
    for key, ylabel, log in (("cycles", "cycles", True), ("bytes", "bytes read", True),
                             ("util", "utilization (%)", False)):
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        for mode, s in series.items():
            ax.plot(s["S"], s[key], marker="o", label=mode)
        ax.set_xscale("log", base=2)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("keys S (one block of queries)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{cfg.name}: {ylabel} vs S")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = outdir / f"{key}.png"
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        files.append(path)
    return files + [roofline_plot(cfg, results, outdir / "roofline.png")]


def area_plot(cfg, area: dict, path: Path) -> None:
    """A bar chart of the generic cells per pipeline stage."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .synth import stage_cells
    cells = stage_cells(area)
    names = sorted(cells, key=lambda k: -cells[k])
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.bar(names, [cells[n] / 1e3 for n in names])
    ax.set_ylabel("thousand generic cells")
    ax.set_title(f"{cfg.name}: star_core area per stage")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def bench(cfg, outdir: Path, *, seqs, fractions, seed: int, area: bool, cmd: str,
          progress=None) -> Path:
    """Run everything (each step on ``progress``) and write the report; return the path of
    report.md."""
    from .progress import Progress
    progress = progress or Progress("bench", cfg.name)
    t0 = time.time()
    outdir.mkdir(parents=True, exist_ok=True)
    todo = cases(cfg, seqs, fractions)
    results = run_bench(cfg, todo, ROOT / "build" / "bench" / cfg.name, seed, progress=progress)
    area_report = accuracy = None
    if area:
        from .synth import module_stats
        from star.hw.verilog import convert
        from star.hw.core import StarCore
        with progress.step("Yosys area of star_core"):
            area_report = module_stats(convert(StarCore(cfg), name="star_core"), "star_core",
                                       ROOT / "build" / "bench" / cfg.name / "yosys")
    real = real_workload(cfg)
    if real:
        from .evaluate import evaluate
        with progress.step(f"star eval on {real['path'].name}"):
            accuracy = evaluate(cfg, real["path"], [f"{f:.0%}" for f in fractions])
    with progress.step("report and plots"):
        files = plots(cfg, results, outdir)
        if area_report:
            area_plot(cfg, area_report, outdir / "area.png")
        (outdir / "report.json").write_text(json.dumps(
            {"config": cfg.to_dict(), "results": results, "area": area_report,
             "accuracy": accuracy}, indent=1) + "\n")
        text = report_markdown(cfg, results, seconds=time.time() - t0, cmd=cmd,
                               area=area_report, accuracy=accuracy, plot_files=files)
        (outdir / "report.md").write_text(text)
    return outdir / "report.md"
