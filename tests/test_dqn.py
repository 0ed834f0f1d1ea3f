"""DQN: its ops on hand-computed numbers, termination vs truncation in the target, each extension,
a probe whose Q value is known, learning with vmapped seeds, and resume after SIGKILL with the
same replay memory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bellman
from bellman import buffers
from bellman.algos import dqn
from bellman.envs import probes, registry
from bellman.experiment import checkpoint as ckpt
from bellman.ops import losses, targets
from tests.conftest import kill_after_checkpoint, run_cli

# ----- ops -----


def test_q_learning_and_double_q_targets() -> None:
    r = jnp.array([1.0, 1.0])
    discount = jnp.array([0.9, 0.0])  # the second transition ended in a terminal state
    q_target = jnp.array([[1.0, 5.0], [1.0, 5.0]])
    q_online = jnp.array([[3.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(targets.q_learning_target(r, discount, q_target), [5.5, 1.0])
    # Double DQN: the online network picks action 0, the target network rates it 1
    np.testing.assert_allclose(targets.double_q_target(r, discount, q_target, q_online), [1.9, 1.0])


def test_n_step_return_and_polyak_update() -> None:
    rewards = jnp.array([[1.0], [2.0], [4.0]])
    ended = jnp.array([[False], [True], [False]])
    total, discount = targets.n_step_return(rewards, ended, 0.5)
    assert float(total[0]) == 1.0 + 0.5 * 2.0 and float(discount[0]) == 0.25
    online, target = {"w": jnp.array([1.0])}, {"w": jnp.array([3.0])}
    assert float(targets.polyak_update(online, target, 0.25)["w"][0]) == 2.5
    assert targets.polyak_update(online, target, 1.0) is online


def test_huber_loss() -> None:
    x = jnp.array([0.5, -2.0, 3.0])
    np.testing.assert_allclose(losses.huber(x), [0.125, 1.5, 2.5])
    grad = jax.grad(lambda v: losses.huber(v).sum())(x)
    np.testing.assert_allclose(grad, [0.5, -1.0, 1.0])  # the error clipped to [-1, 1]


SPEC = registry.resolve("CartPole-v1").spec


def batch_of(obs, action, reward, discount, next_obs) -> buffers.Batch:
    n = len(action)
    return buffers.Batch(
        obs=jnp.asarray(obs, jnp.float32),
        action=jnp.asarray(action, jnp.int32),
        reward=jnp.asarray(reward, jnp.float32),
        discount=jnp.asarray(discount, jnp.float32),
        next_obs=jnp.asarray(next_obs, jnp.float32),
        weight=jnp.ones(n, jnp.float32),
        index=jnp.zeros((n, 2), jnp.int32),
    )


def test_target_bootstraps_on_truncation_but_not_on_termination() -> None:
    config = dqn.DQNConfig()
    state = dqn.init(jax.random.PRNGKey(0), config, SPEC, 1000)
    obs = np.ones((2, 4)) * 0.1
    next_obs = np.ones((2, 4)) * 0.3
    # the buffer turns terminated into discount 0 and truncated into gamma (tested there)
    batch = batch_of(obs, [0, 0], [1.0, 1.0], [0.0, 0.99], next_obs)
    y = dqn.td_target(config, SPEC, state, batch)
    q_next = dqn.q_values(config, SPEC, state.target_params, batch.next_obs).max(axis=-1)
    np.testing.assert_allclose(y, [1.0, 1.0 + 0.99 * float(q_next[1])], rtol=1e-6)


def test_initial_q_values_are_near_zero_and_dueling_heads() -> None:
    config = dqn.DQNConfig(dueling=True)
    state = dqn.init(jax.random.PRNGKey(0), config, SPEC, 1000)
    q = dqn.q_values(config, SPEC, state.params, jnp.ones((8, 4)))
    assert q.shape == (8, 2)
    assert float(jnp.abs(q).max()) < 0.1  # the output layers start with std 1e-3 (the lecture)
    kernels = [v["kernel"].shape for k, v in state.params["params"].items() if "Dense" in k]
    assert kernels == [(4, 256), (256, 256), (256, 1), (256, 2)]  # the V head and the A head
    value, advantage = jnp.array([[2.0]]), jnp.array([[1.0, 3.0, 5.0]])
    np.testing.assert_allclose(dqn.dueling_q(value, advantage), [[0.0, 2.0, 4.0]])


def test_learn_moves_q_toward_the_target_and_updates_the_target_network() -> None:
    config = dqn.DQNConfig(learning_rate=1e-2, target_update_interval=3)
    state = dqn.init(jax.random.PRNGKey(0), config, SPEC, 1000)
    batch = batch_of(np.full((4, 4), 0.2), [1, 1, 1, 1], [1.0] * 4, [0.0] * 4, np.zeros((4, 4)))
    before = float(dqn.q_values(config, SPEC, state.params, batch.obs)[0, 1])
    for step in range(1, 4):
        state, metrics, error = dqn.learn(config, SPEC, state, batch, jax.random.PRNGKey(step))
        copied = jax.tree.all(
            jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.params, state.target_params)
        )
        assert copied == (step == 3)  # theta^- = theta every C = 3 gradient steps
    after = float(dqn.q_values(config, SPEC, state.params, batch.obs)[0, 1])
    assert abs(1.0 - after) < abs(1.0 - before)
    assert error.shape == (4,) and set(metrics) >= {"loss", "q", "td_abs", "grad_norm"}


def test_annealed_step_size_falls_linearly_to_zero() -> None:
    # 10 envs x 10 steps per phase, learning from step 200 of 1,000: 8 phases x 4 steps = 32
    config = dqn.DQNConfig(learning_starts=200, anneal_lr=True)
    assert dqn.total_gradient_steps(config, 1000) == 32
    batch = batch_of(np.full((4, 4), 0.2), [1, 1, 1, 1], [1.0] * 4, [0.0] * 4, np.zeros((4, 4)))
    plain = dqn.init(jax.random.PRNGKey(0), dataclasses.replace(config, anneal_lr=False), SPEC, 10)
    key = jax.random.PRNGKey(1)

    def step_size(state: dqn.DQNState, anneal: bool) -> float:
        c = dataclasses.replace(config, anneal_lr=anneal)
        moved = dqn.learn(c, SPEC, state, batch, key)[0].params
        delta = jax.tree.map(lambda a, b: a - b, moved, state.params)
        return float(optax.tree.norm(delta))

    full = step_size(plain, anneal=False)
    assert step_size(plain, anneal=True) == pytest.approx(full, rel=1e-6)  # step 0: all of it
    quarter = plain.replace(gradient_step=jnp.asarray(24, jnp.int32))  # 8 of 32 left
    assert step_size(quarter, anneal=True) == pytest.approx(0.25 * full, rel=1e-4)
    done = plain.replace(gradient_step=jnp.asarray(32, jnp.int32))
    assert step_size(done, anneal=True) == 0.0


def test_epsilon_schedule() -> None:
    config = dqn.DQNConfig(exploration_fraction=0.5, exploration_final_eps=0.1)
    eps = [float(dqn.epsilon(config, 1000, jnp.asarray(t))) for t in (0, 250, 500, 900)]
    np.testing.assert_allclose(eps, [1.0, 0.55, 0.1, 0.1], rtol=1e-6)


# ----- learning -----


def train(tmp_path: Path, env: str, steps: int, seeds: int = 1, **overrides):
    overrides = {"evals": 0, "eval_episodes": 10, **overrides}
    return bellman.train(
        "dqn", env=env, steps=steps, seeds=seeds, out=tmp_path / "run", progress=False,
        **overrides,
    )  # fmt: skip


PROBE = {"learning_starts": 64, "buffer_size": 1000, "batch_size": 32, "train_frequency": 1}


def probe_q(run: bellman.Run, env_id: str, obs: np.ndarray) -> np.ndarray:
    spec = registry.resolve(env_id).spec
    config = dataclasses.replace(dqn.DQNConfig(), **PROBE, target_update_interval=50)
    params = jax.tree.map(lambda x: x[0], run.algo_state.params)
    return np.asarray(dqn.q_values(config, spec, params, jnp.asarray(obs, jnp.float32)))


def test_probe_q_of_a_constant_reward_is_one(tmp_path: Path) -> None:
    run = train(tmp_path, "probe/ConstantReward-v0", 3000, target_update_interval=50, **PROBE)
    np.testing.assert_allclose(probe_q(run, "probe/ConstantReward-v0", [[1.0]]), 1.0, atol=0.05)


def test_probe_truncation_is_bootstrapped(tmp_path: Path) -> None:
    # reward 1 per step, truncated (not terminated) after 10 steps: Q = 1 / (1 - gamma) = 10
    # from every state; treating the cut as terminal would give about 6.5 on average
    run = train(
        tmp_path, "probe/Truncation-v0", 20_000, gamma=0.9, target_update_interval=100,
        n_step=3, learning_rate=3e-3, **PROBE,
    )  # fmt: skip
    q = probe_q(run, "probe/Truncation-v0", [[1.0]])
    assert probes.Truncation().spec.max_episode_steps == 10
    np.testing.assert_allclose(q, 10.0, rtol=0.05)


QUICK = {
    "num_envs": 4, "train_frequency": 4, "gradient_steps": 4, "batch_size": 64,
    "learning_starts": 2000, "buffer_size": 20_000, "exploration_fraction": 0.3,
    "learning_rate": 5e-4, "target_update_interval": 50, "hidden_sizes": [64, 64],
}  # fmt: skip
"""More gradient steps per env step than the defaults, and a smaller network: learning shows
within 50k steps, each run a few seconds once compiled."""


def test_dqn_learns_cartpole_with_four_seeds_at_once(tmp_path: Path) -> None:
    run = train(tmp_path, "CartPole-v1", 50_000, seeds=4, **QUICK)
    returns = np.asarray(run.summary["final_return_per_seed"])
    assert returns.mean() >= 100, returns  # random play lasts about 22 steps


@pytest.mark.parametrize(
    "extension",
    [{"double_q": True}, {"dueling": True}, {"n_step": 3}, {"prioritized": True}],
    ids=["double", "dueling", "n-step", "prioritized"],
)
def test_each_extension_learns_cartpole(tmp_path: Path, extension: dict) -> None:
    run = train(tmp_path, "CartPole-v1", 30_000, seeds=2, **QUICK, **extension)
    assert np.mean(run.summary["final_return_per_seed"]) >= 50, run.summary


def test_the_naive_baseline_runs(tmp_path: Path) -> None:
    # the lecture's "replace the table with a network": no replay, the target is the network
    run = train(tmp_path, "CartPole-v1", 3000, buffer_size=1, target_update_interval=1)
    assert np.isfinite(run.summary["final_return_mean"])


# ----- resume -----

ARGS = [
    "train", "dqn", "--env", "CartPole-v1", "--seeds", "2", "--steps", "24000",
    "--num-envs", "1", "--train-frequency", "4", "--gradient-steps", "1",
    "--hidden-sizes", "64", "64", "--log-every", "400", "--checkpoint-every", "2000",
    "--learning-starts", "500", "--evals", "0", "--eval-episodes", "2", "--quiet",
]  # fmt: skip


def final_state(run_dir: Path) -> dict[str, list[np.ndarray]]:
    return ckpt.read_arrays(ckpt.list_checkpoints(run_dir / "checkpoints")[-1][1])


def test_resume_after_sigkill_continues_with_the_same_replay_memory(tmp_path: Path) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    last = kill_after_checkpoint(ARGS, killed, 1500)
    assert 1500 <= last < 6000, last
    resumed = run_cli("train", "dqn", "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = run_cli(*ARGS, "--out", str(whole))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    # parameters, target network, optimiser and the whole replay memory: bit for bit
    killed_state, whole_state = final_state(killed), final_state(whole)
    assert sorted(killed_state) == ["algo", "runner"]
    for part in killed_state:
        for a, b in zip(killed_state[part], whole_state[part], strict=True):
            np.testing.assert_array_equal(a, b)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["resumed"] and summary["algo"] == "dqn"


# ----- environments -----


def test_host_backend_learns_from_its_replay_memory(tmp_path: Path) -> None:
    run = train(
        tmp_path, "CartPole-v1", 4000, backend="gymnasium", **{**QUICK, "learning_starts": 500}
    )
    assert run.summary["backend"] == "gymnasium"
    losses = [r["loss"][0] for r in run.metrics if "loss" in r and r["step"] > 1000]
    assert losses and all(np.isfinite(losses)) and max(losses) > 0
    assert run.metrics[-2]["buffer_size"][0] > 3000


def test_minatar_with_its_preset_on_the_compiled_backend(tmp_path: Path) -> None:
    run = train(
        tmp_path, "Breakout-MinAtar", 3000, preset="minatar", learning_starts=500,
        buffer_size=2000, eval_episodes=2,
    )  # fmt: skip
    config = json.loads((run.run_dir / "config.json").read_text())["config"]
    assert config["network"] == "minatar" and config["batch_size"] == 32
    assert np.isfinite(run.summary["final_return_mean"])


def test_atari_observations_and_the_nature_preset(tmp_path: Path) -> None:
    resolved = registry.resolve("ALE/Breakout-v5")
    assert resolved.backend == "gymnasium"
    assert resolved.spec.obs_shape == (4, 84, 84) and resolved.spec.obs_dtype == "uint8"
    assert resolved.spec.frame_stack == 4
    run = train(
        tmp_path, "ALE/Breakout-v5", 400, learning_starts=200, buffer_size=1000,
        eval_episodes=1, eval_epsilon=1.0,
    )  # fmt: skip
    config = json.loads((run.run_dir / "config.json").read_text())["config"]
    assert config["network"] == "nature" and config["clip_rewards"] == 1.0  # the preset
    assert config["learning_starts"] == 200  # flags given win over the preset
    assert run.summary["final_return_mean"] >= 0


@pytest.mark.parametrize("env_id", ["RoboParking-v0", "Acrobot-v1", "Maze-v0"])
def test_dqn_runs_on_the_lectures_and_classic_envs(tmp_path: Path, env_id: str) -> None:
    run = train(tmp_path, env_id, 2000, **{**QUICK, "learning_starts": 400}, eval_episodes=2)
    assert run.summary["backend"] == "compiled"
    assert np.isfinite(run.summary["final_return_mean"])
