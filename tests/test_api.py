"""The Python API: train returns the run; load gives a policy that acts."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import bellman


def test_train_returns_the_run_and_load_gives_a_policy(tmp_path: Path) -> None:
    run = bellman.train(
        "ppo",
        env="probe/ObsAction-v0",
        steps=8192,
        seeds=2,
        out=tmp_path / "run",
        progress=False,
        eval_episodes=5,
        evals=0,
        learning_rate=3e-3,
        num_envs=8,
        num_steps=16,
    )
    assert run.run_dir == tmp_path / "run"
    assert run.summary["seeds"] == 2 and run.summary["env"] == "probe/ObsAction-v0"
    assert run.final_return == pytest.approx(1.0)
    assert run.config.learning_rate == 3e-3
    leaves = jax.tree.leaves(run.params)
    assert all(leaf.shape[0] == 2 for leaf in leaves), "final parameters of every seed"
    assert run.metrics and run.metrics[-1]["step"] == 8192

    policy = bellman.load(run.run_dir, seed=1)
    assert int(policy(np.array([1.0], np.float32))) == 1
    np.testing.assert_array_equal(policy(np.array([[1.0], [-1.0], [1.0]])), [1, 0, 1])
    report = bellman.evaluate(run.run_dir, episodes=4)
    assert report["return_mean"] == pytest.approx(1.0)


def test_bad_input_raises_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(bellman.ConfigError, match=r"has no setting 'learnin_rate'.*learning_rate"):
        bellman.train("ppo", env="CartPole-v1", learnin_rate=1e-3, out=tmp_path / "x")
    with pytest.raises(bellman.UnknownNameError, match="unknown algorithm 'dqnn'"):
        bellman.train("dqnn", env="CartPole-v1")
    with pytest.raises(bellman.RunDirError, match="not a bellman run"):
        bellman.load(tmp_path)
