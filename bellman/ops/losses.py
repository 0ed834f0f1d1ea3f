"""Losses on TD errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def huber(x: jax.Array, delta: float = 1.0) -> jax.Array:
    """0.5 x^2 for |x| <= delta, delta (|x| - 0.5 delta) beyond: the squared error whose
    gradient is clipped to [-delta, delta] (Mnih et al., 2015's error clipping)."""
    absolute = jnp.abs(x)
    quadratic = jnp.minimum(absolute, delta)
    return 0.5 * quadratic**2 + delta * (absolute - quadratic)


def ensemble_td_loss(
    q_t: jax.Array, target_t: jax.Array, weight_t: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """sum_i mean_j w_j (y_j - Q_i(s_j, a_j))^2 / 2: every critic of an ensemble regressed on the
    same targets (DDPG with one critic; TD3's and SAC's twin critics, Fujimoto et al., 2018).

    Args:
        q_t: `[n, B]` each critic's value of the sampled (s, a).
        target_t: `[B]` the targets y (the caller stops their gradient).
        weight_t: `[B]` importance weights of the sampled transitions (1 without prioritised
            replay).

    Returns:
        The loss and the TD errors y - Q_i `[n, B]`.
    """
    error = target_t[None, :] - q_t
    return jnp.sum(jnp.mean(weight_t * 0.5 * error**2, axis=-1)), error
