# Two commands do all the set-up on a fresh machine (they create .venv when it is missing):
#   make demo   runs the main job
#   make test   runs the linter and the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.assocmem-installed
# Ranges in pyproject.toml, the tested versions (torch's CPU build among them) in constraints.txt.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
LINTED := src tests benchmarks experiments examples

.PHONY: demo test lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/assocmem demo

test: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m wheel

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

bench: $(STAMP)
	$(BIN)/python benchmarks/step.py
	$(BIN)/python benchmarks/solvers.py
	$(BIN)/python benchmarks/relax_default.py
	$(BIN)/python benchmarks/retrieval.py
	$(BIN)/python benchmarks/hopfield_layers.py
	$(BIN)/python benchmarks/binary_recall.py
	$(BIN)/python benchmarks/classifier_epoch.py

# The documentation site (mkdocs.yml) into site/; any warning (a broken link or cross-reference) fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
