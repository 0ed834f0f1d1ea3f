"""Sampling-based trajectory optimisers for model predictive control: the cross-entropy method
and MPPI, over open-loop action sequences `[H, A]` (H steps of an A-dimensional action).

Each is one pure function of an `objective`, `[N, H, A] -> [N]`, the return (to maximise) of N
candidate action sequences, which the caller computes through a model (the env's own step
function, or a learned ensemble); the functions vmap and jit like any other.

- `cem` (Rubinstein, 1999; as in PETS, Chua et al., 2018): sample sequences from a Gaussian
  truncated to the action bounds, keep the `elites` best, move the Gaussian's mean and standard
  deviation towards theirs (`momentum` of the old ones kept), `iterations` times.
- `mppi` (Williams et al., 2017, information-theoretic MPC): perturb the mean with Gaussian noise
  of fixed standard deviation, and move it by the perturbations weighted by
  exp((R - max R) / temperature), `iterations` times; the actions are clipped to the bounds.
- `cem_categorical` and `mppi_categorical`: the same two for discrete actions, over a
  categorical distribution per step `[H, K]` (K actions): CEM refits the probabilities to the
  elites' action frequencies, MPPI to the samples' frequencies weighted as above.
- `shift` warm-starts the next step's plan: the executed first action dropped, the last one
  repeated.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

Objective = Callable[[jax.Array], jax.Array]
"""`[N, H, A]` action sequences -> `[N]` returns to maximise."""


class Plan(struct.PyTreeNode):
    """The optimiser's answer: the action sequence to follow and what it found."""

    mean: jax.Array
    """`[H, A]` the optimised sequence (its first action is executed); for discrete actions the
    probabilities `[H, K]` of each step's action (the most likely is executed)."""
    std: jax.Array
    """`[H, A]` the sampling distribution's final standard deviation (CEM; MPPI's fixed one);
    for discrete actions the probabilities' own (one-hot) standard deviation."""
    best_return: jax.Array
    """The highest return among the sampled sequences of the last iteration."""
    mean_return: jax.Array
    """The mean return of the last iteration's samples."""


def cem(
    objective: Objective,
    mean: jax.Array,
    std: jax.Array,
    key: jax.Array,
    *,
    low: jax.Array,
    high: jax.Array,
    population: int,
    elites: int,
    iterations: int,
    momentum: float = 0.1,
) -> Plan:
    """The cross-entropy method from the Gaussian (`mean`, `std`) `[H, A]` within [low, high]."""

    def iteration(carry: tuple, key: jax.Array) -> tuple[tuple, tuple[jax.Array, jax.Array]]:
        mean, std = carry
        std = jnp.maximum(std, 1e-6)
        lower, upper = (low - mean) / std, (high - mean) / std
        noise = jax.random.truncated_normal(key, lower, upper, (population, *mean.shape))
        samples = jnp.clip(mean + std * noise, low, high)
        returns = objective(samples)
        top, index = jax.lax.top_k(returns, elites)
        chosen = samples[index]
        mean = momentum * mean + (1.0 - momentum) * chosen.mean(axis=0)
        std = momentum * std + (1.0 - momentum) * chosen.std(axis=0)
        return (mean, std), (top[0], returns.mean())

    (mean, std), (best, average) = jax.lax.scan(
        iteration, (mean, std), jax.random.split(key, iterations)
    )
    return Plan(mean, std, best[-1], average[-1])


def mppi(
    objective: Objective,
    mean: jax.Array,
    std: jax.Array,
    key: jax.Array,
    *,
    low: jax.Array,
    high: jax.Array,
    population: int,
    temperature: float,
    iterations: int = 1,
) -> Plan:
    """MPPI from `mean` `[H, A]` with perturbations of standard deviation `std`."""

    def iteration(mean: jax.Array, key: jax.Array) -> tuple[jax.Array, tuple]:
        noise = std * jax.random.normal(key, (population, *mean.shape))
        samples = jnp.clip(mean + noise, low, high)
        returns = objective(samples)
        weights = jax.nn.softmax((returns - returns.max()) / temperature)
        mean = jnp.clip(mean + jnp.einsum("n,n...->...", weights, samples - mean), low, high)
        return mean, (returns.max(), returns.mean())

    mean, (best, average) = jax.lax.scan(iteration, mean, jax.random.split(key, iterations))
    return Plan(mean, std, best[-1], average[-1])


def cem_categorical(
    objective: Objective,
    probs: jax.Array,
    key: jax.Array,
    *,
    population: int,
    elites: int,
    iterations: int,
    momentum: float = 0.1,
) -> Plan:
    """The cross-entropy method over discrete action sequences `[H]` drawn from one categorical
    distribution per step, `probs` `[H, K]`; the objective takes `[N, H]` int32 actions."""
    k = probs.shape[-1]

    def iteration(probs: jax.Array, key: jax.Array) -> tuple[jax.Array, tuple]:
        logits = jnp.log(jnp.maximum(probs, 1e-12))
        samples = jax.random.categorical(key, logits, shape=(population, probs.shape[0]))
        returns = objective(samples.astype(jnp.int32))
        top, index = jax.lax.top_k(returns, elites)
        frequencies = jax.nn.one_hot(samples[index], k).mean(axis=0)
        probs = momentum * probs + (1.0 - momentum) * frequencies
        return probs, (top[0], returns.mean())

    probs, (best, average) = jax.lax.scan(iteration, probs, jax.random.split(key, iterations))
    return Plan(probs, jnp.sqrt(probs * (1.0 - probs)), best[-1], average[-1])


def mppi_categorical(
    objective: Objective,
    probs: jax.Array,
    key: jax.Array,
    *,
    population: int,
    temperature: float,
    iterations: int = 1,
    momentum: float = 0.1,
) -> Plan:
    """MPPI's weighting over discrete action sequences drawn from `probs` `[H, K]`: the
    probabilities move to the samples' one-hot actions weighted by exp((R - max R) / lambda)."""
    k = probs.shape[-1]

    def iteration(probs: jax.Array, key: jax.Array) -> tuple[jax.Array, tuple]:
        logits = jnp.log(jnp.maximum(probs, 1e-12))
        samples = jax.random.categorical(key, logits, shape=(population, probs.shape[0]))
        returns = objective(samples.astype(jnp.int32))
        weights = jax.nn.softmax((returns - returns.max()) / temperature)
        frequencies = jnp.einsum("n,nhk->hk", weights, jax.nn.one_hot(samples, k))
        probs = momentum * probs + (1.0 - momentum) * frequencies
        return probs, (returns.max(), returns.mean())

    probs, (best, average) = jax.lax.scan(iteration, probs, jax.random.split(key, iterations))
    return Plan(probs, jnp.sqrt(probs * (1.0 - probs)), best[-1], average[-1])


def shift(sequence: jax.Array) -> jax.Array:
    """`[H, ...]` -> the same sequence one step later: the first entry dropped, the last
    repeated (a receding horizon's warm start)."""
    return jnp.concatenate([sequence[1:], sequence[-1:]], axis=0)
