"""Bootstrap targets of value-based learning and the target-network update.

`discount_t` is the weight of the bootstrap value: gamma^n (1 - terminated) for an n-step
transition, so a terminal state contributes nothing and a time-limit cut (truncation) still
bootstraps from the true next state. Shapes: `r_t`, `discount_t` `[B]`, Q values `[B, A]`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def q_learning_target(r_t: jax.Array, discount_t: jax.Array, q_tp1: jax.Array) -> jax.Array:
    """y = r + discount max_a Q^(s', a) (Watkins; DQN with Q^ the target network)."""
    return r_t + discount_t * jnp.max(q_tp1, axis=-1)


def double_q_target(
    r_t: jax.Array, discount_t: jax.Array, q_tp1_target: jax.Array, q_tp1_select: jax.Array
) -> jax.Array:
    """y = r + discount Q^(s', argmax_a Q(s', a)) (van Hasselt et al., 2016): the online network
    `q_tp1_select` chooses the action, the target network `q_tp1_target` rates it."""
    a_tp1 = jnp.argmax(q_tp1_select, axis=-1)
    return r_t + discount_t * jnp.take_along_axis(q_tp1_target, a_tp1[..., None], axis=-1)[..., 0]


def n_step_return(r_t: jax.Array, done_t: jax.Array, gamma: float) -> tuple[jax.Array, jax.Array]:
    """For n consecutive rewards `[n, B]` and end flags `[n, B]` (either kind of end): the
    discounted sum up to and including the first end, and gamma^m with m the steps summed."""
    total = jnp.zeros(r_t.shape[1:], jnp.float32)
    discount = jnp.ones(r_t.shape[1:], jnp.float32)
    running = jnp.ones(r_t.shape[1:], bool)
    for k in range(r_t.shape[0]):
        total = total + jnp.where(running, discount * r_t[k], 0.0)
        discount = jnp.where(running, discount * gamma, discount)
        running = running & ~done_t[k]
    return total, discount


def polyak_update(online: Any, target: Any, tau: float) -> Any:
    """theta^- <- tau theta + (1 - tau) theta^- (tau = 1: a copy; a traced tau of 1 computes
    the same copy)."""
    if isinstance(tau, float) and tau == 1.0:
        return online
    return jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)


def min_q_target(
    r_t: jax.Array, discount_t: jax.Array, q_tp1: jax.Array, bonus_tp1: jax.Array | float = 0.0
) -> jax.Array:
    """y = r + discount (min_i Q^_i(s', a') + bonus) for critics `q_tp1` `[n, B]`: with n = 1
    DDPG's target, with n = 2 TD3's clipped double-Q target (Fujimoto et al., 2018), with
    bonus = -alpha log pi(a' | s') SAC's soft target (Haarnoja et al., 2018)."""
    return r_t + discount_t * (jnp.min(q_tp1, axis=0) + bonus_tp1)
