"""bellman's action distributions against distrax's."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from bellman.distributions import Categorical, DiagGaussian


def test_categorical_matches_distrax() -> None:
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 4)) * 2.0
    actions = jnp.array([0, 3, 1, 2, 3])
    ours, ref = Categorical(logits), distrax.Categorical(logits=logits)
    np.testing.assert_allclose(ours.log_prob(actions), ref.log_prob(actions), rtol=1e-5)
    np.testing.assert_allclose(ours.entropy(), ref.entropy(), rtol=1e-5)
    np.testing.assert_array_equal(ours.mode(), ref.mode())


def test_categorical_samples_follow_the_probabilities() -> None:
    logits = jnp.log(jnp.array([0.1, 0.6, 0.3]))
    samples = Categorical(jnp.broadcast_to(logits, (20_000, 3))).sample(jax.random.PRNGKey(1))
    frequencies = np.bincount(np.asarray(samples), minlength=3) / samples.shape[0]
    np.testing.assert_allclose(frequencies, [0.1, 0.6, 0.3], atol=0.015)


def test_categorical_log_prob_gradient_is_softmax_residual() -> None:
    logits = jnp.array([0.5, -1.0, 2.0])
    grad = jax.grad(lambda z: Categorical(z).log_prob(jnp.array(1)))(logits)
    np.testing.assert_allclose(grad, jnp.eye(3)[1] - jax.nn.softmax(logits), rtol=1e-5)


def test_diag_gaussian_matches_distrax() -> None:
    key_mean, key_std, key_x = jax.random.split(jax.random.PRNGKey(2), 3)
    mean = jax.random.normal(key_mean, (6, 3))
    log_std = jax.random.normal(key_std, (6, 3)) * 0.5
    x = jax.random.normal(key_x, (6, 3))
    ours = DiagGaussian(mean, log_std)
    ref = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
    np.testing.assert_allclose(ours.log_prob(x), ref.log_prob(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.entropy(), ref.entropy(), rtol=1e-5)
    np.testing.assert_array_equal(ours.mode(), mean)


def test_diag_gaussian_samples_have_the_right_moments() -> None:
    mean = jnp.array([1.0, -2.0])
    log_std = jnp.log(jnp.array([0.5, 2.0]))
    dist = DiagGaussian(jnp.broadcast_to(mean, (50_000, 2)), jnp.broadcast_to(log_std, (50_000, 2)))
    samples = np.asarray(dist.sample(jax.random.PRNGKey(3)))
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(samples.std(0), [0.5, 2.0], rtol=0.02)
