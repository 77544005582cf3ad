"""`star quality`: the attention kernel (numpy, always) and the model patching on tiny randomly
initialised models of each supported family (torch + transformers, the ``quality`` extra;
skipped without them, installed by CI). No model is downloaded."""

import json

import numpy as np
import pytest

from star.gen import kernel
from star.gen.cli import main
from star.gen.lm import QualityError, _model_file, token_windows
from star.gen.quality import Run, core_config, delta_table, goal_rows
from star.golden import core, pipeline, reference
from star.spec.config import from_overrides, preset

SEQ = 80         # tokens of the tiny models' inputs: 5 tiles of the tiny preset's 16 keys
WINDOW = 24      # the sliding window of the tiny sliding-window models (< SEQ: it matters)


def _cfg(head_dim=16):
    return from_overrides(preset("tiny"), {"head_dim": head_dim, "max_seq": 256})


def _head(seed, s=SEQ, d=16):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(s, d)) for _ in range(3))


# --- the kernel (numpy only) ------------------------------------------------------------------

@pytest.mark.parametrize("window", [None, WINDOW])
def test_kernel_every_key_kept_is_dense(seed, window):
    """k = tile keeps every visible key, so each selection method in selection mode is the
    float dense attention of the same mask; a smaller k is not."""
    cfg = _cfg()
    q, k, v = _head(seed)
    dense = reference.attention_head(q, k, v, 0.25, reference.causal_mask(SEQ, SEQ, window))
    kw = dict(scale=0.25, causal=True, window=window)
    np.testing.assert_allclose(kernel.head(cfg, "dense", "selection", cfg.tile, q, k, v, **kw),
                               dense, rtol=0, atol=1e-12)
    for method in kernel.SELECTORS:
        out = kernel.head(cfg, method, "selection", cfg.tile, q, k, v, **kw)
        np.testing.assert_allclose(out, dense, rtol=0, atol=1e-12, err_msg=method)
        assert np.abs(kernel.head(cfg, method, "selection", 2, q, k, v, **kw) - dense).max() > 1e-3


def test_kernel_bitexact_is_the_golden_core_job(seed):
    """Bit-exact mode is what the core writes: golden.core.run_job on the same quantised head
    (registers from the quantisation), dequantised, row by row; the selection mode is not."""
    cfg = _cfg()
    q, k, v = _head(seed)
    for method, predictor_terms in (("dlzs1", 1), ("dlzs2", 2)):
        mcfg = from_overrides(cfg, {"dlzs_terms": predictor_terms})
        h = pipeline.prepare(mcfg.formats, q, k, v, causal=True, softmax_scale=0.25)
        job = core.run_job(mcfg, h.q, h.k, h.v, {
            "Q_LEN": SEQ, "SEQ_LEN": SEQ, "SCALE_MANT": h.mant, "SCALE_SHIFT": h.shift,
            "K_TILE": 3, "MODE": core.MODE_CAUSAL})
        out = kernel.head(cfg, method, "bitexact", 3, q, k, v, scale=0.25, causal=True)
        np.testing.assert_array_equal(out, job.out * h.scale_v, err_msg=method)
        sel = kernel.head(cfg, method, "selection", 3, q, k, v, scale=0.25, causal=True)
        assert not np.array_equal(out, sel)


def test_kernel_gqa_layer_reads_its_kv_head(seed):
    cfg = _cfg()
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(4, 32, 16)), rng.normal(size=(2, 32, 16)), rng.normal(size=(2, 32, 16))
    out = kernel.layer(cfg, "dense", "selection", 4, q, k, v, scale=0.25, causal=True)
    ref = reference.attention(q, k, v, causal=True, scale=0.25)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_kernel_bad_method_and_mode():
    q, k, v = _head(0, s=8)
    with pytest.raises(ValueError, match="method must be one of"):
        kernel.head(_cfg(), "topk", "selection", 2, q, k, v, scale=1.0, causal=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        kernel.head(_cfg(), "dlzs1", "fast", 2, q, k, v, scale=1.0, causal=True)


def test_core_config_follows_the_model():
    base = preset("default")
    cfg = core_config(base, base, 256, 2048, {})
    assert (cfg.head_dim, cfg.max_seq >= 2048, cfg.name != base.name) == (256, True, True)
    assert core_config(cfg, base, 256, 2048, {}) is cfg
    small = core_config(base, base, 16, 64, {})
    assert (small.head_dim, small.axi_data_bits) == (16, 16 * base.data_bits)
    given = from_overrides(base, {"head_dim": 128})
    with pytest.raises(QualityError, match="head_dim=128: the model's head_dim is 256"):
        core_config(given, base, 256, 2048, {"head_dim": 128})


def test_run_labels():
    assert Run("model").label.startswith("model")
    assert Run("dlzs1", "bitexact", 6, (5,)).label == "DLZS, 1 term, bitexact, k=6, layers 5"
    assert Run("dense", "selection").label == "dense, selection"


def test_bench_tables_verdicts():
    """The report's goal verdicts follow the figures (tile 64: k = 16 is 25 %, 6 is 10 %);
    a run without a result is 'not run', never a pass."""
    def row(method, mode, k, delta, seconds=60.0):
        return {"method": method, "mode": mode, "k": k, "layers": None, "delta_pct": delta,
                "seconds_per_window": seconds}
    rows = [row("dlzs1", "bitexact", 16, 0.9), row("dlzs1", "bitexact", 6, 3.5, 900.0),
            row("dlzs1", "selection", 16, 1.2), row("exact", "selection", 16, 1.0),
            row("dlzs1", "selection", 6, 4.0), row("exact", "selection", 6, 3.0)]
    goals = goal_rows(rows, 64, 2048)
    assert goals[0] == "| bit-exact DLZS 1 term, k = 25 %: Δ ≤ 1 % | +0.90 % | met |"
    assert goals[1].endswith("| +3.50 % | missed by 0.50 pp |")
    assert goals[2].endswith("| +1.00 pp | missed by 0.50 pp |")       # k = 10 %: 4.0 - 3.0
    assert goals[3].endswith("| +0.20 pp | met |")                      # k = 25 %
    assert goals[4].endswith("| 60 s | met |")
    table = delta_table(rows, 64)
    assert table[0].startswith("| method | mode | k = 5 % (3) | k = 10 % (6)")
    assert "| DLZS, 1 term | bitexact | not run | +3.50 % | not run | +0.90 % |" in table
    assert goal_rows([], 64, 2048)[0].endswith("| not run | not run |")


def test_model_file_errors(tmp_path):
    models = tmp_path / "models"
    with pytest.raises(QualityError, match=r"^--model \S+: no such file$"):
        _model_file(str(tmp_path / "none.gguf"), models)
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(QualityError, match=r"not a GGUF file \(no GGUF magic\)$"):
        _model_file(str(tmp_path / "x.gguf"), models)
    with pytest.raises(QualityError, match="a folder, not a .gguf file"):
        _model_file(str(tmp_path), models)
    (tmp_path / "ok.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    assert _model_file(str(tmp_path / "ok.gguf"), models) == tmp_path / "ok.gguf"


class _Tok:
    """A tokenizer stand-in: one id per character, <bos> = 1."""

    bos_token_id = 1

    def __call__(self, text):
        return {"input_ids": [1] + [ord(c) for c in text]}


def test_token_windows_restart_with_bos():
    wins = token_windows(_Tok(), "abcdefg", 4, None)
    assert wins == [[1, 97, 98, 99], [1, 100, 101, 102], [1, 103]]
    assert token_windows(_Tok(), "abcdefg", 4, 2) == wins[:2]
    assert token_windows(_Tok(), "", 4, None) == []


def test_cli_quality_bad_inputs(tmp_path, capsys):
    """One line each, before any model is loaded where the flags alone are wrong."""
    text = tmp_path / "t.txt"
    text.write_text("hello")
    cases = [
        (["--text", str(text), "--tokens", "1"], "--tokens must be in [2, 65536], not 1"),
        (["--text", str(text), "--windows", "0"], "--windows must be a positive integer"),
        (["--text", str(text), "--k", "0"], "--k must be in [1, tile=64]"),
        (["--text", str(text), "--threads", "0"], "--threads must be in [1, 256], not 0"),
        (["--text", str(text), "--model", str(tmp_path / "no.gguf")], "no such file"),
    ]
    for args, msg in cases:
        assert main(["quality", "-q", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, (args, err)


# --- the patched models (torch + transformers) --------------------------------------------------

@pytest.fixture(scope="module")
def tt():
    torch = pytest.importorskip("torch", reason="the quality extra (pip install -e '.[quality]')")
    transformers = pytest.importorskip("transformers", reason="the quality extra")
    torch.set_num_threads(2)
    return torch, transformers


def _tiny(tt, family: str):
    """A tiny random model of ``family``: 2 layers, 4 query heads sharing 2 kv heads,
    head_dim 16; the sliding-window families with a window of WINDOW keys."""
    torch, tr = tt
    torch.manual_seed(0)
    common = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                  max_position_embeddings=256, attn_implementation="sdpa")
    config, model = {
        "llama": (tr.LlamaConfig, tr.LlamaForCausalLM),
        "mistral": (tr.MistralConfig, tr.MistralForCausalLM),
        "qwen2": (tr.Qwen2Config, tr.Qwen2ForCausalLM),
        "gemma": (tr.GemmaConfig, tr.GemmaForCausalLM),
        "gemma3_text": (tr.Gemma3TextConfig, tr.Gemma3ForCausalLM),
    }[family]
    extra = {"mistral": dict(sliding_window=WINDOW),
             "qwen2": dict(sliding_window=WINDOW, use_sliding_window=True, max_window_layers=0,
                           layer_types=["sliding_attention", "full_attention"]),
             "gemma3_text": dict(sliding_window=WINDOW, query_pre_attn_scalar=16,
                                 layer_types=["sliding_attention", "full_attention"])}
    return model(config(**common, **extra.get(family, {}))).eval()


def _logits(tt, lm, ids, star=None):
    torch, _ = tt
    with torch.no_grad():
        if star is None:
            return lm(input_ids=torch.tensor([ids])).logits[0].numpy()
        with star:
            return lm(input_ids=torch.tensor([ids])).logits[0].numpy()


#: the window each layer of the tiny models passes (None: full causal attention)
WINDOWS = {"llama": [None, None], "gemma": [None, None], "mistral": [WINDOW, WINDOW],
           "qwen2": [WINDOW, None], "gemma3_text": [WINDOW, None]}


@pytest.mark.parametrize("family", sorted(WINDOWS))
def test_patched_model_dense_and_full_k_reproduce_its_logits(tt, family, seed, monkeypatch):
    """Our dense kernel in every layer reproduces the model's own logits (float64 vs its
    float32 sdpa), and so does STAR keeping every key of each tile; keeping 2 does not. Each
    layer's kernel gets the layer's own sliding window (at SEQ tokens it matters; a mask the
    model passes is checked against it)."""
    from star.gen import lm as lm_mod
    lm = _tiny(tt, family)
    lm_mod.check_family(lm)
    windows = []
    real = kernel.layer

    def recording(*a, **kw):
        windows.append(kw["window"])
        return real(*a, **kw)
    monkeypatch.setattr(lm_mod.kernel, "layer", recording)
    ids = list(np.random.default_rng(seed).integers(2, 128, SEQ))
    ref = _logits(tt, lm, ids)
    cfg = _cfg()
    tol = 2e-5 * np.abs(ref).max()
    all_layers = {0: cfg.tile, 1: cfg.tile}
    for method in ("dense", "dlzs1", "exact"):
        star = lm_mod.StarAttention(cfg, method, "selection", all_layers)
        np.testing.assert_allclose(_logits(tt, lm, ids, star), ref, rtol=0, atol=tol,
                                   err_msg=method)
        assert star.calls == [0, 1]
    assert windows == WINDOWS[family] * 3
    few = _logits(tt, lm, ids, lm_mod.StarAttention(cfg, "dlzs1", "selection", {0: 2, 1: 2}))
    assert np.abs(few - ref).max() > 100 * tol


def test_patched_bitexact_layer_is_the_golden_core(tt, seed, monkeypatch):
    """A bit-exact window on a tiny Gemma 3: every head of its global layer is, row by row,
    what golden.core.run_job writes for that head's quantised q/k/v (the core's registers)."""
    from star.gen import lm as lm_mod
    model = _tiny(tt, "gemma3_text")
    cfg = _cfg()
    seen = {}
    real = kernel.layer

    def recording(cfg_, method, mode, k_tile, q, k, v, **kw):
        out = real(cfg_, method, mode, k_tile, q, k, v, **kw)
        seen.setdefault(kw["window"], []).append((q, k, v, out, kw))
        return out
    monkeypatch.setattr(lm_mod.kernel, "layer", recording)
    ids = list(np.random.default_rng(seed).integers(2, 128, SEQ))
    _logits(tt, model, ids, lm_mod.StarAttention(cfg, "dlzs1", "bitexact", {0: 3, 1: 3}))
    assert set(seen) == {None, WINDOW}
    (q, k, v, out, kw), = seen[None]
    group = q.shape[0] // k.shape[0]
    for hh in range(q.shape[0]):
        h = pipeline.prepare(cfg.formats, q[hh], k[hh // group], v[hh // group], causal=True,
                             softmax_scale=kw["scale"])
        job = core.run_job(cfg, h.q, h.k, h.v, {
            "Q_LEN": SEQ, "SEQ_LEN": SEQ, "SCALE_MANT": h.mant, "SCALE_SHIFT": h.shift,
            "K_TILE": 3, "MODE": core.MODE_CAUSAL})
        np.testing.assert_array_equal(out[hh], job.out * h.scale_v)


def test_window_loss_is_the_models_cross_entropy(tt, seed):
    """window_loss (float64, chunked) against transformers' own loss (mean over the
    next-token predictions)."""
    import torch

    from star.gen.lm import window_loss
    model = _tiny(tt, "llama")
    ids = list(np.random.default_rng(seed).integers(2, 128, 300))
    total, n = window_loss(model, ids)
    with torch.no_grad():
        own = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert n == 299 and total / n == pytest.approx(float(own), rel=1e-5)


def test_unsupported_families_are_one_line(tt):
    from star.gen.lm import check_family
    torch, tr = tt
    gpt2 = tr.GPT2LMHeadModel(tr.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(QualityError, match=r"^model type 'gpt2' cannot be patched: supported "):
        check_family(gpt2)
    g2 = tr.Gemma2ForCausalLM(tr.Gemma2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16))
    with pytest.raises(QualityError, match="soft-caps its attention logits"):
        check_family(g2)


def test_cli_quality_text_errors(tt, tmp_path, capsys, monkeypatch):
    """Text files that cannot be read are one line (the model load is replaced by a tiny
    model so that no GGUF is needed)."""
    from star.gen import lm as lm_mod
    model = _tiny(tt, "llama")
    monkeypatch.setattr(lm_mod, "load", lambda *a, **k: (_Tok(), model, "0" * 64))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for path, msg in ((tmp_path / "none.txt", "no such file"), (bad, "not UTF-8 text"),
                      (empty, "no tokens to predict"), (tmp_path, "a folder, not a text file")):
        assert main(["quality", "-q", "-p", "tiny", "--text", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err


def test_cli_quality_report(tt, tmp_path, capsys, monkeypatch):
    """The whole command on a tiny model: the model run is Δ 0, k = tile is Δ 0 (every key
    kept), k = 2 is not; report.json and report.md are written."""
    from star.gen import lm as lm_mod
    model = _tiny(tt, "gemma3_text")
    monkeypatch.setattr(lm_mod, "load", lambda *a, **k: (_Tok(), model, "0" * 64))
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(np.random.default_rng(1).integers(32, 127, 150).astype(np.uint8)))
    out = tmp_path / "out"
    assert main(["quality", "-q", "-p", "tiny", "--text", str(text), "--tokens", "64",
                 "--windows", "all", "--k", "16", "2", "--mode", "selection", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("| run |")
    assert rep["texts"][0]["windows"] == 3 and rep["config"]["head_dim"] == 16
    delta = {(r["method"], r["k"]): r["delta_ppl_pct"] for r in rep["results"]}
    assert delta[("model", None)] == 0.0 and abs(delta[("dlzs1", 16)]) < 1e-3
    assert abs(delta[("dlzs1", 2)]) > 0.01


def test_dse_perplexity_objective(tt, tmp_path, monkeypatch, capsys):
    """star dse --objective perplexity on a tiny Gemma 3: each trial's error is the model's
    Δ perplexity with the bit-exact core at the trial's per-layer k (recomputed here), its
    cycles come from the cycle model, and a design keeping every key is cheaper than none.
    --warm-start makes the uniform designs the first trials, and a rerun's uniform baseline
    takes them from the study instead of running the model again."""
    from star.gen import lm as lm_mod
    from star.gen.lm import StarAttention, window_loss
    model = _tiny(tt, "gemma3_text")
    monkeypatch.setattr(lm_mod, "load", lambda *a, **k: (_Tok(), model, "0" * 64))
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(np.random.default_rng(2).integers(32, 127, 63).astype(np.uint8)))
    out = tmp_path / "dse"
    assert main(["dse", "-q", "-p", "tiny", "--objective", "perplexity", "--text", str(text),
                 "--tokens", "64", "--tiles", "16", "--k", "25,50", "--trials", "3",
                 "--max-error", "0.5", "--warm-start", "-o", str(out)]) == 0
    rep = json.loads((out / "pareto.json").read_text())
    assert rep["settings"]["objective"] == "perplexity" and len(rep["trials"]) == 3
    n_layers = len(rep["layers"])
    assert [t["percents"] for t in rep["trials"][:2]] == [[25] * n_layers, [50] * n_layers]
    assert main(["dse", "-q", "-p", "tiny", "--objective", "perplexity", "--text", str(text),
                 "--tokens", "64", "--tiles", "16", "--k", "25,50", "--trials", "3",
                 "--max-error", "0.5", "--warm-start", "-o", str(out)]) == 0
    again = json.loads((out / "pareto.json").read_text())
    assert again["model_evaluations"] == 1                        # the dense baseline only
    fields = ("percents", "k_tile", "error", "cycles", "bytes_read", "area")
    assert [{f: u[f] for f in fields} for u in again["uniform"]] == \
        [{f: t[f] for f in fields} for t in rep["trials"][:2]]
    assert "Δ perplexity as a fraction" in (out / "pareto.md").read_text()
    ids = [1] + list(text.read_bytes())
    base, n = window_loss(model, ids)
    cfg = from_overrides(preset("tiny"), {"head_dim": 16, "max_seq": 64})
    for t in rep["trials"][:2]:
        layers = dict(enumerate(t["k_tile"]))
        with StarAttention(cfg, "dlzs1", "bitexact", layers):
            loss, _ = window_loss(model, ids)
        assert t["error"] == pytest.approx(np.exp((loss - base) / n) - 1, rel=1e-9, abs=1e-12)
        assert 0 < t["cycles"] < rep["dense"]["cycles"]


def test_a_layer_that_never_calls_the_entry_is_an_error(tt):
    """windows_loss (star quality and the perplexity DSE) refuses a run in which a layer given
    to STAR never reached the sdpa entry, instead of reporting it as if it ran on STAR."""
    from star.gen.lm import StarAttention
    from star.gen.quality import windows_loss
    model = _tiny(tt, "llama")
    windows = [[1, 5, 9, 13, 17]]
    star = StarAttention(_cfg(), "dense", "selection", {0: 16, 1: 16})
    assert windows_loss(model, windows, star)[1] == 4
    with pytest.raises(QualityError, match=r"^layers \[5\] never called the sdpa"):
        windows_loss(model, windows, StarAttention(_cfg(), "dense", "selection", {1: 16, 5: 16}))
