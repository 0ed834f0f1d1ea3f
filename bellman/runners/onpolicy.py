"""The on-policy loop, compiled: rollout -> learn, with env and agent in one XLA program.

`init_state` and `update` are pure functions of one seed's `RunnerState`, driven chunk after chunk
for every seed at once by `runners.compiled.CompiledRunner` (`CompiledOnPolicy` below).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.contracts import OnPolicyAlgorithm
from bellman.envs.core import JaxEnv
from bellman.rollout import Rollout, first_episode
from bellman.runners.common import EpisodeTotals, env_action
from bellman.runners.compiled import CompiledRunner

EPISODE_STATISTICS = True
"""The runner counts episodes with `EpisodeStatistics`."""


class RunnerState(struct.PyTreeNode):
    """Everything one seed's training needs to continue exactly."""

    algo: Any
    """The algorithm's state: parameters, optimiser, normalisation statistics."""
    env_state: Any
    """`[B]` env states, with running episode statistics."""
    obs: jax.Array
    """`[B, *obs_shape]` observations to act on next."""
    key: jax.Array


def init_state(
    algo: OnPolicyAlgorithm, config: Any, env: JaxEnv, total_updates: int, key: jax.Array
) -> RunnerState:
    """Initial networks and `config.num_envs` freshly reset envs for one seed."""
    key, algo_key, reset_key = jax.random.split(key, 3)
    algo_state = algo.init(algo_key, config, env.spec, total_updates)
    env_state, timestep = jax.vmap(env.reset)(jax.random.split(reset_key, config.num_envs))
    return RunnerState(algo_state, env_state, timestep.obs, key)


def rollout(
    algo: OnPolicyAlgorithm, config: Any, env: JaxEnv, state: RunnerState
) -> tuple[RunnerState, Rollout, EpisodeTotals]:
    """Run the current policy for `config.num_steps` steps in every env.

    For an `EPISODIC` algorithm (REINFORCE) every env is reset first, and only each env's first
    episode is counted in the returned totals (the one the algorithm learns from).
    """
    episodic = algo.EPISODIC
    if episodic:
        key, reset_key = jax.random.split(state.key)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(reset_key, config.num_envs))
        state = state.replace(env_state=env_state, obs=ts.obs, key=key)

    def env_step(
        state: RunnerState, keys: jax.Array
    ) -> tuple[RunnerState, tuple[Rollout, tuple[jax.Array, jax.Array, jax.Array]]]:
        act_key, step_keys = keys[0], keys[1:]
        action, policy_info = algo.act(config, env.spec, state.algo, state.obs, act_key)
        env_state, ts = jax.vmap(env.step)(step_keys, state.env_state, env_action(env.spec, action))
        transition = Rollout(
            obs=state.obs,
            action=action,
            reward=ts.reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
            next_obs=ts.final_obs,
            policy_info=policy_info,
        )
        ended = (ts.done, ts.info["episode_return"], ts.info["episode_length"])
        return state.replace(env_state=env_state, obs=ts.obs), (transition, ended)

    # all of the rollout's keys at once: one for acting and one per env, at every step
    key, rollout_key = jax.random.split(state.key)
    keys = jax.random.split(rollout_key, (config.num_steps, 1 + config.num_envs))
    ended: tuple[jax.Array, jax.Array, jax.Array]
    state, (batch, ended) = jax.lax.scan(env_step, state.replace(key=key), keys)
    done, episode_return, episode_length = ended
    if episodic:
        done = jnp.logical_and(done, first_episode(done))
    info = {"episode_return": episode_return, "episode_length": episode_length}
    return state, batch, EpisodeTotals.of_step(done, info)


def update(
    algo: OnPolicyAlgorithm,
    config: Any,
    env: JaxEnv,
    state: RunnerState,
    update_id: jax.Array | None = None,
) -> tuple[RunnerState, dict[str, jax.Array]]:
    """One iteration: collect a rollout with the current policy, then learn from it."""
    state, batch, totals = rollout(algo, config, env, state)
    key, learn_key = jax.random.split(state.key)
    algo_state, metrics = algo.learn(config, env.spec, state.algo, batch, learn_key)
    metrics = {
        **metrics,
        "episodes": totals.count,
        "episode_return_sum": totals.return_sum,
        "episode_length_sum": totals.length_sum,
    }
    return state.replace(algo=algo_state, key=key), metrics


def CompiledOnPolicy(
    algo: OnPolicyAlgorithm,
    configs: Sequence[Any],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
) -> CompiledRunner:
    """The compiled runner of the on-policy loop, for `seeds` seeds of each config (configs that
    differ only in traced settings)."""
    return CompiledRunner(
        sys.modules[__name__],
        algo,
        configs,
        env,
        seeds,
        seed,
        total_updates,
        chunk_updates,
        first_seed,
    )
