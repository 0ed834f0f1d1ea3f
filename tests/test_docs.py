"""The docs name only code that exists: every dotted bellman name and every path in backticks."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
BELLMAN_ROOTS = {
    "bellman", "ppo", "algos", "runners", "ops", "nets", "envs", "experiment", "distributions",
    "jax_setup", "config", "errors", "rollout", "cli", "dp", "tabular", "mdp",
    "dqn", "buffers", "reinforce", "a2c", "policies", "ddpg", "sac",
    "alphazero", "selfplay", "games", "players", "arena", "play", "GameEnv", "muzero", "unroll",
    "mpc", "control", "pets", "mbpo", "es", "evolution", "evolution_host",
    "bc", "dagger", "gail", "td3bc", "cql", "iql", "datasets", "offline", "adversarial", "collect",
    "sim2real", "sim2real_host", "robustness", "identify", "gymnax_env", "ram", "digits",
    "glimpse_plots", "RAMNet",
}  # fmt: skip
FILES = (".json", ".jsonl", ".png", ".py", ".md", ".mp4", ".ckpt")


def names(page: Path) -> list[str]:
    found = re.findall(r"`([^`\s]+)`", page.read_text())
    return [
        n
        for n in found
        if re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+", n)
        and n.split(".")[0] in BELLMAN_ROOTS
        and not n.endswith(FILES)
    ]


def paths(page: Path) -> list[str]:
    found = re.findall(r"`([^`\s]+)`", page.read_text())
    return [
        p
        for p in found
        if re.fullmatch(r"(bellman|tests|docs|benchmarks|scripts|requirements)/[\w/.]+", p)
    ]


def resolve(name: str) -> object:
    candidates = [name, f"bellman.{name}"]
    candidates += [f"bellman.{package}.{name}" for package in ("algos", "runners", "envs")]
    candidates += [f"bellman.experiment.{name}", f"bellman.envs.games.{name}"]
    for dotted in candidates:
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            return obj
    raise AssertionError(f"{name} names nothing in bellman")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_code_exists(page: Path) -> None:
    for name in names(page):
        resolve(name)
    for path in paths(page):
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"


def test_the_docs_name_code() -> None:
    assert len(names(ROOT / "docs" / "algorithms" / "ppo.md")) >= 10
