# bellman: `make demo` trains PPO on CartPole with 8 seeds; `make test` runs ruff, mypy and pytest.
# Both install the exact versions locked in requirements/ (see README, Development).
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements
# pip in hash-checking mode: every package pinned in the file, each file checked against its hash
PIP_LOCKED := -m pip install --quiet --require-hashes
# uv writes the lock; only `make lock` needs it
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UPGRADE ?= yes
UV_COMPILE := $(TOOLS)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(if $(filter yes,$(UPGRADE)),--upgrade)

.PHONY: demo test install install-dev lint typecheck bench lock check-base check-latest clean

# A venv of a supported Python (scripts/find-python says which) with the locked pip and setuptools.
define new-venv
	rm -rf $(1)
	python=$$(scripts/find-python) && $$python -m venv $(1)
	$(1)/bin/python $(PIP_LOCKED) -r $(LOCK)/build.txt
	touch $(1)/.created
endef

$(VENV)/.created:
	$(call new-venv,$(VENV))

# runtime dependencies only: what `pip install bellman` gives
$(VENV)/.installed: $(LOCK)/base.txt $(LOCK)/build.txt pyproject.toml | $(VENV)/.created
	$(BIN)/python $(PIP_LOCKED) -r $(LOCK)/build.txt -r $(LOCK)/base.txt
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .  # -qq: no notice about editable mode
	touch $@

# and the test tools and every optional extra (Atari, Box2D, MuJoCo)
$(VENV)/.dev-installed: $(LOCK)/dev.txt $(VENV)/.installed
	$(BIN)/python $(PIP_LOCKED) -r $(LOCK)/dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/bellman train ppo --env CartPole-v1 --steps 500000 --seeds 8

lint: install-dev
	$(BIN)/ruff check bellman tests benchmarks scripts
	$(BIN)/ruff format --check bellman tests benchmarks scripts
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy bellman

test: lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile  # two worker processes, each test file on one

bench: install-dev
	$(BIN)/python benchmarks/run.py

# Refresh the lock: every package at the newest version pyproject.toml allows (UPGRADE=no keeps
# the locked versions that still fit and resolves only what changed). The dev lock is resolved
# first and constrains the base lock, so both pin the same version of every package they share.
$(TOOLS)/.uv-$(UV_VERSION):
	rm -rf $(TOOLS)
	python=$$(scripts/find-python) && $$python -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	touch $@

lock: $(TOOLS)/.uv-$(UV_VERSION)
	$(UV_COMPILE) $(LOCK)/build.in -o $(LOCK)/build.txt
	$(UV_COMPILE) pyproject.toml --all-extras -o $(LOCK)/dev.txt
	$(UV_COMPILE) pyproject.toml -c $(LOCK)/dev.txt -o $(LOCK)/base.txt

# What users get, as CI checks it: the runtime lock alone in a fresh venv, bellman installed as a
# package (not editable), pip check, then the smoke test (scripts/smoke).
check-base:
	$(call new-venv,.venv-base)
	.venv-base/bin/python $(PIP_LOCKED) -r $(LOCK)/base.txt
	rm -rf build
	.venv-base/bin/python -m pip install --quiet --no-deps --no-build-isolation .
	.venv-base/bin/python -m pip check
	scripts/smoke .venv-base/bin

# Drift: a fresh venv from pyproject.toml alone (no lock: the newest versions its ranges allow,
# as `pip install bellman` resolves them today), pip check, the versions it resolved against the
# lock, then the smoke test.
check-latest:
	rm -rf .venv-latest
	python=$$(scripts/find-python) && $$python -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip setuptools
	rm -rf build
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager .
	.venv-latest/bin/python -m pip check
	.venv-latest/bin/python scripts/lock_drift.py $(LOCK)/build.txt $(LOCK)/base.txt
	scripts/smoke .venv-latest/bin

clean:
	rm -rf $(VENV) .venv-base .venv-latest $(TOOLS) build .mypy_cache .ruff_cache .pytest_cache runs
