"""The action distributions of bellman's policies, as pytrees: sample, log-prob, entropy, mode.

Written here (instead of depending on distrax, which pulls a nightly of tensorflow-probability) and
tested against distrax in the test suite.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


class Categorical(struct.PyTreeNode):
    """A categorical distribution over the last axis of `logits`."""

    logits: jax.Array

    def log_probs(self) -> jax.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        # a one-hot product rather than an indexed gather: its gradient is elementwise, where a
        # gather's is a scatter-add, which is slow on CPU
        one_hot = jax.nn.one_hot(action, self.logits.shape[-1], dtype=self.logits.dtype)
        return jnp.sum(self.log_probs() * one_hot, axis=-1)

    def entropy(self) -> jax.Array:
        log_p = self.log_probs()
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


class DiagGaussian(struct.PyTreeNode):
    """A Gaussian with diagonal covariance over the last axis: N(mean, diag(exp(log_std))^2)."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, action: jax.Array) -> jax.Array:
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        entropy = jnp.broadcast_to(self.log_std + 0.5 * (1.0 + _LOG_2PI), self.mean.shape)
        return jnp.sum(entropy, axis=-1)

    def mode(self) -> jax.Array:
        return self.mean
