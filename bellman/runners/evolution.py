"""The loop of an evolution strategy, as a compiled runner family: ask -> evaluate the population
-> tell, one generation per update.

One update, for one seed (`update`):

    the generation's P members                                            (algo.ask)
    every member, and the centre, plays `episodes` fresh episodes side by side, all
      P + 1 members' envs in one vmapped step, until every episode ended or
      `max_steps` steps passed                                            (rollouts, algo.act)
    the strategy's update from the members' mean returns                  (algo.tell)

`CompiledRunner` runs chunks of these updates for every seed in one program, as for the other
families. The centre's episodes cost 1 / P more and give its return at every generation
(`center_return`); the reported evaluations are the evaluator's, of the centre (`greedy`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.contracts import EvolutionAlgorithm
from bellman.envs.core import JaxEnv
from bellman.nets import obs_features
from bellman.runners.common import env_action
from bellman.runners.compiled import CompiledRunner

EPISODE_STATISTICS = False
"""The runner counts the members' episodes itself."""


class EvolutionState(struct.PyTreeNode):
    algo: Any
    key: jax.Array


def init_state(
    algo: EvolutionAlgorithm, config: Any, env: JaxEnv, total_updates: int, key: jax.Array
) -> EvolutionState:
    key, algo_key = jax.random.split(key)
    return EvolutionState(algo.init(algo_key, config, env.spec, total_updates), key)


class Episodes(struct.PyTreeNode):
    """What the members' episodes gave: `[M, episodes]` returns and lengths, the moments of
    the observations visited (count, mean, variance over every step inside an episode), and
    the steps the loop ran (every env stepped that often, finished episodes masked)."""

    returns: jax.Array
    lengths: jax.Array
    obs_moments: tuple[jax.Array, jax.Array, jax.Array]
    loop_steps: jax.Array


def episode_keys(config: Any, key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """The `[M, episodes]` keys of the members' envs: with `common_episodes`, episode e of every
    member gets the same key (the same start, the same randomness), else each its own."""
    members, episodes = shape
    if config.common_episodes:
        keys = jax.random.split(key, episodes)
        return jnp.broadcast_to(keys, (members, *keys.shape))
    return jax.random.split(key, members * episodes).reshape((members, episodes, -1))


def rollouts(
    algo: EvolutionAlgorithm,
    config: Any,
    env: JaxEnv,
    algo_state: Any,
    members: Any,
    key: jax.Array,
) -> Episodes:
    """`config.episodes` fresh episodes of each of the members (parameters with a leading `[M]`
    axis), all stepped together until each ended or `max_steps` passed."""
    spec = env.spec
    m = jax.tree.leaves(members)[0].shape[0]
    shape = (m, config.episodes)
    key, reset_key = jax.random.split(key)
    env_state, ts = jax.vmap(jax.vmap(env.reset))(episode_keys(config, reset_key, shape))
    features = obs_features(ts.obs, spec)  # [M, E, F]
    zeros = jnp.zeros(shape, jnp.float32)
    moments = (jnp.zeros(features.shape[-1]), jnp.zeros(features.shape[-1]))
    member_act = jax.vmap(algo.act, in_axes=(None, None, None, 0, 0))

    def running(carry: tuple[Any, ...]) -> jax.Array:
        alive, t = carry[2], carry[6]
        return jnp.logical_and(alive.any(), t < config.max_steps)

    def step(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        env_state, obs, alive, returns, lengths, moments, t, key = carry
        if config.normalize_obs:  # the visited observations' sums, for ARS V2's statistics
            x = obs_features(obs, spec) * alive[..., None]
            moments = (moments[0] + x.sum(axis=(0, 1)), moments[1] + (x * x).sum(axis=(0, 1)))
        action = member_act(config, spec, algo_state, members, obs)
        key, step_key = jax.random.split(key)
        keys = episode_keys(config, step_key, shape)
        env_state, ts = jax.vmap(jax.vmap(env.step))(keys, env_state, env_action(spec, action))
        returns = returns + jnp.where(alive, ts.reward, 0.0)
        lengths = lengths + alive
        alive = jnp.logical_and(alive, ~ts.done)
        return env_state, ts.obs, alive, returns, lengths, moments, t + 1, key

    alive = jnp.ones(shape, bool)
    carry = (env_state, ts.obs, alive, zeros, zeros, moments, jnp.zeros((), jnp.int32), key)
    _, _, _, returns, lengths, (total, squares), t, _ = jax.lax.while_loop(running, step, carry)
    count = lengths.sum()
    return Episodes(returns, lengths, (count, *moments_of(count, total, squares)), t)


def moments_of(count: Any, total: Any, squares: Any) -> tuple[Any, Any]:
    """Mean and variance of observations from their count (`[...]`), sum and sum of squares
    (`[..., F]`); numpy or JAX arrays alike."""
    n = count[..., None] if getattr(count, "ndim", 0) else count
    mean = total / (n + (n == 0))
    return mean, (squares / (n + (n == 0)) - mean**2).clip(0.0)


def update(
    algo: EvolutionAlgorithm,
    config: Any,
    env: JaxEnv,
    state: EvolutionState,
    update_id: jax.Array,
) -> tuple[EvolutionState, dict[str, jax.Array]]:
    """One generation: ask, play every member's episodes (and the centre's), tell."""
    key, ask_key, play_key, tell_key = jax.random.split(state.key, 4)
    population, algo_state = algo.ask(config, env.spec, state.algo, ask_key)
    centre = algo.center(config, env.spec, algo_state)
    members = jax.tree.map(lambda p, c: jnp.concatenate([p, c[None]]), population, centre)
    played = rollouts(algo, config, env, algo_state, members, play_key)
    returns, lengths = played.returns[:-1], played.lengths[:-1]
    algo_state, metrics = algo.tell(
        config, env.spec, algo_state, population, returns.mean(axis=1), played.obs_moments,
        tell_key,
    )  # fmt: skip
    metrics = {
        **metrics,
        "center_return": played.returns[-1].mean(),
        "env_steps": lengths.sum(),
        "loop_steps": played.loop_steps.astype(jnp.float32),
        "episodes": jnp.asarray(returns.size, jnp.float32),
        "episode_return_sum": returns.sum(),
        "episode_length_sum": lengths.sum(),
    }
    return EvolutionState(algo_state, key), metrics


def CompiledEvolution(
    algo: Any,
    configs: Sequence[Any],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
) -> CompiledRunner:
    """The compiled runner of the evolution strategy, for `seeds` seeds of each config."""
    return CompiledRunner(
        sys.modules[__name__],  # type: ignore[arg-type]
        algo,
        configs,
        env,
        seeds,
        seed,
        total_updates,
        chunk_updates,
        first_seed,
    )
