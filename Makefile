# bellman: `make demo` trains PPO on CartPole with 8 seeds; `make test` runs ruff, mypy and pytest.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev,atari,box2d,mujoco]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/bellman train ppo --env CartPole-v1 --steps 500000 --seeds 8

lint: install-dev
	$(BIN)/ruff check bellman tests benchmarks
	$(BIN)/ruff format --check bellman tests benchmarks

typecheck: install-dev
	$(BIN)/mypy bellman

test: lint typecheck
	$(BIN)/pytest -q

bench: install-dev
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache runs
