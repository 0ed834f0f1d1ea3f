"""MBPO: the model memory, the mixed minibatch, branched rollouts, learning from the model on a
probe env, and resume after SIGKILL."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import bellman
from bellman.algos import mbpo
from bellman.buffers import Batch
from bellman.envs import registry
from tests.conftest import assert_resume_is_exact

SPEC = registry.resolve("Pendulum-v1").spec


def _memory(capacity: int) -> mbpo.ModelMemory:
    config = mbpo.MBPOConfig(model_buffer_size=capacity, batch_size=4, hidden_sizes=(8,))
    return mbpo.init(jax.random.PRNGKey(0), config, SPEC, 1).memory


def test_the_model_memory_is_a_ring_of_the_newest_transitions() -> None:
    memory = _memory(5)
    for start in (0, 3):  # 3 transitions, then 3 more: the 6th overwrites the 1st
        obs = jnp.arange(start, start + 3, dtype=jnp.float32)[:, None] * jnp.ones((1, 3))
        memory = mbpo.store(memory, obs, jnp.zeros((3, 1)), obs[:, 0], obs + 1.0)
    assert int(memory.size) == 5 and int(memory.position) == 1
    np.testing.assert_array_equal(memory.reward, [5.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(memory.next_obs[:, 0], memory.reward + 1.0)


def test_the_mixed_minibatch_takes_the_real_share_first_and_discounts_model_steps() -> None:
    config = mbpo.MBPOConfig(real_ratio=0.25, gamma=0.9, batch_size=8)
    memory = _memory(16)
    model_obs = 100.0 + jnp.arange(16, dtype=jnp.float32)[:, None] * jnp.ones((1, 3))
    memory = mbpo.store(memory, model_obs, jnp.ones((16, 1)), -jnp.ones(16), model_obs)
    real = Batch(
        obs=jnp.zeros((8, 3)), action=jnp.zeros((8, 1)), reward=jnp.full((8,), 7.0),
        discount=jnp.zeros(8), next_obs=jnp.zeros((8, 3)), weight=jnp.full((8,), 0.5),
        index=jnp.zeros((8, 2), jnp.int32),
    )  # fmt: skip
    batch = mbpo.mixed_batch(config, memory, real, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(batch.reward, [7.0, 7.0] + [-1.0] * 6)
    np.testing.assert_allclose(batch.discount, [0.0, 0.0] + [0.9] * 6)
    np.testing.assert_array_equal(batch.weight, [0.5, 0.5] + [1.0] * 6)
    assert np.all(np.asarray(batch.obs[2:, 0]) >= 100.0)  # from the model memory


def test_rollouts_chain_each_rows_steps_through_the_model() -> None:
    config = mbpo.MBPOConfig(
        rollout_length=3, batch_size=4, model_buffer_size=64, hidden_sizes=(8,)
    )
    state = mbpo.init(jax.random.PRNGKey(0), config, SPEC, 1)
    start = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    memory = mbpo.rollout(config, SPEC, state, start, jax.random.PRNGKey(2))
    assert int(memory.size) == 12
    obs, next_obs = np.asarray(memory.obs[:12]), np.asarray(memory.next_obs[:12])
    np.testing.assert_allclose(obs[:4], start, rtol=1e-6)
    np.testing.assert_array_equal(obs[4:8], next_obs[:4])  # step 2 starts where step 1 ended
    np.testing.assert_array_equal(obs[8:12], next_obs[4:8])
    actions = np.asarray(memory.action[:12])
    assert np.all(np.abs(actions) <= 2.0)  # Pendulum's torque bounds


def test_mbpo_learns_the_probe_action_from_the_models_rewards(tmp_path: Path) -> None:
    """probe/ContinuousAction-v0 pays -(a - 0.5)^2, one step per episode: with 95% of SAC's
    minibatches from model rollouts, the policy settles at a = 0.5."""
    probe = {"learning_starts": 200, "batch_size": 64, "buffer_size": 5000}
    run = bellman.train(
        "mbpo", env="probe/ContinuousAction-v0", steps=1200, seeds=2, out=tmp_path / "run",
        progress=False, evals=0, eval_episodes=10, gradient_steps=2, hidden_sizes=[64, 64],
        model_hidden_sizes=[32, 32], model_buffer_size=4096, **probe,
    )  # fmt: skip
    spec = registry.resolve("probe/ContinuousAction-v0").spec
    config = dataclasses.replace(
        mbpo.MBPOConfig(), **probe, hidden_sizes=(64, 64), model_hidden_sizes=(32, 32)
    )
    for seed in range(2):
        state = jax.tree.map(lambda x, s=seed: x[s], run.algo_state)
        action = mbpo.greedy(config, spec, state, jnp.ones((1, 1)))
        assert abs(float(action[0, 0]) - 0.5) < 0.1, (seed, action)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    last = [r for r in records if "model_reward" in r][-1]
    assert np.all(np.isfinite(last["heldout_mse"])) and np.all(np.isfinite(last["critic_loss"]))


ARGS = [
    "train", "mbpo", "--env", "Pendulum-v1", "--steps", "500", "--learning-starts", "100",
    "--hidden-sizes", "32", "32", "--model-hidden-sizes", "32", "32", "--batch-size", "64",
    "--gradient-steps", "1", "--model-buffer-size", "2048", "--log-every", "100",
    "--checkpoint-every", "200", "--evals", "0", "--eval-episodes", "1", "--quiet",
]  # fmt: skip


def test_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """SAC's networks, the ensemble, both memories and the optimisers come back: the resumed
    run ends bit for bit where an uninterrupted one ends."""
    assert_resume_is_exact(ARGS, "mbpo", tmp_path, 200, 500)
