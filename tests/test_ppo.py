"""PPO: settings checks, the loss on hand-computed numbers, and what it learns on probe envs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.algos import ppo
from bellman.envs import registry
from bellman.envs.spaces import EnvSpec, Other
from bellman.errors import ConfigError, EnvError
from bellman.runners.onpolicy import CompiledOnPolicy

SPEC = EnvSpec("test", (3,), "float32", registry.resolve("CartPole-v1").spec.action_space, 500)


def test_settings_are_checked_before_anything_compiles() -> None:
    with pytest.raises(ConfigError, match=r"num_minibatches \(3\) must divide .* 512"):
        ppo.PPOConfig(num_minibatches=3).validate()
    with pytest.raises(ConfigError, match="learning_rate must be positive"):
        ppo.PPOConfig(learning_rate=-1e-3).validate()
    with pytest.raises(ConfigError, match="gamma must lie in"):
        ppo.PPOConfig(gamma=1.5).validate()
    with pytest.raises(ConfigError, match="hidden_sizes"):
        ppo.PPOConfig(hidden_sizes=()).validate()
    ppo.PPOConfig().validate()


def test_unsupported_action_space_is_refused() -> None:
    spec = dataclasses.replace(SPEC, action_space=Other("MultiDiscrete"))
    with pytest.raises(EnvError, match="ppo cannot handle the action space MultiDiscrete"):
        ppo.check_env(ppo.PPOConfig(), spec)


def batch_with_ratio(config: ppo.PPOConfig, state: ppo.PPOState, ratio: float) -> ppo.Batch:
    """Two samples whose new/old probability ratio is `ratio`, with advantages +1 and -1."""
    obs = jnp.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    action = jnp.array([0, 1])
    new_log_prob = ppo.policy(config, SPEC, state.params, obs).log_prob(action)
    return ppo.Batch(
        obs=obs,
        action=action,
        log_prob=new_log_prob - jnp.log(ratio),
        value=jnp.zeros(2),
        advantage=jnp.array([1.0, -1.0]),
        target=jnp.array([1.0, 2.0]),
    )


def test_clipped_surrogate_on_hand_computed_numbers() -> None:
    config = ppo.PPOConfig(normalize_advantages=False, ent_coef=0.0, vf_coef=0.0)
    state = ppo.init(jax.random.PRNGKey(0), config, SPEC, 10)
    # ratio 1.5, eps 0.2: A = +1 -> min(1.5, 1.2) = 1.2; A = -1 -> min(-1.5, -1.2) = -1.5
    _, metrics = ppo.loss(state.params, config, SPEC, batch_with_ratio(config, state, 1.5))
    assert float(metrics["policy_loss"]) == pytest.approx(-(1.2 - 1.5) / 2, abs=1e-5)
    assert float(metrics["clip_fraction"]) == 1.0
    # ratio 0.5: A = +1 -> min(0.5, 0.8) = 0.5; A = -1 -> min(-0.5, -0.8) = -0.8
    _, metrics = ppo.loss(state.params, config, SPEC, batch_with_ratio(config, state, 0.5))
    assert float(metrics["policy_loss"]) == pytest.approx(-(0.5 - 0.8) / 2, abs=1e-5)
    # ratio 1: no clipping, KL estimate 0
    _, metrics = ppo.loss(state.params, config, SPEC, batch_with_ratio(config, state, 1.0))
    assert float(metrics["clip_fraction"]) == 0.0
    assert float(metrics["approx_kl"]) == pytest.approx(0.0, abs=1e-6)


def test_value_loss_and_total() -> None:
    config = ppo.PPOConfig(
        normalize_advantages=False, ent_coef=0.01, vf_coef=0.5, clip_value_loss=False
    )
    state = ppo.init(jax.random.PRNGKey(1), config, SPEC, 10)
    batch = batch_with_ratio(config, state, 1.0)
    total, metrics = ppo.loss(state.params, config, SPEC, batch)
    v = ppo.value(config, SPEC, state.params, batch.obs)
    assert float(metrics["value_loss"]) == pytest.approx(float(jnp.mean((v - batch.target) ** 2)))
    expected = metrics["policy_loss"] + 0.5 * metrics["value_loss"] - 0.01 * metrics["entropy"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def test_clipped_value_loss_on_hand_computed_numbers() -> None:
    config = ppo.PPOConfig(clip_eps=0.2)
    state = ppo.init(jax.random.PRNGKey(3), config, SPEC, 10)
    batch = batch_with_ratio(config, state, 1.0)
    v = ppo.value(config, SPEC, state.params, batch.obs)
    # old values 1 below the new ones: the clipped value moves only 0.2 from the old one
    batch = batch.replace(value=v - 1.0, target=v + 3.0)
    _, metrics = ppo.loss(state.params, config, SPEC, batch)
    # max((v - (v + 3))^2, (v - 1 + 0.2 - (v + 3))^2) = max(9, 14.44)
    assert float(metrics["value_loss"]) == pytest.approx(14.44, rel=1e-4)


def test_gradient_clipping_is_by_global_norm() -> None:
    from jax.flatten_util import ravel_pytree

    config = ppo.PPOConfig(max_grad_norm=1e-3)
    state = ppo.init(jax.random.PRNGKey(2), config, SPEC, 10)
    batch = batch_with_ratio(config, state, 1.0)
    grads, _ = jax.grad(ppo.loss, has_aux=True)(state.params, config, SPEC, batch)
    flat, _ = ravel_pytree(grads)
    _, opt_state = ppo._optimizer(config).update(flat, state.opt_state)
    # Adam's first moment after one step is (1 - b1) times the clipped gradient: every
    # parameter scaled by the same factor, so that the whole gradient has norm 1e-3
    clipped = opt_state[1].mu / 0.1
    assert float(jnp.linalg.norm(clipped)) == pytest.approx(1e-3, rel=1e-4)
    np.testing.assert_allclose(clipped, flat * 1e-3 / jnp.linalg.norm(flat), rtol=1e-4, atol=1e-12)


def train_probe(env_id: str, updates: int = 60, **overrides) -> tuple[ppo.PPOConfig, object]:
    config = ppo.PPOConfig(
        num_envs=8, num_steps=16, num_minibatches=2, learning_rate=3e-3, **overrides
    )
    env = registry.resolve(env_id).jax_env
    runner = CompiledOnPolicy(ppo, [config], env, 1, 0, updates, updates)
    state, _ = runner.run_chunk(runner.init_state(), 0)
    return config, jax.tree.map(lambda x: x[0], state.algo)


def test_probe_value_of_a_constant_reward_is_one() -> None:
    config, state = train_probe("probe/ConstantReward-v0")
    v = ppo.value(config, PROBES_SPEC["probe/ConstantReward-v0"], state.params, jnp.ones((1, 1)))
    assert float(v[0]) == pytest.approx(1.0, abs=0.05)


def test_probe_policy_picks_the_rewarded_action() -> None:
    config, state = train_probe("probe/ActionReward-v0")
    spec = PROBES_SPEC["probe/ActionReward-v0"]
    assert int(ppo.greedy(config, spec, state, jnp.ones((1, 1)))[0]) == 1


def test_probe_policy_reads_its_observation() -> None:
    config, state = train_probe("probe/ObsAction-v0", updates=100)
    spec = PROBES_SPEC["probe/ObsAction-v0"]
    actions = ppo.greedy(config, spec, state, jnp.array([[1.0], [-1.0]]))
    assert actions.tolist() == [1, 0]


def test_probe_truncation_is_bootstrapped() -> None:
    # reward 1 forever, cut every 10 steps: V = 1 / (1 - 0.9) = 10. Treating the cut as a
    # terminal state would give about 4.1.
    config, state = train_probe("probe/Truncation-v0", updates=150, gamma=0.9, gae_lambda=0.9)
    spec = PROBES_SPEC["probe/Truncation-v0"]
    v = float(ppo.value(config, spec, state.params, jnp.ones((1, 1)))[0])
    assert v == pytest.approx(10.0, abs=0.5)


def test_probe_continuous_action_finds_the_optimum() -> None:
    config, state = train_probe("probe/ContinuousAction-v0", updates=150, ent_coef=0.0)
    spec = PROBES_SPEC["probe/ContinuousAction-v0"]
    action = float(ppo.greedy(config, spec, state, jnp.ones((1, 1)))[0, 0])
    assert action == pytest.approx(0.5, abs=0.1)


def test_observation_statistics_are_learned_and_used() -> None:
    config = ppo.PPOConfig(num_envs=4, num_steps=32, normalize_obs=True)
    env = registry.resolve("CartPole-v1").jax_env
    runner = CompiledOnPolicy(ppo, [config], env, 1, 0, 5, 5)
    state, _ = runner.run_chunk(runner.init_state(), 0)
    stats = jax.tree.map(lambda x: x[0], state.algo.obs_stats)
    assert float(stats.count) == pytest.approx(5 * 4 * 32, abs=1e-3)
    assert float(stats.var[1]) != pytest.approx(1.0)
    algo = jax.tree.map(lambda x: x[0], state.algo)
    obs = jnp.array([[0.05, 0.5, -0.05, -0.5]])
    spec = env.spec
    logits = ppo.policy(config, spec, algo.params, ppo._features(config, spec, algo, obs))
    shifted = algo.replace(obs_stats=stats.replace(mean=stats.mean + 1.0))
    other = ppo.policy(config, spec, algo.params, ppo._features(config, spec, shifted, obs))
    assert not np.allclose(logits.logits, other.logits), "the statistics shape the features"


PROBES_SPEC = {
    env_id: registry.resolve(env_id).spec
    for env_id in (
        "probe/ConstantReward-v0",
        "probe/ActionReward-v0",
        "probe/ObsAction-v0",
        "probe/Truncation-v0",
        "probe/ContinuousAction-v0",
    )
}
