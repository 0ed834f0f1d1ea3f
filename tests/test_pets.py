"""PETS: the ensemble's Gaussian likelihood, what it learns of known systems, the held-out
split, and the controller on a probe env."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bellman
from bellman.algos import pets
from bellman.buffers import Batch
from bellman.envs.spaces import Box, EnvSpec
from bellman.ops import dynamics
from tests.conftest import assert_resume_is_exact


def test_gaussian_nll_is_the_negative_log_density() -> None:
    y = np.array([-1.3, 0.0, 0.7, 2.5])
    mean = np.array([0.0, 0.1, 1.0, -2.0])
    var = np.array([1.0, 0.04, 2.5, 9.0])
    ours = dynamics.gaussian_nll(jnp.asarray(mean), jnp.log(jnp.asarray(var)), jnp.asarray(y))
    np.testing.assert_allclose(ours, -stats.norm.logpdf(y, mean, np.sqrt(var)), rtol=1e-5)


def _spec(obs_dim: int, action_dim: int) -> EnvSpec:
    low, high = (-1.0,) * action_dim, (1.0,) * action_dim
    return EnvSpec("linear", (obs_dim,), "float32", Box((action_dim,), low, high), 50)


def _batch(obs: jax.Array, action: jax.Array, next_obs: jax.Array, reward: jax.Array) -> Batch:
    n = obs.shape[0]
    index = jnp.stack([jnp.zeros(n, jnp.int32), jnp.arange(n, dtype=jnp.int32)], axis=1)
    ones = jnp.ones(n)
    return Batch(obs, action, reward, ones, next_obs, ones, index)


def _fit(config: pets.PETSConfig, spec: EnvSpec, sample, steps: int) -> pets.PETSState:
    state = pets.init(jax.random.PRNGKey(0), config, spec, 1)

    def step(state: pets.PETSState, key: jax.Array) -> tuple[pets.PETSState, None]:
        data_key, learn_key = jax.random.split(key)
        state, _, _ = pets.learn(config, spec, state, sample(data_key), learn_key)
        return state, None

    state, _ = jax.jit(
        lambda s: jax.lax.scan(step, s, jax.random.split(jax.random.PRNGKey(1), steps))
    )(state)
    return state


def test_the_model_recovers_a_linear_systems_matrices() -> None:
    """s' = A s + B a, r = c.s: the members' mean predictions of s' - s have the Jacobian
    [A - I, B] and of r, [c, 0], everywhere in the data's range."""
    a = jnp.array([[0.9, 0.2, 0.0], [-0.1, 0.8, 0.3], [0.0, 0.05, 1.0]])
    b = jnp.array([[0.5, 0.0], [0.0, -0.4], [0.2, 0.1]])
    c = jnp.array([1.0, -0.5, 0.25])
    spec = _spec(3, 2)
    config = pets.PETSConfig(hidden_sizes=(64, 64), holdout=0.0, batch_size=256, learning_rate=3e-3)

    def sample(key: jax.Array) -> Batch:
        k1, k2, k3 = jax.random.split(key, 3)
        s = jax.random.uniform(k1, (256, 3), minval=-2.0, maxval=2.0)
        u = jax.random.uniform(k2, (256, 2), minval=-1.0, maxval=1.0)
        noise = 0.01 * jax.random.normal(k3, (256, 3))
        return _batch(s, u, s @ a.T + u @ b.T + noise, s @ c)

    state = _fit(config, spec, sample, 3000)
    net = pets._net(config, spec)

    def mean_of(x: jax.Array) -> jax.Array:  # [s, a] -> every member's [s' - s, r], [M, 4]
        m, _ = dynamics.predict(net, state.model.params, state.model.norm, x[None, :3], x[None, 3:])
        return m[:, 0]

    expected = jnp.concatenate(
        [jnp.concatenate([a - jnp.eye(3), b], axis=1), jnp.concatenate([c, jnp.zeros(2)])[None]]
    )
    points = jax.random.uniform(jax.random.PRNGKey(7), (20, 5), minval=-0.8, maxval=0.8)
    jacobians = jax.vmap(jax.jacfwd(mean_of))(points)  # [20, M, 4, 5]
    np.testing.assert_allclose(jacobians, np.broadcast_to(expected, jacobians.shape), atol=0.05)


def test_the_ensemble_learns_a_known_gaussians_mean_and_variance() -> None:
    """s' - s ~ N(sin(3 s), (0.05 + 0.3 s^2)^2): the members' mean and standard deviation
    match theirs, and its negative log-likelihood on fresh data is within 0.05 nats of the true
    distribution's (its expected value under the true Gaussians)."""
    spec = _spec(1, 1)
    config = pets.PETSConfig(hidden_sizes=(64, 64), holdout=0.0, learning_rate=3e-3)
    mu = lambda s: jnp.sin(3.0 * s)
    sd = lambda s: 0.05 + 0.3 * s**2

    # minibatches of 1024: with 256 the gradient noise of a constant step size leaves the mean
    # off by about a fifth of the noise's scale somewhere, by how much depending on the CPU
    def sample(key: jax.Array, n: int = 1024) -> Batch:
        k1, k2, k3 = jax.random.split(key, 3)
        s = jax.random.uniform(k1, (n, 1), minval=-1.0, maxval=1.0)
        u = jax.random.uniform(k2, (n, 1), minval=-1.0, maxval=1.0)
        delta = mu(s) + sd(s) * jax.random.normal(k3, (n, 1))
        return _batch(s, u, s + delta, jnp.zeros(n))

    state = _fit(config, spec, sample, 3000)
    net = pets._net(config, spec)
    # inside the data's support [-1, 1] by a margin: at its edges a regression sees data on one
    # side only (at s = 0.9 one CPU's fit was off by just over a fifth of the noise)
    s = jnp.linspace(-0.8, 0.8, 17)[:, None]
    mean, var = dynamics.predict(net, state.model.params, state.model.norm, s, jnp.zeros_like(s))
    # the members' average, within a fifth of the noise (one CPU's fit was off by at most a
    # tenth of it)
    error = np.abs(mean[..., 0].mean(0) - mu(s)[:, 0])
    assert np.all(error < 0.2 * sd(s)[:, 0]), error
    np.testing.assert_allclose(jnp.sqrt(var[..., 0]).mean(0), sd(s)[:, 0], atol=0.03)
    fresh = sample(jax.random.PRNGKey(99), 4096)
    mean, var = dynamics.predict(net, state.model.params, state.model.norm, fresh.obs, fresh.action)
    delta = fresh.next_obs - fresh.obs
    ours = dynamics.gaussian_nll(mean[..., 0], jnp.log(var[..., 0]), delta[:, 0]).mean()
    truth = (0.5 * jnp.log(2 * math.pi * math.e * sd(fresh.obs) ** 2)).mean()
    assert abs(float(ours) - float(truth)) < 0.05


def test_held_out_transitions_are_a_fixed_share_of_the_slots() -> None:
    config = pets.PETSConfig(holdout=0.1)
    index = jnp.stack(
        [jnp.repeat(jnp.arange(4), 5000), jnp.tile(jnp.arange(5000), 4)], axis=1
    ).astype(jnp.int32)
    held = np.asarray(dynamics.held_out(index, config.holdout))
    assert 0.08 < held.mean() < 0.12
    np.testing.assert_array_equal(held, np.asarray(dynamics.held_out(index, config.holdout)))
    assert not np.asarray(dynamics.held_out(index, 0.0)).any()


def test_config_refuses_particles_the_members_cannot_share() -> None:
    from bellman.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of ensemble_size"):
        pets.PETSConfig(particles=7, ensemble_size=5).validate()


def test_pets_learns_the_probe_action_and_logs_the_models_metrics(tmp_path: Path) -> None:
    """probe/ContinuousAction-v0 pays -(a - 0.5)^2: from 100 random steps the learned reward
    model puts the planner's action near 0.5."""
    run = bellman.train(
        "pets", env="probe/ContinuousAction-v0", steps=300, seeds=2, out=tmp_path / "run",
        progress=False, evals=1, eval_episodes=20, log_every=100, learning_starts=100,
        hidden_sizes=[32, 32], population=64, elites=8, particles=5, horizon=2,
        gradient_steps=4,
    )  # fmt: skip
    assert np.all(np.asarray(run.summary["final_return_per_seed"]) > -0.01)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    last = [r for r in records if "heldout_mse" in r][-1]
    names = (
        "model_nll",
        "model_mse",
        "heldout_nll",
        "heldout_mse",
        "disagreement",
        "planned_return",
    )
    for name in names:
        assert np.all(np.isfinite(last[name])), name


ARGS = [
    "train", "pets", "--env", "Pendulum-v1", "--steps", "400", "--learning-starts", "100",
    "--hidden-sizes", "32", "32", "--population", "32", "--elites", "4", "--particles", "5",
    "--horizon", "5", "--iterations", "2", "--log-every", "100", "--checkpoint-every", "200",
    "--evals", "0", "--eval-episodes", "1", "--quiet",
]  # fmt: skip


def test_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """The ensemble, its normalisers, the optimiser, the replay memory and every env's plan
    (the runner's exploration state) come back: the resumed run ends bit for bit where an
    uninterrupted one ends."""
    assert_resume_is_exact(ARGS, "pets", tmp_path, 200, 400)
