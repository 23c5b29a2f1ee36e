# ECI Explorer: `make run` starts the dashboard on the bundled sample data, `make test` runs every test.
# Both create .venv on first use and install what is missing (CPU-only torch, offline models).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
DATA   ?= sample_data/pyfaq

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test setup setup-test browser bench clean

run: $(VENV)/.installed
	ECI_DATA=$(DATA) $(PY) -m streamlit run app.py \
		--server.address 127.0.0.1 --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

# The numeric tests run twice more: on the numpy path alone (ECI_NO_NUMBA=1), and with numba's
# kernel compiled for the plainest CPU (NUMBA_CPU_NAME=generic: no AVX), so a tolerance that
# only holds for this machine's SIMD width fails here rather than on a user's CPU.
NUMERIC_TESTS := tests/test_scoring.py tests/test_metrics.py tests/test_false_negatives.py

# Lint first (seconds): ruff's rules and formatting (pyproject.toml [tool.ruff]), then the import
# contracts (pyproject.toml [tool.importlinter]: layers import only downward). ruff is pinned: a
# new release may format differently.
test: $(VENV)/.installed-test browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q
	ECI_NO_NUMBA=1 $(PY) -m pytest -q -p no:cacheprovider $(NUMERIC_TESTS)
	NUMBA_CPU_NAME=generic $(PY) -m pytest -q -p no:cacheprovider tests/test_scoring.py -k fused

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q pytest hypothesis playwright pytest-timeout datasets "ray[data]" ruff==0.17.6 import-linter
	touch $@

# Browser tests use Debian's chromium (never `playwright install`). Installed when missing and
# we are root; otherwise the browser tests skip and say why.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian chromium for the browser tests"; \
		(apt-get install -y -qq chromium >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
		echo "could not install chromium: browser tests will skip"; \
	else echo "chromium not found and not root: browser tests will skip"; fi

bench: $(VENV)/.installed-test browser
	$(PY) bench/bench_scoring.py
	$(PY) bench/bench_mining.py
	$(PY) bench/bench_app.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis tests/artifacts .ruff_cache .import_linter_cache .grimp_cache
