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
