"""Discounted returns and generalized advantage estimation that tell termination from truncation.

All arrays are time-major, `[T, ...]`: any trailing axes (envs, seeds) are carried along, so the
functions run on one trajectory, on a `[T, B]` rollout, or under `jax.vmap`.

Conventions, for each step t of a rollout:
- `r_t`: reward of the transition s_t -> s_{t+1};
- `v_t`: V(s_t); `v_tp1`: V(s_{t+1}), the value of the *true* next state (for an episode that ended
  at t, the value of its final observation, not of the next episode's first one);
- `terminated_t`: s_{t+1} is terminal, so nothing is bootstrapped from it;
- `truncated_t`: the episode was cut after t (time limit); V(s_{t+1}) is still bootstrapped.
Either flag ends the episode, so the recursion never carries across an episode boundary; the last
step of the rollout bootstraps from `v_tp1`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _not(flag: jax.Array) -> jax.Array:
    return 1.0 - flag.astype(jnp.float32)


def td_errors(
    r_t: jax.Array, v_t: jax.Array, v_tp1: jax.Array, terminated_t: jax.Array, gamma: float
) -> jax.Array:
    """delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)."""
    return r_t + gamma * _not(terminated_t) * v_tp1 - v_t


def generalized_advantage_estimation(
    r_t: jax.Array,
    v_t: jax.Array,
    v_tp1: jax.Array,
    terminated_t: jax.Array,
    truncated_t: jax.Array,
    gamma: float,
    lambda_: float,
) -> jax.Array:
    """GAE(gamma, lambda) advantages (Schulman et al., 2016, eq. 16), `[T, ...]`.

    A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}, with A_T = 0 past the rollout's end and
    done_t = terminated_t or truncated_t.
    """
    delta_t = td_errors(r_t, v_t, v_tp1, terminated_t, gamma)
    trace_t = gamma * lambda_ * _not(jnp.logical_or(terminated_t, truncated_t))

    def backward(
        a_next: jax.Array, step: tuple[jax.Array, jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        delta, trace = step
        a = delta + trace * a_next
        return a, a

    advantages: jax.Array
    _, advantages = lax.scan(backward, jnp.zeros_like(delta_t[0]), (delta_t, trace_t), reverse=True)
    return advantages


def lambda_returns(
    r_t: jax.Array,
    v_tp1: jax.Array,
    terminated_t: jax.Array,
    truncated_t: jax.Array,
    gamma: float,
    lambda_: float,
) -> jax.Array:
    """TD(lambda) returns G_t^lambda, `[T, ...]` (Sutton and Barto, eq. 12.3, recursive form).

    G_t = r_t + gamma (1 - terminated_t) [(1 - l_t) V(s_{t+1}) + l_t G_{t+1}], where
    l_t = lambda (1 - done_t) inside the rollout and 0 at its last step.
    """
    continues_t = lambda_ * _not(jnp.logical_or(terminated_t, truncated_t))
    continues_t = continues_t.at[-1].set(0.0)
    discount_t = gamma * _not(terminated_t)

    def backward(
        g_next: jax.Array, step: tuple[jax.Array, jax.Array, jax.Array, jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        r, discount, v_next, lam = step
        g = r + discount * ((1.0 - lam) * v_next + lam * g_next)
        return g, g

    steps = (r_t, discount_t, v_tp1, continues_t)
    returns: jax.Array
    _, returns = lax.scan(backward, jnp.zeros_like(r_t[0]), steps, reverse=True)
    return returns


def discounted_returns(
    r_t: jax.Array,
    v_tp1: jax.Array,
    terminated_t: jax.Array,
    truncated_t: jax.Array,
    gamma: float,
) -> jax.Array:
    """Reward-to-go G_t = r_t + gamma G_{t+1} within each episode, `[T, ...]`.

    A truncated episode, and the rollout's last step, bootstrap from V(s_{t+1}); pass zeros as
    `v_tp1` for pure Monte-Carlo returns of complete episodes.
    """
    return lambda_returns(r_t, v_tp1, terminated_t, truncated_t, gamma, 1.0)
