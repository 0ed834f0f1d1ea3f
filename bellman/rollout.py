"""The batch an on-policy algorithm learns from: T steps of B parallel environments, time-major."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


class Rollout(struct.PyTreeNode):
    """Transitions (s_t, a_t, r_t, s_{t+1}) collected by the current policy.

    Shapes: `obs`, `next_obs`: `[T, B, *obs_shape]`; `action`: `[T, B, *action_shape]`;
    `reward`, `terminated`, `truncated`: `[T, B]`.
    """

    obs: jax.Array
    """s_t, the observation the action was chosen on."""
    action: jax.Array
    """a_t as sampled by the policy (before any clipping to the env's bounds)."""
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    """s_{t+1}: the true next observation, the final one where an episode ended at t."""
    policy_info: Any
    """What the algorithm's `act` returned besides the action (e.g. log-prob and value)."""


def first_episode(done: jax.Array) -> jax.Array:
    """`[T, B]`: True at the steps of each env's first episode in the rollout (those up to and
    including its first `done`)."""
    done = done.astype(jnp.int32)
    return (jnp.cumsum(done, axis=0) - done) == 0
