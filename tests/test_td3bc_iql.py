"""TD3+BC and IQL: their losses on hand numbers, learning probe/ContinuousAction-v0 from a
uniformly random dataset better than behaviour cloning can, refusals, and resume after SIGKILL."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman.algos import iql, td3bc
from bellman.contracts import DataStats
from bellman.envs.spaces import Box, Discrete, EnvSpec
from bellman.errors import ConfigError, EnvError
from tests.conftest import assert_resume_is_exact
from tests.test_offline import episode, write_probe

CONTINUOUS = EnvSpec("probe/ContinuousAction-v0", (1,), "float32", Box((1,), (-1.0,), (1.0,)), 1)


def random_action_dataset(out: Path, shift: float = 0.0, n: int = 500) -> tuple[Path, float]:
    """probe/ContinuousAction-v0's one-step episodes (observation 1, terminated) with actions
    uniform in [-1, 1] and rewards -(a - 0.5)^2 + shift; and the mean action, the action
    behaviour cloning learns."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.0, 1.0, n)
    episodes = [
        episode([[1.0], [1.0]], [[float(a)]], [shift - (float(a) - 0.5) ** 2], "terminated")
        for a in actions
    ]
    return write_probe(out, episodes, discrete=False), float(actions.mean())


# ----- the losses on hand numbers -----


def test_the_expectile_loss_on_hand_numbers() -> None:
    """|tau - 1(u < 0)| u^2 against numpy, plain, jitted and vmapped; its minimiser over a
    constant is the tau-expectile: for the values 0 and 1 and tau = 0.7, m = 0.7 (where
    0.7 (1 - m) = 0.3 m)."""
    diff = np.asarray([-2.0, -0.5, 0.0, 1.0, 3.0], np.float32)
    expected = np.where(diff < 0, 0.3, 0.7) * diff**2
    np.testing.assert_allclose(expected, [1.2, 0.075, 0.0, 0.7, 6.3], rtol=1e-6)
    np.testing.assert_allclose(iql.expectile_loss(jnp.asarray(diff), 0.7), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(iql.expectile_loss)(diff, 0.7), expected, rtol=1e-6)
    taus = jnp.asarray([0.5, 0.9])
    batched = jax.vmap(iql.expectile_loss, in_axes=(None, 0))(jnp.asarray(diff), taus)
    for tau, row in zip([0.5, 0.9], np.asarray(batched), strict=True):
        np.testing.assert_allclose(row, np.where(diff < 0, 1 - tau, tau) * diff**2, rtol=1e-6)
    values = jnp.asarray([0.0, 1.0])
    loss_of = lambda m: jnp.mean(iql.expectile_loss(values - m, 0.7))
    np.testing.assert_allclose(jax.grad(loss_of)(0.7), 0.0, atol=1e-6)
    assert jax.grad(loss_of)(0.6) < 0 < jax.grad(loss_of)(0.8)


def test_the_advantage_weights_on_hand_numbers() -> None:
    """exp(beta (Q - V)) clipped at the maximum, constants to the gradient."""
    q, v = jnp.asarray([1.0, 2.0, 11.0, -1.0]), jnp.ones(4)
    weights = iql.advantage_weights(q, v, 3.0, 100.0)
    np.testing.assert_allclose(weights, [1.0, np.exp(3.0), 100.0, np.exp(-6.0)], rtol=1e-6)
    grad = jax.grad(lambda q: jnp.sum(iql.advantage_weights(q, v, 3.0, 100.0)))(q)
    np.testing.assert_array_equal(grad, np.zeros(4))


def test_iql_scales_rewards_by_the_datasets_range_of_returns() -> None:
    """reward_scale "returns": 1000 / (max - min) of the episode returns, kept in the state;
    1 with "none" or where every return is equal."""
    stats = DataStats(
        jnp.zeros(1), jnp.ones(1), jnp.asarray(10), jnp.asarray(-3.0), jnp.asarray(1.0)
    )
    config = iql.IQLConfig(hidden_sizes=(4,))
    state = iql.init(jax.random.PRNGKey(0), config, CONTINUOUS, 10)
    assert float(state.reward_scale) == 1.0
    np.testing.assert_allclose(iql.prepare(config, CONTINUOUS, state, stats).reward_scale, 250.0)
    none = dataclasses.replace(config, reward_scale="none")
    assert float(iql.prepare(none, CONTINUOUS, state, stats).reward_scale) == 1.0
    flat = stats._replace(min_return=jnp.asarray(1.0))
    assert float(iql.prepare(config, CONTINUOUS, state, flat).reward_scale) == 1.0


def test_the_td3bc_actor_loss_normalises_q_by_its_mean_magnitude(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Q_1(s, pi(s)) = (-1, -3): lambda = 2.5 / 2 = 1.25; pi - a = ((0.5, 0.5), (0, 0)): the
    squared error averaged over 4 numbers, 0.125; the loss -1.25 * -2 + 0.125 = 2.625. lambda is
    a constant to the gradient: d loss / d Q_j = -lambda / 2 (differentiated, the Q term would
    be alpha whatever Q, its gradient 0)."""
    q_pi = jnp.asarray([-1.0, -3.0])
    pi = jnp.asarray([[0.5, 0.5], [0.0, 0.0]])
    action = jnp.zeros((2, 2))
    loss, (bc_loss, lam) = td3bc.actor_objective(q_pi, pi, action, 2.5)
    mean_abs_q = np.mean(np.abs(np.asarray(q_pi)))
    np.testing.assert_allclose(lam, 2.5 / mean_abs_q, rtol=1e-6)
    np.testing.assert_allclose(bc_loss, 0.125, rtol=1e-6)
    np.testing.assert_allclose(loss, -1.25 * -2.0 + 0.125, rtol=1e-6)
    grad = jax.grad(lambda q: td3bc.actor_objective(q, pi, action, 2.5)[0])(q_pi)
    np.testing.assert_allclose(grad, [-0.625, -0.625], rtol=1e-6)
    np.testing.assert_allclose(td3bc.bc_lambda(2.5, q_pi), 1.25, rtol=1e-6)

    # the actor's loss takes the first critic's values of the actor's actions
    monkeypatch.setattr(td3bc, "policy", lambda *args: pi)
    monkeypatch.setattr(td3bc, "q_values", lambda *args: jnp.stack([q_pi, 100.0 + q_pi]))
    config = td3bc.TD3BCConfig()
    same, _ = td3bc.actor_loss(None, config, CONTINUOUS, None, None, jnp.zeros((2, 1)), action)
    np.testing.assert_allclose(same, loss, rtol=1e-6)


@pytest.mark.parametrize(
    ("module", "overrides", "message"),
    [
        (iql, {"expectile": 1.0}, "expectile must lie in (0, 1)"),
        (iql, {"beta": 0.0}, "beta must be positive"),
        (iql, {"reward_scale": "max"}, "reward_scale must be one of none, returns"),
        (td3bc, {"policy_delay": 0}, "policy_delay must be at least 1"),
        (td3bc, {"alpha": -1.0}, "alpha must be at least 0"),
        (td3bc, {"tau": 0.0}, "tau must lie in (0, 1]"),
    ],
)
def test_bad_settings_are_refused(module, overrides, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(module.Config(), **overrides).validate()


def test_discrete_actions_are_refused_with_one_sentence() -> None:
    discrete = EnvSpec("probe/ObsAction-v0", (1,), "float32", Discrete(2), 1)
    unbounded = EnvSpec("free", (1,), "float32", Box((1,), (-np.inf,), (np.inf,)), 1)
    for module, name in ((td3bc, "td3bc"), (iql, "iql")):
        for spec in (discrete, unbounded):
            with pytest.raises(EnvError) as error:
                module.check_env(module.Config(), spec)
            message = str(error.value)
            assert message.startswith(f"{name} needs a bounded Box action space, but")
            assert spec.id in message and "\n" not in message and ". " not in message
        module.check_env(module.Config(), CONTINUOUS)


# ----- learning -----


def test_td3bc_moves_from_the_data_toward_the_best_action(tmp_path: Path) -> None:
    """From uniformly random actions, behaviour cloning learns their mean (near 0); TD3+BC's
    actor trades the critic's value against that mean and ends within 0.15 of 0.5.

    The rewards are those of the probe plus 1, 1 - (a - 0.5)^2: the same best action, but
    Q(s, pi(s)) away from 0. lambda = alpha / mean |Q(s, pi(s))| grows without bound where the
    best value is 0 (the probe's own rewards), and its spikes throw the actor about. With Q near
    1, the loss -lambda Q(p) + mean (p - a)^2 has its minimum at p = lambda / (2 (lambda + 1)):
    alpha = 10 puts it near 0.45 (the paper's 2.5 near 0.36, its BC term being strong on a
    task whose Q varies so much over the actions). A smooth critic (ELU) keeps the slope of Q
    that the actor climbs free of ReLU kinks."""
    path, data_mean = random_action_dataset(tmp_path / "random", shift=1.0)
    assert abs(data_mean) < 0.1
    run = bellman.train(
        "td3bc", "probe/ContinuousAction-v0", dataset=path, steps=3000, seeds=2, evals=0,
        learning_rate=1e-3, alpha=10.0, hidden_sizes=(32,), activation="elu",
        out=tmp_path / "run", progress=False,
    )  # fmt: skip
    # the return is -(a - 0.5)^2: each seed's greedy action within 0.15 of 0.5
    assert min(run.summary["final_return_per_seed"]) > -(0.15**2)
    last = run.metrics[-2]
    assert max(last["critic_loss"]) < 0.01 and min(last["lambda"]) > 5.0
    policy = bellman.load(tmp_path / "run")
    action = float(policy(np.ones(1, np.float32))[0])
    assert abs(action - 0.5) < 0.15 and abs(data_mean - 0.5) > 0.4  # BC's would be > 0.4


def test_iql_moves_from_the_data_toward_the_best_action(tmp_path: Path) -> None:
    """From the probe's own rewards -(a - 0.5)^2 on uniformly random actions, IQL's policy is the
    data weighted by exp(3 (Q(s, a) - V(s))): a Gaussian around 0.5 (variance 1/6) cut at 1,
    whose mean is about 0.41; the greedy action ends within 0.15 of 0.5, far from the data's
    mean (behaviour cloning's). Rewards are left unscaled: with one-step episodes "returns"
    would make them 1000 / 2.25 times larger, targets a small network needs far more steps to
    reach."""
    path, data_mean = random_action_dataset(tmp_path / "random")
    run = bellman.train(
        "iql", "probe/ContinuousAction-v0", dataset=path, steps=3000, seeds=2, evals=0,
        hidden_sizes=(32,), reward_scale="none", out=tmp_path / "run", progress=False,
    )  # fmt: skip
    assert min(run.summary["final_return_per_seed"]) > -(0.15**2)
    last = run.metrics[-2]
    assert max(last["critic_loss"]) < 0.01
    # V is the 0.7-expectile of Q over the data's actions: above their mean value
    assert all(v > q for v, q in zip(last["v"], last["q"], strict=True))
    policy = bellman.load(tmp_path / "run")
    action = float(policy(np.ones(1, np.float32))[0])
    assert abs(action - 0.5) < 0.15 and abs(data_mean - 0.5) > 0.4  # BC's would be > 0.4


def test_iql_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """The networks, the three optimisers (the policy's cosine schedule at its step), the
    reward factor and the key come back: the resumed run ends bit for bit where an
    uninterrupted one ends."""
    path, _ = random_action_dataset(tmp_path / "random")
    args = [
        "train", "iql", "--env", "probe/ContinuousAction-v0", "--dataset", str(path), "--steps",
        "10000", "--seeds", "2", "--hidden-sizes", "32", "--log-every", "500",
        "--checkpoint-every", "2000", "--evals", "0", "--eval-episodes", "1", "--quiet",
    ]  # fmt: skip
    assert_resume_is_exact(args, "iql", tmp_path, 2000, 10000)
