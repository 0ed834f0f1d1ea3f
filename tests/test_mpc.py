"""Model predictive control with the env's own dynamics: the planned return is the simulated
one, both planners swing the pendulum up, and a controller refuses what it cannot give."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import bellman
from bellman.algos import mpc
from bellman.envs import registry
from bellman.errors import RunDirError
from tests.conftest import run_cli


def test_the_simulated_return_is_the_envs_own_rollout() -> None:
    env = registry.resolve("Pendulum-v1").jax_env
    config = mpc.MPCConfig(horizon=7, gamma=0.9)
    state, _ = env.reset(jax.random.PRNGKey(0))
    actions = jnp.linspace(-2.0, 2.0, 7).reshape(7, 1)
    keys = jax.random.split(jax.random.PRNGKey(1), 7)
    total, s = 0.0, state
    for k in range(7):
        s, ts = env.step(keys[k], s, actions[k])
        total += 0.9**k * float(ts.reward)
    got = mpc.simulated_return(config, env, state, actions, keys)
    assert float(got) == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize("planner", ["cem", "mppi"])
def test_mpc_swings_the_pendulum_up(planner: str, tmp_path: Path) -> None:
    run = bellman.train(
        "mpc",
        env="Pendulum-v1",
        steps=200,
        out=tmp_path / planner,
        progress=False,
        eval_episodes=4,
        evals=0,
        planner=planner,
        population=200,
        iterations=3,
    )
    # uniformly random torques return about -1,200 on Pendulum-v1; the swing-up about -150
    assert run.final_return > -300
    planned = [r["planned_return"] for r in run.metrics if "planned_return" in r]
    assert planned and all(p[0] <= 0.0 for p in planned)  # Pendulum's rewards are costs
    if planner == "cem":
        with pytest.raises(RunDirError, match="no policy of observations to load"):
            bellman.load(run.run_dir)
        result = run_cli("eval", str(run.run_dir), "--video")
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "evaluate it without --video" in result.stderr


def test_mpc_parks_the_robot_with_discrete_pushes(tmp_path: Path) -> None:
    run = bellman.train(
        "mpc",
        env="RoboParking-v0",
        steps=40,
        out=tmp_path / "parking",
        progress=False,
        eval_episodes=4,
        evals=0,
        population=100,
        iterations=3,
    )
    # a uniformly random policy returns about -640 and parks in 5% of episodes; a good one
    # about -80 (36 moves)
    assert run.final_return > -150
