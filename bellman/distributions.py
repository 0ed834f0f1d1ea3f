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

    def kl(self, other: Categorical) -> jax.Array:
        """KL[self || other] = sum_a p(a) (log p(a) - log q(a))."""
        log_p = self.log_probs()
        return jnp.sum(jnp.exp(log_p) * (log_p - other.log_probs()), axis=-1)


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

    def kl(self, other: DiagGaussian) -> jax.Array:
        """KL[self || other], summed over the independent dimensions:
        log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2 for each."""
        ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        z = (self.mean - other.mean) * jnp.exp(-other.log_std)
        return jnp.sum(other.log_std - self.log_std + 0.5 * (ratio + z**2 - 1.0), axis=-1)


class TanhGaussian(struct.PyTreeNode):
    """a = offset + scale * tanh(u), u ~ N(mean, diag(exp(log_std))^2): a Gaussian squashed into
    the box [offset - scale, offset + scale] (Haarnoja et al., 2018, appendix C).

    log pi(a) = log N(u) - sum_i log(scale_i (1 - tanh(u_i)^2)), with
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) for numerical stability. The entropy has
    no closed form; `entropy` approximates it, see its docstring.
    """

    mean: jax.Array
    log_std: jax.Array
    scale: jax.Array
    offset: jax.Array

    def _gaussian(self) -> DiagGaussian:
        return DiagGaussian(self.mean, self.log_std)

    def _log_det(self, u: jax.Array) -> jax.Array:
        log_one_minus_tanh2 = 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))
        return jnp.sum(jnp.log(self.scale) + log_one_minus_tanh2, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return self.offset + self.scale * jnp.tanh(self._gaussian().sample(key))

    def pre_squash(self, action: jax.Array, eps: float = 1e-6) -> jax.Array:
        """u = atanh((a - offset) / scale), with the argument kept inside (-1, 1)."""
        y = jnp.clip((action - self.offset) / self.scale, -1.0 + eps, 1.0 - eps)
        return jnp.arctanh(y)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return self._log_prob_of_u(self.pre_squash(action))

    def _log_prob_of_u(self, u: jax.Array) -> jax.Array:
        """log pi(a) for a = offset + scale tanh(u): the change of variables."""
        return self._gaussian().log_prob(u) - self._log_det(u)

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A reparameterised sample a = offset + scale tanh(mean + std eps) and its log-prob,
        computed from u itself (no atanh of a saturated action): differentiable in mean and
        log_std, as SAC's policy loss needs."""
        u = self._gaussian().sample(key)
        return self.offset + self.scale * jnp.tanh(u), self._log_prob_of_u(u)

    def entropy(self) -> jax.Array:
        """H[a] = H[u] + E[log |da/du|], with the expectation estimated at u = mean (a
        deterministic, differentiable stand-in for the sampled estimate)."""
        return self._gaussian().entropy() + self._log_det(self.mean)

    def mode(self) -> jax.Array:
        """The image of the Gaussian's mode (the action an evaluation takes)."""
        return self.offset + self.scale * jnp.tanh(self.mean)

    def kl(self, other: TanhGaussian) -> jax.Array:
        """KL is invariant under the same invertible squashing: that of the Gaussians."""
        return self._gaussian().kl(other._gaussian())
