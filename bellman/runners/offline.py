"""The loop of offline learning, as a compiled runner family: a fixed dataset in device memory,
one gradient step on a uniformly drawn minibatch per update.

One update, for one seed (`update`):

    B indices drawn uniformly from the N transitions
    the minibatch: obs, action, reward, discount = gamma (1 - terminated), next_obs
    the algorithm's gradient step                                         (algo.learn)

The dataset is the runner's shared data (`CompiledRunner(data=...)`): one copy on every device,
read by every seed and never part of a checkpoint; a resumed run reads it again from the
dataset directory its config.json names. The env is used by the evaluator alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.buffers import Batch
from bellman.contracts import DataStats, OfflineAlgorithm
from bellman.envs.core import JaxEnv
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.nets import obs_features
from bellman.runners.compiled import CompiledRunner

EPISODE_STATISTICS = False
"""No episodes are played while learning."""


class OfflineData(struct.PyTreeNode):
    """A dataset's transitions `[N, ...]` as the program reads them, and its statistics."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    stats: DataStats


def offline_data(transitions: Any, spec: EnvSpec, episode_returns: Any) -> OfflineData:
    """The program's view of a dataset's transitions (`bellman.datasets.Transitions`):
    observations as the env's dtype, discrete actions as int32, continuous ones as float32, and
    the statistics (`DataStats`) of the observations and of the episodes' returns `[episodes]`."""
    obs = np.asarray(transitions.obs).astype(spec.obs_dtype, copy=False)
    next_obs = np.asarray(transitions.next_obs).astype(spec.obs_dtype, copy=False)
    discrete = isinstance(spec.action_space, Discrete)
    action = np.asarray(transitions.action).astype(np.int32 if discrete else np.float32)
    features = np.asarray(obs_features(jnp.asarray(obs[: min(len(obs), 1_000_000)]), spec))
    stats = DataStats(
        obs_mean=jnp.asarray(features.mean(axis=0), jnp.float32),
        obs_std=jnp.asarray(features.std(axis=0), jnp.float32),
        size=jnp.asarray(len(obs), jnp.int32),
        min_return=jnp.asarray(np.min(episode_returns), jnp.float32),
        max_return=jnp.asarray(np.max(episode_returns), jnp.float32),
    )
    return OfflineData(
        obs=jnp.asarray(obs),
        action=jnp.asarray(action),
        reward=jnp.asarray(transitions.reward, jnp.float32),
        next_obs=jnp.asarray(next_obs),
        terminated=jnp.asarray(transitions.terminated, jnp.float32),
        stats=stats,
    )


class SpecOnly:
    """The env of a learner that plays none: its spec (and a name for the program cache), for an
    env the compiled programs cannot step (a gymnasium env, evaluated on the host)."""

    def __init__(self, spec: EnvSpec, name: str):
        self.spec = spec
        self.cache_key = f"spec-only {name} {spec!r}"


class OfflineState(struct.PyTreeNode):
    algo: Any
    key: jax.Array


def init_state(
    algo: OfflineAlgorithm,
    config: Any,
    env: JaxEnv,
    total_updates: int,
    key: jax.Array,
    data: OfflineData,
) -> OfflineState:
    key, algo_key = jax.random.split(key)
    state = algo.init(algo_key, config, env.spec, total_updates)
    return OfflineState(algo.prepare(config, env.spec, state, data.stats), key)


def sample(config: Any, data: OfflineData, key: jax.Array) -> Batch:
    """A minibatch of `config.batch_size` transitions drawn uniformly with replacement."""
    size = data.reward.shape[0]
    index = jax.random.randint(key, (config.batch_size,), 0, size)
    return Batch(
        obs=data.obs[index],
        action=data.action[index],
        reward=data.reward[index],
        discount=config.gamma * (1.0 - data.terminated[index]),
        next_obs=data.next_obs[index],
        weight=jnp.ones((config.batch_size,), jnp.float32),
        index=jnp.stack([jnp.zeros_like(index), index], axis=-1),
    )


def update(
    algo: OfflineAlgorithm,
    config: Any,
    env: JaxEnv,
    state: OfflineState,
    update_id: jax.Array,
    data: OfflineData,
) -> tuple[OfflineState, dict[str, jax.Array]]:
    """One gradient step on a minibatch of the dataset."""
    key, sample_key, learn_key = jax.random.split(state.key, 3)
    batch = sample(config, data, sample_key)
    algo_state, metrics = algo.learn(config, env.spec, state.algo, batch, learn_key)
    none = jnp.zeros((), jnp.float32)  # no training episodes
    episodes = {"episodes": none, "episode_return_sum": none, "episode_length_sum": none}
    return OfflineState(algo_state, key), {**metrics, **episodes}


def CompiledOffline(
    algo: Any,
    configs: Sequence[Any],
    env: JaxEnv | SpecOnly,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
    *,
    data: OfflineData,
) -> CompiledRunner:
    """The compiled runner of an offline algorithm on `data`, for `seeds` seeds of each
    config; `env` gives the spec (the loop never steps it)."""
    return CompiledRunner(
        sys.modules[__name__],  # type: ignore[arg-type]
        algo,
        configs,
        cast(JaxEnv, env),
        seeds,
        seed,
        total_updates,
        chunk_updates,
        first_seed,
        data=data,
    )
