#!/usr/bin/env python3
"""Decode steps: dense vs STAR vs the bit-serial front, bytes and cycles per step (issue 35).

    .venv/bin/python scripts/bench_decode.py [--seqs 2048,4096,16384]   # after make install-quality

One decode step of Gemma 3 270M at position S: the KV cache of the first S tokens of a text
(GPL-3, then IDLE's NEWS.txt, then Python's LICENSE.txt, joined: the texts of
``make bench-quality``; <bos> first; one forward pass, no logits but the last position's) and,
per global layer (5, 11, 17: full causal attention; a sliding layer sees its last 512 keys in
decode whatever S), the four query heads of its one KV group at the last position. The core
runs such a step as one block of 4 query rows over the S cached keys (grouped-query attention:
the heads share K and V; lanes = 4; non-causal, since the last position sees every key).
Random: normal Q/K/V of the same shapes (seed 0).

Per step and k (10 % and 25 % of a 64-key tile):

    dense       the core's dense mode: every K and V row
    STAR        the default preset's DLZS + SADS at k per tile: every K row (the predictor
                reads it), the V rows some head selected
    bit-serial  the golden guard filter (golden/bitserial.py: the sound table, K per channel)
                at the guard offset that keeps STAR's share of the keys (k / 64), no cap; "cap":
                the offset that keeps twice that share, then the k best per tile (SADS's work):
                the K bit planes read (bytes as the bus reads them: 64-byte beats of a
                plane-major tile, two 32-byte row-planes per beat, a beat read once for the four
                heads), the V rows some head kept

Bytes: the Q rows, K and V as above, 16-bit data, d = 256 (a row is 512 bytes). Cycles: the
calibrated cycle model of the core's job (gen/cycle_model.py; docs/results/cycle_model gives
its error against the RTL); none for the bit-serial front, which has no RTL yet. Error: the
four heads' output error relative to dense attention (float attention over the keys chosen),
beside the exact per-tile top-k's at the same k. Writes docs/results/decode/report.md and
report.json; the captured caches are kept in build/bench/decode/ for reruns.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from star.gen import cycle_model, kernel  # noqa: E402
from star.gen.lm import DEFAULT_MODEL, load, require_torch  # noqa: E402
from star.gen.machine import machine  # noqa: E402
from star.gen.progress import Progress  # noqa: E402
from star.golden import bitserial, pipeline, reference, sads  # noqa: E402
from star.golden import core as gcore  # noqa: E402
from star.golden.intops import int_matmul  # noqa: E402
from star.golden.quant import quantize_keys_per_channel  # noqa: E402
from star.spec.config import preset  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from bench_quality import TEXTS  # noqa: E402

WORK = ROOT / "build" / "bench" / "decode"
OUT = ROOT / "docs" / "results" / "decode"
JOINED = ("GPL-3", "IDLE NEWS", "Python LICENSE")
K_PERCENT = (10, 25)
GOAL_BYTES = 4.0            # issue 35: a decode step at S >= 4096, bit-serial vs dense


def log(msg: str) -> None:
    print(f"bench_decode: {msg}", file=sys.stderr, flush=True)


def capture(seqs: list[int], progress) -> dict:
    """{(S, layer): (q [4, d] last position, k [S, d], v [S, d], scale)} of every global layer,
    from one forward pass over the first max(seqs) tokens (a causal model's K/V of the first S
    tokens do not depend on the later ones); cached in WORK."""
    path = WORK / f"cache_{'_'.join(map(str, seqs))}.npz"
    if not path.exists():
        torch, _ = require_torch()
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        with progress.step(f"loading {DEFAULT_MODEL}"):
            tok, lm, _ = load(DEFAULT_MODEL, ROOT / "build" / "models")
        text = "\n\n".join(TEXTS[name][0].read_text(encoding="utf-8") for name in JOINED)
        ids = list(tok(text)["input_ids"])[:max(seqs)]
        if len(ids) < max(seqs):
            sys.exit(f"bench_decode: the texts give {len(ids)} tokens, --seqs asks for {max(seqs)}")
        glob = [i for i, t in enumerate(lm.config.layer_types) if t == "full_attention"]
        inner, rec = ALL_ATTENTION_FUNCTIONS["sdpa"], {}

        def capturing(module, query, key, value, attention_mask, **kw):
            if module.layer_idx in glob:
                rec[f"k{module.layer_idx}"] = key[0, 0].detach().numpy().copy()
                rec[f"v{module.layer_idx}"] = value[0, 0].detach().numpy().copy()
                rec[f"q{module.layer_idx}"] = (  # [len(seqs), 4, d]: each S's last query
                    query[0, :, [n - 1 for n in seqs]].detach().numpy().transpose(1, 0, 2).copy())
                rec[f"scale{module.layer_idx}"] = np.array(kw.get("scaling"))
            return inner(module, query, key, value, attention_mask, **kw)
        ALL_ATTENTION_FUNCTIONS["sdpa"] = capturing
        try:
            with progress.step(f"forward pass over {len(ids)} tokens"), torch.no_grad():
                lm(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1)
        finally:
            ALL_ATTENTION_FUNCTIONS["sdpa"] = inner
        WORK.mkdir(parents=True, exist_ok=True)
        np.savez(path, layers=np.array(glob), **rec)
    out = {}
    with np.load(path) as f:
        for li in f["layers"]:
            for i, s in enumerate(seqs):
                out[(s, int(li))] = (f[f"q{li}"][i].astype(np.float64),
                                     f[f"k{li}"][:s].astype(np.float64),
                                     f[f"v{li}"][:s].astype(np.float64), float(f[f"scale{li}"]))
    return out


def random_step(s: int, d: int, group: int, rng):
    return (rng.normal(size=(group, d)), rng.normal(size=(s, d)), rng.normal(size=(s, d)),
            d ** -0.5)


def core_config(seqs: list[int], d: int, group: int):
    """The default preset at the workload's shape: head_dim, max_seq holding the longest cache,
    one block of the group's query heads."""
    max_seq = 1 << (max(seqs) - 1).bit_length()
    return dataclasses.replace(preset("default"), head_dim=d, max_seq=max_seq, lanes=group)


def plane_bytes(planes, valid, tile: int, d: int, bus_bytes: int) -> int:
    """Bytes the bus reads for the K planes: per tile and plane, the beats of the plane-major
    tile (row-planes of d bits, keys in order) holding a key some row still reads."""
    need = (planes * valid).max(axis=0)                    # planes each key is read to
    per_beat = max(1, bus_bytes * 8 // d)
    beat_bytes = max(bus_bytes, d // 8)
    beats = 0
    for j in range(0, need.shape[0], tile):
        t = need[j:j + tile]
        groups = np.pad(t, (0, -len(t) % per_beat)).reshape(-1, per_beat).max(axis=1)
        beats += int(groups.sum())                         # a group is read once per plane
    return beats * beat_bytes


def step(cfg, q, k, v, scale) -> list[dict]:
    """One decode step's rows: dense, then per k STAR, bit-serial and exact top-k."""
    fmt, s_len, group, d = cfg.formats, k.shape[0], q.shape[0], q.shape[1]
    row = d * cfg.data_bits // 8
    h = pipeline.prepare(fmt, q, k, v, causal=False, softmax_scale=scale)
    dense_out = reference.attention_head(q, k, v, scale, h.valid)
    q_bytes = group * row

    def err(mask):  # the output over the chosen keys vs dense
        return reference.rel_error(reference.attention_head(q, k, v, scale, mask), dense_out)

    def model(res, sel, dense=False):
        blocks = gcore.block_schedule(cfg, sel, group, s_len, False)
        gcore.add_events(cfg, blocks, res)
        return cycle_model.job_cycles(cfg, blocks, s_len, dense=dense)
    res, sel = pipeline.run(h, fmt, dense=True)
    m = model(res, sel, dense=True)
    rows = [{"front": "dense", "k_pct": 100, "cycles": m["cycles"], "bytes": m["bytes_read"],
             "k_bytes": s_len * row, "v_bytes": s_len * row, "error": 0.0, "kept": 1.0}]
    exact_rank = kernel.oracle_rank(q @ k.T, h.valid)
    qi, _, ki = quantize_keys_per_channel(q, k, cfg.data_bits)
    exact_int = int_matmul(qi, ki.T)
    for pct in K_PERCENT:
        kt = max(1, round(cfg.tile * pct / 100))
        res, sel = pipeline.run(h, fmt, k_tile=kt)
        m = model(res, sel)
        mask = sads.selection_mask(sel, s_len)
        v_rows = int(mask.any(axis=0).sum())
        assert m["bytes_read"] == q_bytes + (s_len + v_rows) * row, "cycle model bytes"
        exact_err = err(sads.selection_mask(
            kernel.selection(exact_rank, cfg, "exact", h.valid, kt), s_len))
        rows.append({"front": "STAR", "k_pct": pct, "cycles": m["cycles"],
                     "bytes": m["bytes_read"], "k_bytes": s_len * row, "v_bytes": v_rows * row,
                     "kept": float(mask.mean()), "exact_error": exact_err, "error": err(mask)})
        for front, share, cap in (("bit-serial", kt / cfg.tile, None),
                                  ("bit-serial, cap", min(1.0, 2 * kt / cfg.tile), kt)):
            off = bitserial.offset_keeping(exact_int, h.valid, cfg.tile, share)
            bsel, planes = bitserial.select(qi, ki, cfg.data_bits, cfg.tile, off, h.valid,
                                            cap=cap)
            bmask = sads.selection_mask(bsel, s_len)
            kb = plane_bytes(planes, h.valid, cfg.tile, d, cfg.axi_data_bits // 8)
            vb = int(bmask.any(axis=0).sum()) * row
            rows.append({"front": front, "k_pct": pct, "cycles": None,
                         "bytes": q_bytes + kb + vb, "k_bytes": kb, "v_bytes": vb,
                         "kept": float(bmask.mean()), "exact_error": exact_err,
                         "planes": float(planes.max(axis=0).mean()), "error": err(bmask)})
    return rows


def render(rep: dict) -> str:
    lines = ["# Decode steps: dense vs STAR vs the bit-serial front", "",
             f"Command: `{rep['command']}` · machine: {rep['machine']}", "",
             "One decode step per global layer of Gemma 3 270M (the KV cache of the first S "
             "tokens of GPL-3 + IDLE's NEWS.txt + Python's LICENSE.txt, the four query heads of "
             "the KV group at the last position, run as one 4-row block), and random normal "
             "data of the same shape. Cycles: the cycle model of the core (default preset, "
             f"lanes = 4, head_dim = 256, 16-bit, {rep['axi_bits']}-bit AXI); the bit-serial "
             "front has no RTL yet, so no cycles. Bytes: Q + K + V read per step; bit-serial K: "
             "the beats of a plane-major tile holding a plane some head still reads. Error: the "
             "heads' output error vs dense attention; exact: the exact per-tile top-k's at the "
             "same k. Each figure is the mean over the layers.", "",
             "| data | S | front | k | cycles | vs dense | bytes | vs dense | K bytes | "
             "V bytes | K planes/key | keys kept | error | exact top-k error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        dense = r["front"] == "dense"
        cyc = ("—", "—") if r["cycles"] is None else (
            f"{r['cycles']:,.0f}", f"{r['dense_cycles'] / r['cycles']:.2f}×")
        cells = [r["data"], str(r["seq"]), r["front"], "all" if dense else f"{r['k_pct']} %",
                 *cyc, f"{r['bytes']:,.0f}", f"{r['dense_bytes'] / r['bytes']:.2f}×",
                 f"{r['k_bytes']:,.0f}", f"{r['v_bytes']:,.0f}",
                 f"{r.get('planes', rep['config']['data_bits']):.1f}", f"{r['kept']:.3f}",
                 f"{r['error']:.3f}", "—" if dense else f"{r['exact_error']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Against issue 35's goal", ""]
    for r in rep["rows"]:
        if not (r["data"] == "Gemma 3" and r["seq"] >= 4096 and r["k_pct"] == 10
                and r["front"] != "dense"):
            continue
        x = r["dense_bytes"] / r["bytes"]
        verdict = ("" if r["front"] == "STAR" else
                   f" (goal ≥ {GOAL_BYTES:.0f}×: met)" if x >= GOAL_BYTES else
                   f" (goal ≥ {GOAL_BYTES:.0f}×: missed by {GOAL_BYTES / x:.2f}×)")
        lines.append(f"- S = {r['seq']}, k = 10 %, {r['front']}: {x:.2f}× fewer bytes than "
                     f"dense{verdict}, error {r['error'] / r['exact_error']:.2f}× exact "
                     "top-k's.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqs", default="2048,4096,16384",
                    help="cache lengths S, comma-separated (default 2048,4096,16384)")
    args = ap.parse_args()
    try:
        seqs = sorted({int(x) for x in args.seqs.split(",")})
    except ValueError:
        sys.exit(f"bench_decode: --seqs must be integers separated by commas, not {args.seqs!r}")
    if not all(64 <= s <= 32768 for s in seqs):
        sys.exit(f"bench_decode: --seqs must each be in [64, 32768], not {args.seqs!r}")
    progress = Progress("bench-decode")
    real = capture(seqs, progress)
    d, group = next(iter(real.values()))[1].shape[1], next(iter(real.values()))[0].shape[0]
    cfg = core_config(seqs, d, group)
    rng = np.random.default_rng(0)
    rows = []
    for data in ("Gemma 3", "random"):
        for s in seqs:
            layers = sorted(li for (ss, li) in real if ss == s)
            per = []
            for li in layers:
                step_data = real[(s, li)] if data == "Gemma 3" else random_step(s, d, group, rng)
                with progress.step(f"{data} S={s} layer {li}"):
                    per.append(step(cfg, *step_data))
            for i, first in enumerate(per[0]):
                mean = {key: (None if first[key] is None else float(np.mean([p[i][key]
                                                                            for p in per])))
                        for key in first if key not in ("front", "k_pct")}
                rows.append({"data": data, "seq": s, "front": first["front"],
                             "k_pct": first["k_pct"], **mean,
                             "dense_cycles": float(np.mean([p[0]["cycles"] for p in per])),
                             "dense_bytes": float(np.mean([p[0]["bytes"] for p in per]))})
    cmd = "python scripts/bench_decode.py" + (
        f" --seqs {args.seqs}" if seqs != [2048, 4096, 16384] else "")
    rep = {"command": cmd, "machine": machine(), "axi_bits": cfg.axi_data_bits,
           "config": cfg.to_dict(), "rows": rows}
    text = render(rep)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    (OUT / "report.md").write_text(text)
    log(f"wrote {OUT / 'report.md'}")


if __name__ == "__main__":
    main()
