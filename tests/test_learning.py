"""Learning tests: several vmapped seeds reach a threshold in a short budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import bellman


def test_ppo_learns_cartpole_with_four_seeds_at_once(tmp_path: Path) -> None:
    run = bellman.train(
        "ppo",
        env="CartPole-v1",
        steps=60_000,
        seeds=4,
        out=tmp_path / "run",
        progress=False,
        evals=0,
    )
    returns = np.asarray(run.summary["final_return_per_seed"])
    # random play lasts about 22 steps; the greedy policy of every seed must balance far longer
    assert returns.min() >= 200, returns
    assert returns.mean() >= 400, returns


def test_ppo_learns_on_the_host_backend(tmp_path: Path) -> None:
    run = bellman.train(
        "ppo",
        env="CartPole-v1",
        backend="gymnasium",
        steps=30_720,
        out=tmp_path / "run",
        progress=False,
        evals=0,
        eval_episodes=10,
    )
    assert run.summary["backend"] == "gymnasium"
    assert run.final_return >= 150, run.summary["final_return_per_seed"]


def final_returns(algo: str, tmp_path: Path, steps: int, seeds: int = 4, **kw) -> np.ndarray:
    run = bellman.train(
        algo,
        env=kw.pop("env", "CartPole-v1"),
        steps=steps,
        seeds=seeds,
        out=tmp_path / algo,
        progress=False,
        evals=0,
        **kw,
    )
    return np.asarray(run.summary["final_return_per_seed"])


def test_reinforce_with_a_learned_baseline_learns_cartpole_with_four_seeds(tmp_path: Path) -> None:
    returns = final_returns("reinforce", tmp_path, 150_000)
    # random play lasts about 22 steps
    assert returns.min() >= 75, returns
    assert returns.mean() >= 150, returns


def test_a2c_learns_cartpole_with_four_seeds(tmp_path: Path) -> None:
    returns = final_returns("a2c", tmp_path, 100_000)
    assert returns.min() >= 75, returns
    assert returns.mean() >= 150, returns


def test_ppo_kl_penalty_learns_cartpole_with_four_seeds(tmp_path: Path) -> None:
    returns = final_returns("ppo", tmp_path, 60_000, objective="kl")
    assert returns.min() >= 200, returns
    assert returns.mean() >= 400, returns


def test_reinforce_learns_on_the_host_backend(tmp_path: Path) -> None:
    returns = final_returns("reinforce", tmp_path, 100_000, seeds=2, backend="gymnasium")
    assert returns.mean() >= 60, returns
