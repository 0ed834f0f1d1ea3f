"""Conservative Q-Learning (`bellman.algos.cql`): the penalty's two estimates on hand numbers,
learning the probes with either kind of action, a Q that is lower off the data, refusals, and
resume after SIGKILL."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman.algos import bc, cql
from bellman.envs.spaces import Box, Discrete, EnvSpec
from bellman.errors import ConfigError, EnvError
from tests.conftest import assert_resume_is_exact
from tests.test_offline import episode, write_probe

OBS_ACTION = EnvSpec("probe/ObsAction-v0", (1,), "float32", Discrete(2), 1)
CONTINUOUS = EnvSpec("probe/ContinuousAction-v0", (1,), "float32", Box((1,), (-1.0,), (1.0,)), 1)


def continuous_dataset(out: Path, n: int = 500, seed: int = 0) -> Path:
    """probe/ContinuousAction-v0's one-step episodes (observation 1) with actions uniform in
    [-1, 1] and their rewards -(a - 0.5)^2."""
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    episodes = [
        episode([[1.0], [1.0]], [[float(a)]], [-((a - 0.5) ** 2)], "terminated") for a in actions
    ]
    return write_probe(out, episodes, discrete=False)


def obs_action_dataset(out: Path, actions: list[int] | None, n: int = 300, seed: int = 0) -> Path:
    """probe/ObsAction-v0's one-step episodes: observation +-1, an action drawn from `actions`
    (None: 0 or 1 at random), reward 1 where the action is 1 for +1 and 0 for -1."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], n)
    chosen = rng.choice(actions if actions is not None else [0, 1], n)
    episodes = [
        episode([[s], [s]], [int(a)], [float(a == (s > 0))], "terminated")
        for s, a in zip(signs, chosen, strict=True)
    ]
    return write_probe(out, episodes)


def test_the_penalty_on_hand_numbers() -> None:
    """Discrete: logsumexp_b Q(s, b) - Q(s, a). Continuous: log sum_k exp(Q_k - log mu_k), and,
    less log K, it estimates log int exp Q(a) da: for Q(a) = a on [-1, 1], log(e - 1/e)."""
    q = jnp.asarray([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 5.0, 0.5]])
    action = jnp.asarray([0, 2, 1])
    expected = np.log(np.exp(np.asarray(q)).sum(axis=-1)) - np.asarray([1.0, 0.0, 5.0])
    np.testing.assert_allclose(cql.discrete_gap(q, action), expected, rtol=1e-6)
    np.testing.assert_allclose(expected[1], np.log(3.0), rtol=1e-6)

    q = jnp.asarray([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0]])
    log_density = jnp.asarray([[np.log(0.5), 1.2, -0.3, 0.0], [np.log(0.5), 0.0, 2.0, -1.0]])
    expected = np.log(np.exp(np.asarray(q) - np.asarray(log_density)).sum(axis=-1))
    got = cql.importance_sampled_logsumexp(q, log_density)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(cql.importance_sampled_logsumexp)(q, log_density), got)

    k = 200_000
    a = jax.random.uniform(jax.random.key(0), (k,), minval=-1.0, maxval=1.0)
    estimate = cql.importance_sampled_logsumexp(a, jnp.full((k,), np.log(0.5))) - np.log(k)
    np.testing.assert_allclose(estimate, np.log(np.e - 1 / np.e), atol=0.01)


def test_the_sampled_actions_and_their_log_densities() -> None:
    """N actions each from the box's uniform (log density -log volume), pi(.|s) and pi(.|s'),
    their log-densities the policy's own log-probs."""
    spec = EnvSpec("hand", (3,), "float32", Box((2,), (-1.0, 0.0), (1.0, 4.0)), 1)
    config = cql.CQLConfig(hidden_sizes=(8,), cql_samples=5)
    state = jax.jit(cql.init, static_argnums=(1, 2, 3))(jax.random.key(0), config, spec, 1)
    x, next_x = jnp.ones((4, 3)), -jnp.ones((4, 3))
    actions, log_density = cql.cql_actions(config, spec, state.actor, x, next_x, jax.random.key(1))
    assert actions.shape == (4, 15, 2) and log_density.shape == (4, 15)
    uniform = np.asarray(actions[:, :5])
    assert (uniform[..., 0] >= -1).all() and (uniform[..., 1] >= 0).all()
    assert (uniform[..., 0] <= 1).all() and (uniform[..., 1] <= 4).all()
    np.testing.assert_allclose(log_density[:, :5], -np.log(2.0 * 4.0), rtol=1e-6)
    current = cql.policy(config, spec, state.actor, x)
    following = cql.policy(config, spec, state.actor, next_x)
    np.testing.assert_allclose(
        log_density[:, 5:10], current.log_prob(actions[:, 5:10].transpose(1, 0, 2)).T, atol=1e-3
    )
    np.testing.assert_allclose(
        log_density[:, 10:], following.log_prob(actions[:, 10:].transpose(1, 0, 2)).T, atol=1e-3
    )


def test_cql_finds_the_continuous_optimum_that_cloning_misses(tmp_path: Path) -> None:
    """From actions uniform in [-1, 1] (cloning would give about 0), the greedy action of
    probe/ContinuousAction-v0 ends within 0.15 of 0.5, for every seed. cql_alpha is 1: the
    rewards span 2.25, not the hundreds of D4RL's returns, and the paper's 5 flattens this Q to
    differences of a few thousandths near the optimum."""
    path = continuous_dataset(tmp_path / "uniform")
    run = bellman.train(
        "cql", "probe/ContinuousAction-v0", dataset=path, steps=1500, seeds=2, evals=0,
        eval_episodes=2, hidden_sizes=(32, 32), batch_size=64, cql_samples=4, cql_alpha=1.0,
        actor_learning_rate=1e-3, critic_learning_rate=1e-3, out=tmp_path / "run",
        progress=False,
    )  # fmt: skip
    greedy = jax.vmap(lambda s: cql.greedy(run.config, CONTINUOUS, s, jnp.ones((1, 1))))
    actions = np.asarray(greedy(run.algo_state)).ravel()
    assert np.all(np.abs(actions - 0.5) < 0.15), actions
    last = run.metrics[-2]
    assert {"critic_loss", "cql_penalty", "q_data", "actor_loss", "alpha", "entropy"} <= set(last)
    assert min(run.summary["final_return_per_seed"]) > -(0.15**2)  # the reward of 0.5 +- 0.15


def test_cql_learns_the_observation_dependent_action_from_random_actions(tmp_path: Path) -> None:
    """From random actions, the greedy policy is right in every episode of probe/ObsAction-v0
    (return 1), for every seed."""
    path = obs_action_dataset(tmp_path / "random", None)
    run = bellman.train(
        "cql", "probe/ObsAction-v0", dataset=path, steps=300, seeds=3, evals=0,
        discrete_hidden_sizes=(16,), critic_learning_rate=1e-2, target_update_interval=50,
        out=tmp_path / "run", progress=False,
    )  # fmt: skip
    assert run.summary["final_return_per_seed"] == [1.0, 1.0, 1.0]
    assert {"critic_loss", "cql_penalty", "q_data"} <= set(run.metrics[-2])


def q_values(config: cql.CQLConfig, state: cql.DiscreteState, obs: jax.Array) -> jax.Array:
    """Q(s, .) `[B, 2]` of probe/ObsAction-v0's observations `[B, 1]`."""
    return cql.q_values(config, OBS_ACTION, state.params, bc.features(OBS_ACTION, state, obs))


def test_the_penalty_keeps_q_low_on_the_action_the_data_lacks(tmp_path: Path) -> None:
    """A dataset of action 0 alone: without the penalty, Q(s, 1) stays where the network put it
    (near 0); with it, Q(s, 1) ends well below, and below Q(s, 0) in both states."""
    path = obs_action_dataset(tmp_path / "only-0", [0])
    obs = jnp.asarray([[-1.0], [1.0]])
    q = {}  # [seeds, 2 states, 2 actions] for each weight
    for alpha in (0.0, 1.0):
        run = bellman.train(
            "cql", "probe/ObsAction-v0", dataset=path, steps=300, seeds=2, evals=0,
            discrete_hidden_sizes=(16,), critic_learning_rate=1e-2, target_update_interval=50,
            cql_alpha_discrete=alpha, out=tmp_path / f"run-{alpha}", progress=False,
        )  # fmt: skip
        q[alpha] = np.asarray(jax.vmap(lambda s, c=run.config: q_values(c, s, obs))(run.algo_state))
    assert np.all(q[1.0][..., 1] < q[0.0][..., 1] - 0.5), (q[0.0], q[1.0])
    assert np.all(q[1.0][..., 1] < q[1.0][..., 0])
    np.testing.assert_allclose(q[0.0][:, 0, 0], 1.0, atol=0.1)  # the data's action: r = 1


def test_what_cql_refuses() -> None:
    unbounded = EnvSpec("hand", (1,), "float32", Box((1,), (-np.inf,), (np.inf,)), 1)
    with pytest.raises(EnvError, match="Discrete and bounded Box"):
        cql.check_env(cql.CQLConfig(), unbounded)
    cql.check_env(cql.CQLConfig(), OBS_ACTION)
    cql.check_env(cql.CQLConfig(), CONTINUOUS)
    for bad, message in (
        ({"cql_alpha": -1.0}, "cql_alpha must be at least 0"),
        ({"cql_samples": 0}, "cql_samples must be at least 1"),
        ({"tau": 0.0}, "tau must lie in (0, 1]"),
        ({"discrete_hidden_sizes": ()}, "discrete_hidden_sizes must be one or more"),
        ({"lagrange_threshold": -1.0}, "lagrange_threshold must be at least 0"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
            cql.CQLConfig(**bad).validate()


def test_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """Continuous CQL with the Lagrange multiplier and cloning steps (every part of its state
    moving): the resumed run ends bit for bit where an uninterrupted one ends."""
    path = continuous_dataset(tmp_path / "uniform", n=100)
    args = [
        "train", "cql", "--env", "probe/ContinuousAction-v0", "--dataset", str(path),
        "--steps", "4000", "--seeds", "2", "--hidden-sizes", "8", "--batch-size", "16",
        "--cql-samples", "2", "--lagrange-threshold", "1.0", "--bc-steps", "1000",
        "--log-every", "500", "--checkpoint-every", "500", "--evals", "0",
        "--eval-episodes", "1", "--quiet",
    ]  # fmt: skip
    assert_resume_is_exact(args, "cql", tmp_path, 500, 4000)
