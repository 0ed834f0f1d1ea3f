"""Running mean and variance of observations (Chan et al.'s parallel update), for normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


class RunningMeanStd(struct.PyTreeNode):
    """Statistics of everything seen so far; `count` starts at a tiny value to avoid 0/0."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.asarray(1e-4, jnp.float32),
        )


def update(stats: RunningMeanStd, batch: jax.Array) -> RunningMeanStd:
    """Merge a batch `[N, *shape]` (any number of leading axes) into the statistics."""
    shape = stats.mean.shape
    x = batch.reshape((-1, *shape)).astype(jnp.float32)
    return merge(stats, jnp.asarray(x.shape[0], jnp.float32), x.mean(axis=0), x.var(axis=0))


def merge(
    stats: RunningMeanStd, batch_count: jax.Array, batch_mean: jax.Array, batch_var: jax.Array
) -> RunningMeanStd:
    """Merge the count, mean and variance of a batch into the statistics (Chan et al.)."""
    delta = batch_mean - stats.mean
    total = stats.count + batch_count
    mean = stats.mean + delta * batch_count / total
    m2 = (
        stats.var * stats.count
        + batch_var * batch_count
        + delta**2 * stats.count * batch_count / total
    )
    return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize(stats: RunningMeanStd, x: jax.Array, clip: float = 10.0) -> jax.Array:
    """(x - mean) / sqrt(var + 1e-8), clipped to [-clip, clip]."""
    z = (x.astype(jnp.float32) - stats.mean) / jnp.sqrt(stats.var + 1e-8)
    return jnp.clip(z, -clip, clip)


class RewardScaler(struct.PyTreeNode):
    """Reward scaling as in OpenAI Baselines' VecNormalize: rewards are divided by the running
    standard deviation of the discounted return, accumulated per env."""

    stats: RunningMeanStd
    """Statistics of the discounted returns seen so far (a scalar)."""
    discounted_return: jax.Array
    """`[B]` each env's discounted return of its current episode so far."""

    @classmethod
    def create(cls, num_envs: int) -> RewardScaler:
        return cls(RunningMeanStd.create(()), jnp.zeros((num_envs,), jnp.float32))


def scale_rewards(
    scaler: RewardScaler,
    reward: jax.Array,
    done: jax.Array,
    gamma: float,
    clip: float = 10.0,
) -> tuple[RewardScaler, jax.Array]:
    """Scale a rollout's rewards `[T, B]`; `done` `[T, B]` ends an env's episode after step t.

    R_t = gamma R_{t-1} + r_t (R restarts at 0 after an episode ends); the statistics take in the
    rollout's R_t, then r_t / sqrt(Var[R] + 1e-8) is returned, clipped to [-clip, clip].
    """

    def accumulate(
        running: jax.Array, step: tuple[jax.Array, jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        r, ended = step
        running = gamma * running + r
        return jnp.where(ended, 0.0, running), running

    returns: jax.Array
    running, returns = jax.lax.scan(
        accumulate, scaler.discounted_return, (reward.astype(jnp.float32), done)
    )
    stats = update(scaler.stats, returns)
    scaled = jnp.clip(reward / jnp.sqrt(stats.var + 1e-8), -clip, clip)
    return RewardScaler(stats, running), scaled


def standardize(x: jax.Array, mean: jax.Array, std: jax.Array, eps: float = 1e-3) -> jax.Array:
    """(x - mean) / (std + eps): features standardised by a dataset's fixed statistics (the
    offline algorithms' state normalisation, as TD3+BC's paper does it)."""
    return (x - mean) / (std + eps)
