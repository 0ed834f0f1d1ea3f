"""bellman's action distributions against distrax's."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.distributions import Categorical, DiagGaussian, TanhGaussian


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


def test_kl_divergences_match_distrax() -> None:
    keys = jax.random.split(jax.random.PRNGKey(4), 4)
    p_logits, q_logits = (jax.random.normal(k, (5, 4)) for k in keys[:2])
    ours = Categorical(p_logits).kl(Categorical(q_logits))
    ref = distrax.Categorical(logits=p_logits).kl_divergence(distrax.Categorical(logits=q_logits))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)

    mean_p, mean_q = jax.random.normal(keys[2], (2, 6, 3))
    log_std_p, log_std_q = jax.random.normal(keys[3], (2, 6, 3)) * 0.5
    ours = DiagGaussian(mean_p, log_std_p).kl(DiagGaussian(mean_q, log_std_q))
    ref = distrax.MultivariateNormalDiag(mean_p, jnp.exp(log_std_p)).kl_divergence(
        distrax.MultivariateNormalDiag(mean_q, jnp.exp(log_std_q))
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    assert (
        float(jnp.abs(DiagGaussian(mean_p, log_std_p).kl(DiagGaussian(mean_p, log_std_p))).max())
        < 1e-6
    )


def tanh_gaussian(scale: float, offset: float) -> tuple[TanhGaussian, distrax.Distribution]:
    key_mean, key_std = jax.random.split(jax.random.PRNGKey(5))
    mean = jax.random.normal(key_mean, (6, 2))
    log_std = jax.random.normal(key_std, (6, 2)) * 0.3 - 0.5
    ours = TanhGaussian(mean, log_std, jnp.full((6, 2), scale), jnp.full((6, 2), offset))
    squash = distrax.Chain([distrax.ScalarAffine(shift=offset, scale=scale), distrax.Tanh()])
    base = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
    return ours, distrax.Transformed(base, distrax.Block(squash, 1))


def test_tanh_gaussian_log_prob_matches_distrax() -> None:
    for scale, offset in ((1.0, 0.0), (2.0, 0.0), (0.5, 1.5)):
        ours, ref = tanh_gaussian(scale, offset)
        action = ours.sample(jax.random.PRNGKey(6))
        np.testing.assert_allclose(
            ours.log_prob(action), ref.log_prob(action), rtol=1e-4, atol=1e-4
        )
        assert np.all(np.abs(np.asarray(action) - offset) <= scale)
        np.testing.assert_allclose(ours.mode(), offset + scale * jnp.tanh(ours.mean), rtol=1e-6)


def test_tanh_gaussian_density_integrates_to_one() -> None:
    # one dimension, on a fine grid of the box [offset - scale, offset + scale]
    dist = TanhGaussian(
        jnp.array([[0.7]]), jnp.array([[-0.3]]), jnp.array([[2.0]]), jnp.array([[-1.0]])
    )
    grid = jnp.linspace(-3.0 + 1e-5, 1.0 - 1e-5, 200_001)[:, None]
    density = jnp.exp(jax.vmap(lambda a: dist.log_prob(a[None])[0])(grid))
    assert float(jnp.trapezoid(density, grid[:, 0])) == pytest.approx(1.0, abs=2e-3)
