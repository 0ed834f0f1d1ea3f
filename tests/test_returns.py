"""Returns and GAE against hand-computed numbers, a numpy loop and rlax; plain, jitted, vmapped."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from bellman.ops.returns import (
    discounted_returns,
    generalized_advantage_estimation,
    lambda_returns,
    td_errors,
)

# A 4-step rollout: truncated after t=1 (bootstrap from V(final obs) = 10), terminated after t=2.
R = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
V = np.array([1.0, 1.0, 1.0, 1.0], np.float32)
V_NEXT = np.array([1.0, 10.0, 1.0, 2.0], np.float32)
TERM = np.array([False, False, True, False])
TRUNC = np.array([False, True, False, False])
GAMMA, LAMBDA = 0.9, 0.5

# By hand: delta = [1 + .9 - 1, 2 + 9 - 1, 3 - 1, 4 + 1.8 - 1] = [0.9, 10, 2, 4.8];
# A_3 = 4.8, A_2 = 2 (episode ends), A_1 = 10 (episode ends), A_0 = 0.9 + 0.45 * 10 = 5.4.
GAE_BY_HAND = [5.4, 10.0, 2.0, 4.8]
# G_3 = 4 + .9 * 2, G_2 = 3, G_1 = 2 + .9 * 10, G_0 = 1 + .9 * (.5 * 1 + .5 * 11)
LAMBDA_RETURNS_BY_HAND = [6.4, 11.0, 3.0, 5.8]
# lambda = 1: G_0 = 1 + .9 * G_1
DISCOUNTED_BY_HAND = [10.9, 11.0, 3.0, 5.8]

MODES = ["plain", "jit"]


def call(fn, mode, *args):
    return (jax.jit(fn, static_argnums=tuple(range(5, len(args)))) if mode == "jit" else fn)(*args)


@pytest.mark.parametrize("mode", MODES)
def test_gae_known_values(mode: str) -> None:
    advantages = call(
        generalized_advantage_estimation, mode, R, V, V_NEXT, TERM, TRUNC, GAMMA, LAMBDA
    )
    np.testing.assert_allclose(advantages, GAE_BY_HAND, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_lambda_and_discounted_returns_known_values(mode: str) -> None:
    lam = call(lambda_returns, mode, R, V_NEXT, TERM, TRUNC, GAMMA, LAMBDA)
    np.testing.assert_allclose(lam, LAMBDA_RETURNS_BY_HAND, rtol=1e-6)
    disc = call(discounted_returns, mode, R, V_NEXT, TERM, TRUNC, GAMMA)
    np.testing.assert_allclose(disc, DISCOUNTED_BY_HAND, rtol=1e-6)


def test_truncation_bootstraps_and_termination_does_not() -> None:
    # One step: reward 0; V(s') = 5. Terminated -> delta = -V(s); truncated -> gamma * 5 - V(s).
    r, v, v1 = np.zeros(1), np.ones(1), np.full(1, 5.0)
    t, f = np.ones(1, bool), np.zeros(1, bool)
    term = generalized_advantage_estimation(r, v, v1, t, f, 0.9, 0.95)
    trunc = generalized_advantage_estimation(r, v, v1, f, t, 0.9, 0.95)
    np.testing.assert_allclose(term, [-1.0])
    np.testing.assert_allclose(trunc, [0.9 * 5.0 - 1.0])
    np.testing.assert_allclose(td_errors(r, v, v1, f, 0.9), [3.5])


def gae_numpy(r, v, v_next, term, trunc, gamma, lam):
    advantages = np.zeros_like(r)
    running = 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * (1.0 - term[t]) * v_next[t] - v[t]
        running = delta + gamma * lam * (1.0 - (term[t] or trunc[t])) * running
        advantages[t] = running
    return advantages


def random_rollout(seed: int, length: int = 64, with_truncation: bool = True):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=length).astype(np.float32)
    values = rng.normal(size=length + 1).astype(np.float32)
    term = rng.random(length) < 0.1
    trunc = (rng.random(length) < 0.1) & ~term if with_truncation else np.zeros(length, bool)
    # V(s_{t+1}): the next value, except after a cut episode, where it is a final obs's value
    v_next = values[1:].copy()
    v_next[trunc] = rng.normal(size=trunc.sum())
    return r, values[:-1], v_next, term, trunc, values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_numpy_loop(seed: int) -> None:
    r, v, v_next, term, trunc, _ = random_rollout(seed)
    ours = generalized_advantage_estimation(r, v, v_next, term, trunc, 0.99, 0.95)
    np.testing.assert_allclose(ours, gae_numpy(r, v, v_next, term, trunc, 0.99, 0.95), atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_gae_matches_rlax_without_truncation(seed: int) -> None:
    # rlax folds episode ends into the discount, which coincides with ours for terminations.
    r, v, v_next, term, trunc, values = random_rollout(seed, with_truncation=False)
    ours = generalized_advantage_estimation(r, v, v_next, term, trunc, 0.99, 0.95)
    discount = 0.99 * (1.0 - term.astype(np.float32))
    theirs = rlax.truncated_generalized_advantage_estimation(r, discount, 0.95, values)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_lambda_returns_match_rlax_with_truncation(seed: int) -> None:
    # A truncation is a full bootstrap (lambda_t = 0) with the ordinary discount.
    r, _, v_next, term, trunc, _ = random_rollout(seed)
    ours = lambda_returns(r, v_next, term, trunc, 0.99, 0.9)
    discount = 0.99 * (1.0 - term.astype(np.float32))
    lam = 0.9 * (1.0 - (term | trunc).astype(np.float32))
    theirs = rlax.lambda_returns(r, discount, v_next, lam)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    disc = discounted_returns(r, v_next, term, trunc, 0.99)
    theirs_1 = rlax.lambda_returns(r, discount, v_next, 1.0 - (term | trunc).astype(np.float32))
    np.testing.assert_allclose(disc, theirs_1, atol=1e-4)


def test_rlax_agreement_holds_jitted_and_vmapped() -> None:
    rollouts = [random_rollout(seed, length=40, with_truncation=False) for seed in range(4)]
    stack = lambda i: np.stack([ro[i] for ro in rollouts], axis=1)  # [T, B]
    r, v, v_next, term, trunc = (stack(i) for i in range(5))
    values = np.stack([ro[5] for ro in rollouts], axis=1)  # [T + 1, B]
    ours = jax.jit(
        jax.vmap(lambda *a: generalized_advantage_estimation(*a, 0.99, 0.95), in_axes=1, out_axes=1)
    )(r, v, v_next, term, trunc)
    discount = 0.99 * (1.0 - term.astype(np.float32))
    theirs = jax.vmap(
        lambda r_, d_, v_: rlax.truncated_generalized_advantage_estimation(r_, d_, 0.95, v_),
        in_axes=1,
        out_axes=1,
    )(r, discount, values)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_gae_is_lambda_return_minus_value() -> None:
    r, v, v_next, term, trunc, _ = random_rollout(3)
    # consistent values: V(s_{t+1}) = V(s_{t+1}) wherever the episode continues
    advantages = generalized_advantage_estimation(r, v, v_next, term, trunc, 0.99, 0.95)
    returns = lambda_returns(r, v_next, term, trunc, 0.99, 0.95)
    np.testing.assert_allclose(advantages + v, returns, atol=1e-4)


def test_batched_time_major_and_vmapped_agree() -> None:
    rollouts = [random_rollout(seed, length=32) for seed in range(5)]
    stack = lambda i: np.stack([ro[i] for ro in rollouts], axis=1)  # [T, B]
    r, v, v_next, term, trunc = (stack(i) for i in range(5))
    expected = np.stack([gae_numpy(*ro[:5], 0.99, 0.95) for ro in rollouts], axis=1)
    batched = generalized_advantage_estimation(r, v, v_next, term, trunc, 0.99, 0.95)
    np.testing.assert_allclose(batched, expected, atol=1e-4)
    vmapped = jax.vmap(
        lambda *a: generalized_advantage_estimation(*a, 0.99, 0.95), in_axes=1, out_axes=1
    )(r, v, v_next, term, trunc)
    np.testing.assert_allclose(vmapped, expected, atol=1e-4)
    jitted = jax.jit(jax.vmap(lambda *a: lambda_returns(*a, 0.99, 0.95), in_axes=1, out_axes=1))
    np.testing.assert_allclose(
        jitted(r, v_next, term, trunc),
        np.stack([lambda_returns(ro[0], ro[2], ro[3], ro[4], 0.99, 0.95) for ro in rollouts], 1),
        atol=1e-4,
    )
    assert isinstance(batched, jnp.ndarray)
