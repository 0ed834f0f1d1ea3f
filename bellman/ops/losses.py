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
