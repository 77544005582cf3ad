"""The ``star`` command: generate Verilog, simulate it, evaluate predictors on real attention,
inspect configs.

User errors and I/O errors print one line ``star: <message>`` on stderr and exit with status 2,
with no traceback; Ctrl-C prints ``star: interrupted`` and exits with 130; a closed stdout (``star
show-config | head -1``) ends the command silently with 141 (128 + SIGPIPE), as other Unix tools
do. Long steps report progress on stderr (gen.progress; ``-q`` silences it); results and ``star:
wrote ...`` lines go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from star.spec.config import (PRESETS, ConfigError, StarConfig, config_from_toml, from_overrides,
                              override_name, parse_override, read_toml)
from star.spec.config import preset as get_preset
from .evaluate import EvalError
from .lm import QualityError
from .progress import Progress

__all__ = ["main"]


class UserError(Exception):
    """A mistake in the command line or its inputs, reported in one line."""


def _config_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-p", "--preset", default="default",
                   help=f"named configuration: {', '.join(PRESETS)} (default: %(default)s)")
    g.add_argument("-c", "--config", metavar="FILE.toml",
                   help="configuration file (TOML; keys are StarConfig fields, plus 'preset'; "
                        "default: none, use --preset)")
    p.add_argument("-P", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override one config field; repeatable; a config that differs from "
                        "its preset is named <name>-<hash> unless -P name=... (default: none)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines on stderr (default: one line per long step)")
    return p


def resolve(args) -> tuple[StarConfig, dict]:
    """The config of --preset/--config and the -P overrides, and where it came from:
    {"base": preset name, "overrides": {field: value as given by -P}} (for the manifest).

    A config that differs from its preset in a field other than ``name``, when no name was
    given (``-P name=...`` or ``name =`` in the config file), is named ``<name>-<6 hex digits of
    its hash>`` (config.override_name), where <name> is the preset's name or the config file's
    stem: another config, another name, so another output folder and FuseSoC core."""
    if args.config:
        data = read_toml(args.config)
        base, named = data.get("preset", "default"), "name" in data
        cfg = config_from_toml(args.config, data)
    else:
        base, named = args.preset, False
        cfg = get_preset(base)
    overrides = dict(parse_override(o) for o in args.overrides)
    if overrides:
        cfg = from_overrides(cfg, overrides, where="-P: ")
    if not (named or "name" in overrides):
        cfg = override_name(cfg, get_preset(base))
    return cfg, {"base": base, "overrides": overrides}


def resolve_config(args) -> StarConfig:
    """The config of --preset/--config and the -P overrides (:func:`resolve`)."""
    return resolve(args)[0]


def check_outdir(path, flag: str) -> Path:
    """Make sure ``path`` can be the output folder given by ``flag`` (or its default): before any
    long step, so a bad folder is a one-line UserError, not a traceback after minutes of
    elaboration. Nothing is created here (the command creates the folder when it writes)."""
    path = Path(path)
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise UserError(f"{flag} {path}: not a folder{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "folder not writable" if existing == path else \
            f"cannot create it ({existing} is not writable)"
        raise UserError(f"{flag} {path}: {why}")
    return path


def cmd_generate(args) -> int:
    from .build import SPATIAL_TOP, TOPS, generate
    from star.spec.spatial_config import SpatialConfig, parse_mesh
    cfg, origin = resolve(args)
    mesh = parse_mesh(args.mesh) if args.mesh else None
    if mesh:
        try:                                                    # validate before elaborating
            SpatialConfig(cfg, rows=mesh[0], cols=mesh[1])
        except ConfigError as e:
            raise UserError(f"--mesh {args.mesh}: {e}") from None
    names = TOPS + ((SPATIAL_TOP,) if mesh else ())
    tops = list(names) if args.tops is None else args.tops.split(",")
    unknown = [t for t in tops if t not in TOPS + (SPATIAL_TOP,)]
    if unknown:
        raise UserError(f"--tops must name tops among {', '.join(TOPS + (SPATIAL_TOP,))}, not "
                        f"{', '.join(map(repr, unknown))}")
    if SPATIAL_TOP in tops and not mesh:
        raise UserError(f"--tops {SPATIAL_TOP} needs --mesh ROWSxCOLS (e.g. --mesh 2x2)")
    outdir = Path(args.outdir) if args.outdir else \
        Path("build") / (f"{cfg.name}_{mesh[0]}x{mesh[1]}" if mesh else cfg.name)
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be an integer >= 1, not {args.jobs}")
    check_outdir(outdir, "-o")
    written = generate(cfg, outdir, tops, mesh, jobs=args.jobs,
                       progress=Progress("generate", cfg.name, args.quiet), origin=origin)
    for path in written:
        print(f"star: wrote {path}")
    return 0


def cmd_sim(args) -> int:
    from .simulate import TESTS, SimFailed, simulate
    cfg = resolve_config(args)
    tests = args.tests.split(",") if args.tests else list(TESTS)
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        raise UserError(f"--tests must name tests among {', '.join(TESTS)}, not "
                        f"{', '.join(unknown)}")
    build_root = check_outdir(args.outdir, "-o").resolve() if args.outdir else None
    try:
        results = simulate(cfg, tests, seed=args.seed, waves=args.waves, build_root=build_root,
                           progress=Progress("sim", cfg.name, args.quiet))
    except SimFailed as e:
        print(f"star: simulation failed: {e}", file=sys.stderr)
        return 1
    print(f"star: sim {cfg.name}: {len(results)} tests passed; rerun with --seed {results[0].seed}")
    return 0


def cmd_synth(args) -> int:
    from .build import TOPS, blocks
    from .synth import SynthError, ToolMissing, ecp5_cells, ecp5_fmax, module_stats, osu018_liberty
    from star.hw.verilog import convert
    cfg = resolve_config(args)
    if args.top not in TOPS:
        raise UserError(f"--top must be one of {', '.join(TOPS)}, not {args.top!r}")
    outdir = check_outdir(args.outdir or Path("build") / cfg.name / "synth", "-o")
    progress = Progress("synth", cfg.name, args.quiet)
    try:
        liberty = None
        if args.liberty:
            with progress.step("OSU 0.18 µm Liberty file"):
                liberty = osu018_liberty()
        with progress.step(f"converting {args.top}"):
            text = convert(blocks(cfg, only=args.top)[args.top], name=args.top)
        with progress.step(f"yosys on {args.top}"):
            report = module_stats(text, args.top, outdir / "yosys", liberty=liberty)
        if args.ecp5:
            with progress.step("yosys synth_ecp5 -noflatten"):
                report["ecp5_cells"] = ecp5_cells(text, args.top, outdir / "ecp5_cells")
        if args.fmax:
            with progress.step("yosys synth_ecp5 + nextpnr-ecp5 (out of context)"):
                report["ecp5"] = ecp5_fmax(text, args.top, outdir / "ecp5", device="um5g-85k",
                                           package="CABGA381")
    except ToolMissing as e:
        raise UserError(str(e)) from None
    except SynthError as e:
        print(f"star: synthesis failed: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    report["config"] = cfg.to_dict()
    (outdir / "synth.json").write_text(json.dumps(report, indent=1) + "\n")
    (outdir / "synth.md").write_text(synth_markdown(cfg, report))
    print((outdir / "synth.md").read_text(), end="")
    print(f"star: wrote {outdir / 'synth.json'}\nstar: wrote {outdir / 'synth.md'}")
    return 0


def resolve_top(args):
    """The config, the top (``--top``, else star_spatial with ``--mesh``, else star_core), the
    mesh (rows, cols) or None, and the default output folder under build/ of a command that
    takes ``--top`` and ``--mesh``; bad values are a UserError."""
    from star.spec.spatial_config import SpatialConfig, parse_mesh

    from .build import SPATIAL_TOP, TOPS
    cfg = resolve_config(args)
    mesh = parse_mesh(args.mesh) if args.mesh else None
    top = args.top or (SPATIAL_TOP if mesh else "star_core")
    if top not in TOPS + (SPATIAL_TOP,):
        raise UserError(f"--top must be one of {', '.join(TOPS + (SPATIAL_TOP,))}, not {top!r}")
    if top == SPATIAL_TOP and not mesh:
        raise UserError(f"--top {SPATIAL_TOP} needs --mesh ROWSxCOLS (e.g. --mesh 2x2)")
    if mesh:
        try:
            SpatialConfig(cfg, rows=mesh[0], cols=mesh[1])
        except ConfigError as e:
            raise UserError(f"--mesh {args.mesh}: {e}") from None
    where = Path("build") / (f"{cfg.name}_{mesh[0]}x{mesh[1]}" if mesh else cfg.name)
    return cfg, top, mesh, where


def cmd_diagram(args) -> int:
    from star.hw.verilog import convert

    from . import diagram
    from .build import blocks
    from .synth import SynthError, ToolMissing
    cfg, top, mesh, where = resolve_top(args)
    out = Path(args.output) if args.output else where / f"{top}.svg"
    if out.suffix != ".svg":
        raise UserError(f"-o must name an .svg file, not {str(out)!r}")
    check_outdir(out.parent, "-o")
    shares = None
    if args.synth:
        try:
            report = json.loads(Path(args.synth).read_text())
            if report["top"] != top:
                raise UserError(f"--synth {args.synth}: a report of {report['top']}, not {top}")
        except OSError as e:
            raise UserError(f"--synth {args.synth}: {e.strerror or e}") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(f"--synth {args.synth}: not a `star synth` report (synth.json)") \
                from None
    progress = Progress("diagram", cfg.name, args.quiet)
    try:
        with progress.step(f"converting {top}"):
            text = convert(blocks(cfg, only=top, mesh=mesh)[top], name=top)
        with progress.step("yosys netlist"), tempfile.TemporaryDirectory() as tmp:
            parts, links = diagram.structure(diagram.netlist(text, top, tmp), top)
        if args.synth:
            shares = diagram.cell_shares(parts, report)
        with progress.step("graphviz layout"):
            svg = diagram.render(parts, links, f"{top} ({cfg.name})", shares)
    except ToolMissing as e:
        raise UserError(str(e)) from None
    except SynthError as e:
        print(f"star: netlist failed: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except diagram.GraphvizMissing as e:
        raise UserError(str(e)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg)
    print(f"star: wrote {out}")
    return 0


def cmd_timing(args) -> int:
    from star.hw.verilog import convert

    from .build import blocks
    from .synth import SynthError, ToolMissing, osu018_liberty
    from .timing import sta_binary, sta_timing, timing_markdown
    cfg, top, mesh, where = resolve_top(args)
    if not args.period > 0 or args.period == float("inf"):
        raise UserError(f"--period must be a positive number of ns, not {args.period}")
    outdir = check_outdir(args.outdir or where / "timing", "-o")
    progress = Progress("timing", cfg.name, args.quiet)
    try:
        sta_binary()                     # missing: one line before any work
        with progress.step("OSU 0.18 µm Liberty file"):
            liberty = osu018_liberty()
        with progress.step(f"converting {top}"):
            text = convert(blocks(cfg, only=top, mesh=mesh)[top], name=top)
        report = sta_timing(text, top, outdir / "sta", liberty, period_ns=args.period,
                            progress=progress)
    except ToolMissing as e:
        raise UserError(str(e)) from None
    except SynthError as e:
        print(f"star: timing failed: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    report["config"] = cfg.to_dict()
    if mesh:
        report["mesh"] = {"rows": mesh[0], "cols": mesh[1]}
    (outdir / "timing.json").write_text(json.dumps(report, indent=1) + "\n")
    (outdir / "timing.md").write_text(timing_markdown(report, where.name))
    print((outdir / "timing.md").read_text(), end="")
    print(f"star: wrote {outdir / 'timing.json'}\nstar: wrote {outdir / 'timing.md'}")
    return 0


def synth_markdown(cfg, report: dict) -> str:
    """The synthesis report as a Markdown table (one row per synthesized module, the top first)."""
    area = any("area" in m for m in report["modules"].values())
    unit = " area (µm², osu018) |" if area else ""
    lines = [f"# Synthesis of `{report['top']}` ({cfg.name})", "",
             f"Yosys generic `synth` (hierarchical; memories kept as memory cells, not flip-flops; "
             f"the per-lane module synthesized once and counted per instance), "
             f"{report['seconds']:.0f} s. Figures per instance; the total counts every instance.",
             "", "| module | instances | cells | flip-flops | memories | memory bits |" + unit,
             "|---" * (6 + area) + "|"]
    order = sorted(report["modules"], key=lambda n: (n != report["top"], n))
    for name in order:
        m = report["modules"][name]
        row = (f"| {name} | {m['instances']} | {m['cells']:,} | {m['flip_flops']:,} | "
               f"{m['memories']} | {m['memory_bits']:,} |")
        lines.append(row + (f" {m.get('area', 0):,.0f} |" if area else ""))
    t = report["total"]
    lines.append(f"| **total** | | **{t['cells']:,}** | **{t['flip_flops']:,}** | "
                 f"{t['memories']} | {t['memory_bits']:,} |" +
                 (f" **{t.get('area', 0):,.0f}** |" if area else ""))
    if "ecp5_cells" in report:
        c = report["ecp5_cells"]
        cells = ", ".join(f"{n:,} {t}" for t, n in c["by_type"].items())
        dsp = ", ".join(f"{u} {n}" for u, n in c["dsp_by_unit"].items())
        over = "; ".join(f"{k} {u:,} of {a:,}" for k, (u, a) in c["over"].items())
        lines += ["", f"ECP5 cells (`synth_ecp5 -noflatten`, every instance counted, "
                  f"{c['seconds']:.0f} s): {cells}; {c['lut4_equiv']:,} LUT4 equivalents "
                  f"(LUT4 + 2 · (CCU2C + TRELLIS_DPR16X4)); MULT18X18D by unit: {dsp or 'none'}. "
                  + (f"Does not fit the LFE5UM5G-85F: {over}." if over else
                     "Fits the LFE5UM5G-85F.")]
    if "ecp5" in report:
        e = report["ecp5"]
        cp = e.get("critical_path")
        path = (f"; worst path `{cp['from']}` → `{cp['to']}` ({cp['steps']} steps, "
                f"{cp['delay_ns']} ns)" if cp else "")
        dsp = ", ".join(f"{u} {n}" for u, n in e.get("dsp_by_unit", {}).items())
        lines += ["", f"ECP5 LFE5UM5G-85F out of context: fmax {e['fmax_mhz']} MHz{path}; "
                  f"MULT18X18D by unit: {dsp or 'none'}.", ""]
        lines += [f"ECP5 resources: {e['luts']} LUT4, "
                  f"{e['ffs']} FFs ({e['seconds']:.0f} s)."]
    return "\n".join(lines) + "\n"


def cmd_bench(args) -> int:
    from .bench import bench
    from .evaluate import parse_k
    cfg = resolve_config(args)
    try:
        seqs = [int(x) for x in args.seqs.split(",")]
    except ValueError:
        raise UserError(f"--seqs must be comma-separated integers, not {args.seqs!r}") from None
    bad = [s for s in seqs if not 1 <= s <= cfg.max_seq]
    if bad:
        raise UserError(f"--seqs values must be in [1, max_seq={cfg.max_seq}], not {bad[0]}")
    ks = [parse_k(k, cfg.tile) for k in args.k.split(",")]
    if max(ks) > cfg.k_tile:
        raise UserError(f"--k must be at most k_tile={cfg.k_tile} keys of this config, "
                        f"not {max(ks)}")
    fractions = [k / cfg.tile for k in ks]
    outdir = check_outdir(args.outdir or Path("build") / cfg.name / "bench", "-o")
    cmd = "star " + " ".join(args.argv)
    path = bench(cfg, outdir, seqs=seqs, fractions=fractions, seed=args.seed, area=args.area,
                 cmd=cmd, progress=Progress("bench", cfg.name, args.quiet))
    print(path.read_text(), end="")
    print(f"star: wrote {path} (+ report.json, PNG plots)")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate, format_table
    cfg = resolve_config(args)
    report = evaluate(cfg, args.data, args.k, args.radius)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
    else:
        print(format_table(report))
    return 0


def _int_list(text: str, flag: str, lo: int, hi: int) -> tuple[int, ...]:
    """Comma-separated integers in [lo, hi] (one-line UserError otherwise)."""
    try:
        out = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"{flag} must be comma-separated integers, not {text!r}") from None
    bad = [x for x in out if not lo <= x <= hi]
    if bad:
        raise UserError(f"{flag} values must be in [{lo}, {hi}], not {bad[0]}")
    return out


def cmd_quality(args) -> int:
    from .evaluate import parse_k
    from .kernel import MODES
    from .machine import machine
    from .quality import Run, format_table, measure, open_model, report
    cfg, where = resolve(args)
    ks = sorted({parse_k(t, cfg.tile) for t in (args.k or [str(cfg.k_tile)])})
    _check_model_options(args)
    outdir = check_outdir(args.outdir, "-o") if args.outdir else None
    progress = Progress("quality", cfg.name, args.quiet)
    lm, sha, used, texts = open_model(args, cfg, get_preset(where["base"]), where["overrides"],
                                      progress)
    n_layers = lm.config.num_hidden_layers
    layers = None if args.layers is None else \
        _int_list(args.layers, "--layers", 0, n_layers - 1)
    runs = [Run("model")]
    for mode in dict.fromkeys(args.mode or MODES):
        runs += [Run(m, mode, None if m == "dense" else k, layers)
                 for m in dict.fromkeys(args.method or ["dlzs1"])
                 for k in (ks if m != "dense" else [None])]
    results = measure(lm, used, texts, runs, progress)
    rep = report(used, {"name": args.model, "gguf_sha256": sha,
                        "type": lm.config.model_type, "layers": n_layers},
                 texts, results, args.tokens, "star " + " ".join(args.argv), machine())
    table = format_table(rep)
    if args.json:
        print(json.dumps(rep, indent=1, sort_keys=True))
    else:
        print(table)
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / "report.json").write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
        (outdir / "report.md").write_text(table + "\n")
        print(f"star: wrote {outdir / 'report.md'} (+ report.json)")
    return 0


def cmd_dse(args) -> int:
    from .dse import DEFAULT_PERCENTS, DEFAULT_TILES, DseError, parse_list, run_study
    cfg = resolve_config(args)
    if args.objective == "perplexity":
        if not args.text:
            raise UserError("--objective perplexity needs --text FILE (the texts the model "
                            "runs on)")
        _check_model_options(args)
    elif not args.data:
        raise UserError("--data DIR is required (or --objective perplexity with --text)")
    if args.max_error is None:
        args.max_error = 0.01 if args.objective == "perplexity" else 0.1
    try:
        args.tiles = parse_list(args.tiles, "--tiles", 4, 1024, pow2=True) if args.tiles \
            else DEFAULT_TILES
        args.lanes = parse_list(args.lanes, "--lanes", 1, 256) if args.lanes else (cfg.lanes,)
        args.percents = parse_list(args.k, "--k", 1, 100) if args.k else DEFAULT_PERCENTS
        if args.trials < 1:
            raise DseError(f"--trials must be at least 1, not {args.trials}")
        if args.timeout is not None and not args.timeout > 0:
            raise DseError(f"--timeout must be a positive number of seconds, not {args.timeout}")
        for flag, value in (("--alpha", args.alpha), ("--beta", args.beta)):
            if not value >= 0:
                raise DseError(f"{flag} must be a non-negative number, not {value}")
        if not args.max_error > 0:
            raise DseError(f"--max-error must be a positive number, not {args.max_error}")
        if not args.study or len(args.study) > 64:
            raise DseError(f"--study must be a name of 1 to 64 characters, not {args.study!r}")
        args.out = check_outdir(args.out or f"build/dse/{args.study}", "-o")
        path = run_study(cfg, args, progress=Progress("dse", cfg.name, args.quiet))
    except DseError as e:
        raise UserError(str(e)) from None
    print(f"star: wrote {path}")
    return 0


def cmd_board(args) -> int:
    from .board import BoardError, build_board
    cfg = resolve_config(args)
    if not 300 <= args.baud <= 3_000_000:
        raise UserError(f"--baud must be in [300, 3000000], not {args.baud}")
    out = check_outdir(args.outdir or f"build/board/{args.board}-{cfg.name}", "-o")
    try:
        r = build_board(cfg, args.board, out, bitstream=args.bitstream, baud=args.baud,
                        progress=Progress("board", cfg.name, args.quiet))
    except BoardError as e:
        raise UserError(str(e)) from None
    print(f"star: board {r['board']} ({r['description']}): {cfg.name} core, "
          f"{r['mem_bytes'] // 1024} KiB block RAM (prefill jobs up to S = "
          f"{r['longest_prefill_seq']}), UART {r['baud']} baud (divisor {r['divisor']})")
    if args.bitstream:
        used = ", ".join(f"{k} {v['used']}/{v['total']}" for k, v in r["utilisation"].items()
                         if v["used"])
        print(f"star: fmax {r['fmax_mhz']} MHz (clock {r['clock_mhz']:g} MHz); {used}")
    print(f"star: wrote {out}/ ({', '.join(r['files'][:4])}{' ...' if len(r['files']) > 4 else ''})")
    return 0


def cmd_host(args) -> int:
    import asyncio

    import numpy as np

    from star.golden import core as gcore

    from .board import BoardError, board
    from .host import HostError, SerialTransport, StarHost
    cfg = resolve_config(args)
    try:
        mem_bytes = board(args.board).mem_bytes
    except BoardError as e:
        raise UserError(str(e)) from None
    if not 1 <= args.q_len <= args.seq_len:
        raise UserError(f"--q-len must be in [1, --seq-len={args.seq_len}], not {args.q_len}")
    rng = np.random.default_rng(args.seed)
    q, k, v = (rng.standard_normal((n, cfg.head_dim)) for n in (args.q_len, args.seq_len,
                                                                   args.seq_len))

    async def job():
        with SerialTransport(args.port, args.baud) as link:
            host = StarHost(link, cfg, mem_bytes)
            await host.check_build()
            o, counters, h = await host.run_float(q, k, v, causal=args.causal,
                                                  k_tile=args.k_tile)
            return o, counters, gcore.run_job(cfg, h.q, h.k, h.v, host.last_regs)

    try:
        o, counters, want = asyncio.run(job())
    except HostError as e:
        raise UserError(str(e)) from None
    same = bool((o == want.out).all())
    print(f"star: job Q_LEN {args.q_len}, SEQ_LEN {args.seq_len} on {args.port}: O "
          f"{'bit-exact' if same else 'DIFFERS from'} golden.core")
    print(json.dumps(counters))
    return 0 if same else 1


def cmd_presets(args) -> int:
    for name, cfg in PRESETS.items():
        print(f"{name:10s} d={cfg.head_dim} data_bits={cfg.data_bits} lanes={cfg.lanes} "
              f"tile={cfg.tile} k_tile={cfg.k_tile} max_seq={cfg.max_seq} "
              f"sufa_macs={cfg.sufa_macs} axi_data_bits={cfg.axi_data_bits}")
    return 0


def cmd_show_config(args) -> int:
    cfg = resolve_config(args)
    print(json.dumps({"config": cfg.to_dict(), "formats": cfg.formats.to_dict()}, indent=1))
    return 0


def _add_diagram_parser(sub, parent) -> None:
    p = sub.add_parser("diagram", parents=[parent],
                       help="SVG block diagram of a generated top, drawn from its netlist")
    p.add_argument("--top", default=None,
                   help="generated top to draw (default: star_spatial with --mesh, else "
                        "star_core)")
    p.add_argument("--mesh", default=None, metavar="RxC",
                   help="the Spatial-STAR array of R x C cores (default: none)")
    p.add_argument("--synth", default=None, metavar="SYNTH.json",
                   help="shade each block by its share of the Yosys cells in this `star synth` "
                        "report of the same top (default: no shading)")
    p.add_argument("-o", "--output", default=None, metavar="FILE.svg",
                   help="output file (default: build/<config name>/<top>.svg)")
    p.set_defaults(func=cmd_diagram)


def _add_timing_parser(sub, parent) -> None:
    """The ``star timing`` subcommand's options."""
    p = sub.add_parser("timing", parents=[parent],
                       help="static timing with OpenSTA on the OSU 0.18 µm cells: critical "
                            "paths named by RTL signal, fmax, slack per unit")
    p.add_argument("--top", default=None,
                   help="generated top to time (default: star_spatial with --mesh, else "
                        "star_core)")
    p.add_argument("--mesh", default=None, metavar="RxC",
                   help="the Spatial-STAR array of R x C cores (default: none)")
    p.add_argument("--period", type=float, default=5.0, metavar="NS",
                   help="clock period in ns, > 0: the slack is measured against it and ABC "
                        "maps for it (default: %(default)s)")
    p.add_argument("-o", "--outdir", default=None,
                   help="output directory (default: build/<config name>/timing, "
                        "build/<config name>_<R>x<C>/timing with --mesh)")
    p.set_defaults(func=cmd_timing)


def _model_options(p, required: bool) -> None:
    """The model and text options of ``star quality`` and ``star dse --objective perplexity``."""
    from .lm import DEFAULT_MODEL
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="FILE.gguf",
                   help="a GGUF file of a Llama- or Gemma-family model (default: %(default)s, "
                        "Gemma 3 270M from its PyPI package)")
    p.add_argument("--models-dir", default="build/models", metavar="DIR",
                   help="where the default model is assembled (default: %(default)s)")
    p.add_argument("--text", required=required, nargs="+", action="extend", metavar="FILE",
                   help="UTF-8 text files (repeatable)")
    p.add_argument("--tokens", type=int, default=2048,
                   help="tokens per window, <bos> included (default: %(default)s)")
    p.add_argument("--windows", default="1", metavar="N",
                   help="windows per text, or 'all' (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch CPU threads (default: %(default)s)")


def _check_model_options(args) -> None:
    """One-line errors for the options of :func:`_model_options`."""
    if not 2 <= args.tokens <= 1 << 16:
        raise UserError(f"--tokens must be in [2, 65536], not {args.tokens}")
    if args.windows != "all" and not (args.windows.isdigit() and int(args.windows) >= 1):
        raise UserError(f"--windows must be a positive integer or 'all', not {args.windows!r}")
    if not 1 <= args.threads <= 256:
        raise UserError(f"--threads must be in [1, 256], not {args.threads}")


def _add_quality_parser(sub, parent) -> None:
    """The ``star quality`` subcommand's options."""
    from .kernel import METHODS, MODES
    p = sub.add_parser("quality", parents=[parent],
                       help="next-token perplexity of a causal LM (GGUF) with STAR in its "
                            "attention layers, vs the model's own dense attention")
    _model_options(p, required=True)
    p.add_argument("--method", nargs="+", action="extend", choices=METHODS, default=None,
                   help="selection methods (default: dlzs1)")
    p.add_argument("--mode", nargs="+", action="extend", choices=MODES, default=None,
                   help="selection: exact float attention over the selected keys; bitexact: "
                        "the core's integer numerics (default: both)")
    p.add_argument("--k", nargs="+", action="extend", default=None, metavar="K",
                   help="keys kept per tile: integers or percentages such as 25%% (default: "
                        "the config's k_tile)")
    p.add_argument("--layers", default=None, metavar="L,L",
                   help="the layers given to STAR, 0-based (default: all; the rest dense)")
    p.add_argument("-o", "--outdir", default=None,
                   help="also write report.md and report.json there (default: none)")
    p.add_argument("--json", action="store_true",
                   help="print the full report as JSON (default: a Markdown table)")
    p.set_defaults(func=cmd_quality)


def _add_dse_parser(sub, parent) -> None:
    """The ``star dse`` subcommand's options."""
    p = sub.add_parser("dse", parents=[parent],
                       help="Bayesian search of tile and per-layer top-k on a multi-layer "
                            "workload (Optuna): Pareto front, best config as TOML")
    p.add_argument("--objective", choices=("error", "perplexity"), default="error",
                   help="error: relative attention error per layer on --data; perplexity: the "
                        "model's Δ perplexity on --text with STAR in every layer (--model; "
                        "make install-quality) (default: %(default)s)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder of attention .npz files (star eval format), one per layer, "
                        "taken in file-name order (--objective error)")
    _model_options(p, required=False)
    p.add_argument("--trials", type=int, default=100,
                   help="finished trials the study should hold; a rerun continues up to it "
                        "(default: %(default)s)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="bound the whole run: no trial starts after this long, and the "
                        "uniform baseline stops (marked partial) when it is over (default: no "
                        "limit)")
    p.add_argument("--seed", type=int, default=1,
                   help="TPE sampler seed, plus the trials the study already holds (a rerun "
                        "draws anew); give parallel workers different seeds (default: "
                        "%(default)s)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna RDB storage shared by workers, e.g. postgresql://user@host/db "
                        "(default: sqlite file study.db in the output folder)")
    p.add_argument("--study", default="star-dse",
                   help="study name in the storage (default: %(default)s)")
    p.add_argument("-o", "--out", default=None,
                   help="output folder (default: build/dse/<study>)")
    p.add_argument("--tiles", default=None, metavar="T,T",
                   help="tile sizes to search, powers of two (default: 16,32,64,128)")
    p.add_argument("--lanes", default=None, metavar="N,N",
                   help="query lanes T to search (default: the config's lanes only)")
    p.add_argument("--k", default=None, metavar="P,P",
                   help="per-layer keys kept per tile, percentages of the tile (default: "
                        "5,10,...,50)")
    p.add_argument("--warm-start", action="store_true",
                   help="queue the uniform designs (one k for every layer) the study does not "
                        "hold yet as its next trials, so the search starts where uniform k "
                        "meets the budget")
    p.add_argument("--alpha", type=float, default=2.0,
                   help="weight of cycles / dense cycles in the objective (default: %(default)s)")
    p.add_argument("--beta", type=float, default=0.1,
                   help="weight of area proxy / base area (default: %(default)s)")
    p.add_argument("--max-error", type=float, default=None,
                   help="error budget: mean relative output error vs float dense (default "
                        "0.1), or with --objective perplexity the Δ perplexity as a fraction "
                        "(default 0.01: +1 %%)")
    p.set_defaults(func=cmd_dse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="star", description="STAR sparse-attention accelerator generator")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parent = _config_parent()

    _add_build_parsers(sub, parent)
    _add_diagram_parser(sub, parent)
    _add_timing_parser(sub, parent)
    _add_measure_parsers(sub, parent)
    _add_dse_parser(sub, parent)
    _add_quality_parser(sub, parent)
    _add_board_parsers(sub, parent)

    p = sub.add_parser("presets", help="list the named configurations")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("show-config", parents=[parent],
                       help="print the resolved configuration and its derived widths")
    p.set_defaults(func=cmd_show_config)
    return parser


def _add_build_parsers(sub, parent) -> None:
    """``star generate``, ``star sim``, ``star synth``."""
    p = sub.add_parser("generate", parents=[parent],
                       help="emit the Verilog of a configuration")
    p.add_argument("-o", "--outdir", default=None,
                   help="output directory (default: build/<config name>)")
    p.add_argument("--tops", default=None, metavar="A,B",
                   help="comma-separated tops to emit (default: all: star_core, star_dlzs, "
                        "star_sads, star_sufa, and star_spatial with --mesh)")
    p.add_argument("--mesh", default=None, metavar="RxC",
                   help="also emit star_spatial: R x C cores of the config on a mesh NoC, "
                        "R, C in [1, 8], R*C >= 2 (default: none)")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="convert the tops in N processes, N >= 1 (default: the CPUs available; "
                        "the output is the same)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("sim", parents=[parent],
                       help="run the cocotb regression of star_core (Verilator) for a config")
    p.add_argument("--tests", default=None, metavar="A,B",
                   help="comma-separated testbench tests (default: all of them)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed; a failure message names the seed to rerun with "
                        "(default: random)")
    p.add_argument("--waves", action="store_true",
                   help="write an FST waveform per test beside its log (default: off)")
    p.add_argument("-o", "--outdir", default=None, metavar="DIR",
                   help="build folder: the Verilator models and each run's log (default: "
                        "build/sim in the repository, shared with the tests' models)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("synth", parents=[parent],
                       help="synthesize with Yosys: cells, flip-flops, memories per module")
    p.add_argument("--top", default="star_core",
                   help="generated top to synthesize (default: %(default)s)")
    p.add_argument("--liberty", action="store_true",
                   help="also map to the OSU 0.18 µm cells and report area in µm² (fetches "
                        "Debian's qflow-tech-osu018 once; default: off)")
    p.add_argument("--ecp5", action="store_true",
                   help="also synth_ecp5 hierarchically (no place and route): ECP5 cells, "
                        "MULT18X18D per unit, whether it fits the LFE5UM5G-85F (needs no extra "
                        "install; minutes for every preset; default: off)")
    p.add_argument("--fmax", action="store_true",
                   help="also place and route on ECP5 LFE5UM5G-85F out of context for fmax (needs "
                        "`make install-synth`; default: off)")
    p.add_argument("-o", "--outdir", default=None,
                   help="output directory (default: build/<config name>/synth)")
    p.set_defaults(func=cmd_synth)


def _add_measure_parsers(sub, parent) -> None:
    """``star bench`` (RTL cycles) and ``star eval`` (selection quality on tensors)."""
    p = sub.add_parser("bench", parents=[parent],
                       help="STAR vs dense on the core RTL: cycles, bytes, utilization; report "
                            "+ plots")
    p.add_argument("--seqs", default="256,1024,4096", metavar="S,S",
                   help="key sequence lengths (default: %(default)s)")
    p.add_argument("--k", default="10%,25%", metavar="K,K",
                   help="keys kept per tile, integers or percentages (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random data seed (default: %(default)s)")
    p.add_argument("--area", action="store_true",
                   help="add Yosys cells per module (slow for large configs; default: off)")
    p.add_argument("-o", "--outdir", default=None,
                   help="output directory (default: build/<config name>/bench)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", parents=[parent],
                       help="selection quality and output error on real attention tensors")
    p.add_argument("--data", required=True, metavar="FILE.npz",
                   help="npz with float q [H, S, d], k and v [Hkv, S, d], optional JSON meta")
    p.add_argument("--k", nargs="+", action="extend", default=None, metavar="K",
                   help="keys kept per tile: integers or percentages such as 25%% (repeatable: "
                        "--k 25%% 10%% or --k 25%% --k 10%%; default: the config's k_tile)")
    p.add_argument("--radius", type=float, default=None, metavar="NATS",
                   help="SADS radius in logit units (nats); default: the config's radius")
    p.add_argument("--json", action="store_true",
                   help="print the full report as JSON (default: a Markdown table)")
    p.set_defaults(func=cmd_eval)


def _add_board_parsers(sub, parent) -> None:
    """``star board`` and ``star host``."""
    p = sub.add_parser("board", parents=[parent],
                       help="the core on an ECP5 board: block RAM + UART bridge; Verilog or a "
                            "bitstream")
    p.add_argument("--board", required=True,
                   help="ecpix5-85, ecp5-5g-evn or ulx3s-85f (amaranth-boards platforms; "
                        "docs/board.md)")
    p.add_argument("--bitstream", action="store_true",
                   help="place, route and pack with the YoWASP tools (make install-synth; "
                        "minutes); default: only the build files")
    p.add_argument("--baud", type=int, default=115200,
                   help="UART baud rate (default: %(default)s)")
    p.add_argument("-o", "--outdir", default=None,
                   help="output directory (default: build/board/<board>-<config name>)")
    p.set_defaults(func=cmd_board)

    p = sub.add_parser("host", parents=[parent],
                       help="run a random job on a board built by star board, over its serial "
                            "port; check O against the golden model")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", required=True, help="the board (its memory size)")
    p.add_argument("--baud", type=int, default=115200, help="(default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=64, help="keys (default: %(default)s)")
    p.add_argument("--q-len", type=int, default=8, help="queries (default: %(default)s)")
    p.add_argument("--k-tile", type=int, default=None,
                   help="keys kept per tile (default: the config's k_tile)")
    p.add_argument("--causal", action="store_true", help="causal mask (default: off)")
    p.add_argument("--seed", type=int, default=1, help="random data seed (default: 1)")
    p.set_defaults(func=cmd_host)


def _os_error(e: OSError) -> str:
    """An I/O error in one line: ``<strerror>: <file>``."""
    text = e.strerror or str(e)
    return f"{text}: {e.filename}" if e.filename is not None else text


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        status = args.func(args)
        sys.stdout.flush()                 # a closed pipe shows here, not at interpreter exit
        return status
    except (ConfigError, EvalError, QualityError, UserError) as e:
        print(f"star: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of stdout went away (e.g. `| head`): stop quietly; what is still buffered
        # goes to /dev/null, so the flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        print(f"star: {_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if "amaranth" in sys.modules:   # an elaboration cut short: its unused parts are no news
            import warnings

            from amaranth.hdl import UnusedElaboratable
            warnings.simplefilter("ignore", UnusedElaboratable)
        print("star: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
