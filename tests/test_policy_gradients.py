"""REINFORCE, A2C and PPO's KL penalty: the estimators against the exact policy gradient of a
two-step MDP, their targets on hand-computed numbers, the KL coefficient rule, and the
normalisation statistics a run saves."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman import policies
from bellman.algos import a2c, ppo, reinforce
from bellman.distributions import Categorical
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.experiment.policy import load, open_run
from bellman.ops import normalization
from bellman.rollout import Rollout

# The two-step MDP: from s0, action a0 pays R0[a0] and leads to s_(1 + a0); there action a1 pays
# R1[a0, a1] and the episode ends. Observations are one-hot state indices.
SPEC = EnvSpec("two-step", (3,), "float32", Discrete(2), 2)
R0 = np.array([1.0, -1.0])
R1 = np.array([[0.0, 2.0], [3.0, 1.0]])
TRAJECTORIES = list(itertools.product((0, 1), (0, 1)))


def episode(a0: int, a1: int) -> Rollout:
    """The episode (a0, a1) as a rollout `[T=2, B=1]` that starts at reset."""
    states = [0, 1 + a0]
    obs = jax.nn.one_hot(jnp.array(states), 3)[:, None, :]
    return Rollout(
        obs=obs,
        action=jnp.array([[a0], [a1]]),
        reward=jnp.array([[R0[a0]], [R1[a0, a1]]], jnp.float32),
        terminated=jnp.array([[False], [True]]),
        truncated=jnp.array([[False], [False]]),
        next_obs=jnp.roll(obs, -1, axis=0),
        policy_info=reinforce.PolicyInfo(),
    )


def probability(config, params, a0: int, a1: int) -> jax.Array:
    rollout = episode(a0, a1)
    log_prob = policies.policy(config, SPEC, params, rollout.obs).log_prob(rollout.action)
    return jnp.exp(log_prob.sum())


def exact_gradient(config, params, gamma: float) -> dict:
    """grad_theta J, J = sum over the four episodes of P(episode) (r0 + gamma r1)."""

    def objective(actor):
        p = {**params, "actor": actor}
        return sum(
            probability(config, p, a0, a1) * (R0[a0] + gamma * R1[a0, a1])
            for a0, a1 in TRAJECTORIES
        )

    return jax.grad(objective)(params["actor"])


def expected_estimate(config, params, surrogate) -> dict:
    """E[estimate] = sum over episodes of P(episode) times the estimator's gradient, where the
    estimator's gradient is -grad(surrogate loss) on that one episode."""
    total = jax.tree.map(jnp.zeros_like, params["actor"])
    for a0, a1 in TRAJECTORIES:
        rollout = episode(a0, a1)
        grad = jax.grad(lambda p, r=rollout: surrogate(p, r))(params)["actor"]
        weight = probability(config, params, a0, a1)
        total = jax.tree.map(lambda t, g, w=weight: t - w * g, total, grad)
    return total


def assert_trees_close(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-6)


def test_reinforce_returns_on_hand_computed_numbers() -> None:
    rollout = episode(1, 0)  # rewards -1 then 3
    config = reinforce.ReinforceConfig(gamma=0.5)
    # G_1 = 3, G_0 = -1 + 0.5 * 3 = 0.5; R(tau) = G_0 at every step
    np.testing.assert_allclose(reinforce.returns(config, rollout)[:, 0], [0.5, 3.0])
    plain = reinforce.ReinforceConfig(gamma=0.5, reward_to_go=False)
    np.testing.assert_allclose(reinforce.returns(plain, rollout)[:, 0], [0.5, 0.5])


@pytest.mark.parametrize(
    ("reward_to_go", "baseline", "gamma"),
    [(False, "none", 0.9), (True, "none", 1.0), (True, "mean", 1.0), (True, "learned", 1.0)],
)
def test_reinforce_estimator_is_the_exact_policy_gradient_in_expectation(
    reward_to_go: bool, baseline: str, gamma: float
) -> None:
    # the whole-return estimator is unbiased for any gamma; reward-to-go drops the factor
    # gamma^t of the discounted objective, so it is exact for gamma = 1 (docs/algorithms)
    config = reinforce.ReinforceConfig(reward_to_go=reward_to_go, baseline=baseline, gamma=gamma)
    params = policies.init(jax.random.PRNGKey(0), config, SPEC)
    fixed_baseline = jnp.asarray(1.7)  # the running mean's value: any constant is unbiased

    def surrogate(p, rollout):
        psi = reinforce.returns(config, rollout)
        mask = jnp.ones_like(psi)
        return reinforce.loss(
            p, config, SPEC, rollout.obs, rollout.action, psi, mask, fixed_baseline
        )[0]

    assert_trees_close(
        expected_estimate(config, params, surrogate), exact_gradient(config, params, gamma)
    )


def test_reinforce_ignores_the_steps_after_the_first_episode() -> None:
    done = jnp.array([[0, 0], [1, 0], [0, 0], [1, 1]], bool)
    mask = bellman.rollout.first_episode(done)
    assert mask[:, 0].tolist() == [True, True, False, False]
    assert mask[:, 1].tolist() == [True, True, True, True]


def test_a2c_estimator_is_the_exact_policy_gradient_in_expectation() -> None:
    # n = 2 covers the whole episode, so G^(n) is the Monte-Carlo return and V a baseline
    config = a2c.A2CConfig(num_envs=1, gamma=1.0, gae_lambda=1.0, ent_coef=0.0)
    state = a2c.init(jax.random.PRNGKey(1), config, SPEC, 10)

    def surrogate(p, rollout):
        x, advantage, target, _ = a2c.estimate(config, SPEC, state, rollout)
        return a2c.loss(p, config, SPEC, x, rollout.action, advantage, target)[0]

    # A2C averages over the batch's m = N n = 2 transitions, where J sums over the episode's 2
    # steps: its estimate is grad J / 2
    half = jax.tree.map(lambda g: g / 2, exact_gradient(config, state.params, 1.0))
    assert_trees_close(expected_estimate(config, state.params, surrogate), half)


def test_a2c_targets_are_n_step_returns() -> None:
    config = a2c.A2CConfig(num_envs=1, gamma=0.9)
    state = a2c.init(jax.random.PRNGKey(2), config, SPEC, 10)
    obs = jax.nn.one_hot(jnp.array([0, 1, 2]), 3)[:, None, :]
    next_obs = jax.nn.one_hot(jnp.array([1, 2, 0]), 3)[:, None, :]
    rollout = Rollout(
        obs=obs,
        action=jnp.zeros((3, 1), jnp.int32),
        reward=jnp.array([[1.0], [2.0], [3.0]]),
        terminated=jnp.zeros((3, 1), bool),
        truncated=jnp.zeros((3, 1), bool),
        next_obs=next_obs,
        policy_info=a2c.PolicyInfo(),
    )
    _, advantage, target, _ = a2c.estimate(config, SPEC, state, rollout)
    v = policies.value(config, SPEC, state.params, jax.nn.one_hot(jnp.arange(3), 3))
    # the rollout ends after s2 -> s0: every target bootstraps from V(s0) at the end
    g = 0.9
    expected = [1 + g * 2 + g**2 * 3 + g**3 * v[0], 2 + g * 3 + g**2 * v[0], 3 + g * v[0]]
    np.testing.assert_allclose(target[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(advantage[:, 0], np.asarray(expected) - v, rtol=1e-5, atol=1e-6)


def test_kl_coefficient_rule() -> None:
    beta = jnp.asarray(1.0)
    assert float(ppo.adapt_kl_coefficient(beta, jnp.asarray(0.005), 0.01)) == 0.5  # < 0.0067
    assert float(ppo.adapt_kl_coefficient(beta, jnp.asarray(0.02), 0.01)) == 2.0  # > 0.015
    assert float(ppo.adapt_kl_coefficient(beta, jnp.asarray(0.01), 0.01)) == 1.0
    assert float(ppo.adapt_kl_coefficient(beta, jnp.asarray(0.0067), 0.01)) == 1.0
    assert float(ppo.adapt_kl_coefficient(beta, jnp.asarray(0.0149), 0.01)) == 1.0


def test_kl_penalty_objective_on_hand_computed_numbers() -> None:
    config = ppo.PPOConfig(objective="kl", normalize_advantages=False, ent_coef=0.0, vf_coef=0.0)
    state = ppo.init(jax.random.PRNGKey(3), config, SPEC, 10)
    obs = jax.nn.one_hot(jnp.array([0, 1]), 3)
    action = jnp.array([0, 1])
    new = policies.policy(config, SPEC, state.params, obs)
    old = Categorical(jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]])))
    batch = ppo.Batch(
        obs=obs,
        action=action,
        log_prob=old.log_prob(action),
        value=jnp.zeros(2),
        advantage=jnp.array([1.0, -2.0]),
        target=jnp.zeros(2),
        old_policy=old,
    )
    _, metrics = ppo.loss(state.params, config, SPEC, batch, kl_beta=3.0)
    p_new = np.exp(np.asarray(new.log_probs()))
    p_old = np.array([[0.5, 0.5], [0.9, 0.1]])
    kl = np.mean(np.sum(p_old * np.log(p_old / p_new), axis=1))
    ratio = p_new[[0, 1], [0, 1]] / p_old[[0, 1], [0, 1]]
    expected = -np.mean(ratio * np.array([1.0, -2.0])) + 3.0 * kl
    assert float(metrics["kl"]) == pytest.approx(kl, rel=1e-5)
    assert float(metrics["policy_loss"]) == pytest.approx(expected, rel=1e-5)


def test_kl_variant_adapts_beta_after_each_update() -> None:
    from bellman.envs import registry
    from bellman.runners.onpolicy import CompiledOnPolicy

    config = ppo.PPOConfig(objective="kl", kl_target=1e-6, num_envs=4, num_steps=32)
    env = registry.resolve("CartPole-v1").jax_env
    runner = CompiledOnPolicy(ppo, [config], env, 1, 0, 3, 3)
    state, result = runner.run_chunk(runner.init_state(), 0)
    # any learning moves pi far more than 1e-6 nats: beta doubles at each of the 3 updates
    assert float(state.algo.kl_beta[0]) == pytest.approx(8.0)
    assert result.metrics["kl"][0] > 1.5e-6
    assert result.metrics["kl_beta"][0] == pytest.approx((1 + 2 + 4) / 3)


def test_reward_scaling_on_hand_computed_numbers() -> None:
    scaler = normalization.RewardScaler.create(1)
    reward = jnp.array([[1.0], [1.0], [1.0]])
    done = jnp.array([[False], [True], [False]])
    scaler, scaled = normalization.scale_rewards(scaler, reward, done, gamma=0.5)
    # discounted returns: 1, 0.5 * 1 + 1 = 1.5 (the episode ends), then 1 again
    returns = np.array([1.0, 1.5, 1.0])
    assert float(scaler.discounted_return[0]) == 1.0
    # (the statistics start from a prior of weight 1e-4: a 0.2% difference here)
    np.testing.assert_allclose(scaler.stats.mean, returns.mean(), rtol=5e-3)
    np.testing.assert_allclose(scaler.stats.var, returns.var(), rtol=5e-3)
    np.testing.assert_allclose(scaled[:, 0], 1.0 / np.sqrt(returns.var()), rtol=5e-3)


def test_normalisation_statistics_are_saved_and_used_to_evaluate(tmp_path: Path) -> None:
    run = bellman.train(
        "ppo",
        env="Pendulum-v1",
        steps=4096,
        out=tmp_path / "run",
        progress=False,
        evals=0,
        eval_episodes=2,
        num_envs=4,
        num_steps=256,
        normalize_obs=True,
        normalize_reward=True,
    )
    saved = open_run(tmp_path / "run").algo_state
    for part in ("obs_stats", "reward_scaler"):
        leaves = zip(
            jax.tree.leaves(getattr(saved, part)),
            jax.tree.leaves(getattr(run.algo_state, part)),
            strict=True,
        )
        for a, b in leaves:
            np.testing.assert_array_equal(a, b)
    assert float(saved.obs_stats.count[0]) == pytest.approx(4096, abs=1e-2)
    assert float(saved.reward_scaler.stats.count[0]) == pytest.approx(4096, abs=1e-2)

    policy = load(tmp_path / "run")
    obs = np.array([[0.3, -0.9, 2.0], [-1.0, 0.1, -4.0]], np.float32)
    config = run_config(tmp_path / "run")
    state = jax.tree.map(lambda x: x[0], saved)
    x = normalization.normalize(state.obs_stats, jnp.asarray(obs))
    expected = policies.policy(config, policy.spec, state.params, x).mode()
    np.testing.assert_allclose(policy(obs), np.clip(expected, -2.0, 2.0), rtol=1e-5)


def run_config(run_dir: Path) -> ppo.PPOConfig:
    return open_run(run_dir).config


@pytest.mark.parametrize(
    ("module", "updates", "overrides"),
    [
        (reinforce, 2000, {"num_envs": 16, "num_steps": 1, "learning_rate": 3e-3,
                           "baseline": "mean"}),
        (reinforce, 2000, {"num_envs": 16, "num_steps": 1, "learning_rate": 3e-3,
                           "squash": True}),
        (a2c, 2000, {"num_envs": 16, "num_steps": 1, "learning_rate": 3e-3, "ent_coef": 0.0}),
        (ppo, 300, {"num_envs": 16, "num_steps": 8, "learning_rate": 3e-3, "squash": True,
                    "ent_coef": 0.0}),
    ],
)  # fmt: skip
def test_gaussian_policies_find_the_best_continuous_action(module, updates, overrides) -> None:
    from bellman.envs import registry
    from bellman.runners.onpolicy import CompiledOnPolicy

    env = registry.resolve("probe/ContinuousAction-v0").jax_env  # reward -(a - 0.5)^2
    config = module.Config(**overrides)
    runner = CompiledOnPolicy(module, [config], env, 1, 0, updates, updates)
    state, _ = runner.run_chunk(runner.init_state(), 0)
    algo = jax.tree.map(lambda x: x[0], state.algo)
    action = float(module.greedy(config, env.spec, algo, jnp.ones((1, 1)))[0, 0])
    assert action == pytest.approx(0.5, abs=0.1)


def test_ppo_trains_on_mujoco_with_the_papers_preset(tmp_path: Path) -> None:
    run = bellman.train(
        "ppo",
        env="HalfCheetah-v5",
        steps=4096,
        out=tmp_path / "run",
        progress=False,
        evals=0,
        eval_episodes=1,
    )
    assert run.summary["backend"] == "gymnasium"
    config = open_run(tmp_path / "run").config
    assert (config.num_envs, config.num_steps, config.num_epochs) == (1, 2048, 10)
    assert config.batch_size // config.num_minibatches == 64
    assert config.normalize_obs and config.normalize_reward
    assert float(run.algo_state.obs_stats.count[0]) == pytest.approx(4096, abs=1e-2)
    assert run.algo_state.params["log_std"].shape == (1, 6)
    assert np.isfinite(run.final_return)
