"""The loop of a controller that plans with the env's own dynamics (model predictive control), as
a compiled runner family: plan from each env's state -> act -> step. Nothing is learned.

One update, for one seed (`update`):

    in all num_envs envs at once:
        plan from the env's state with its step function as the model:
          the actions and the plans to warm-start from                  (algo.act)
        step the envs; where an episode ended, its next plan starts afresh  (algo.reset)

`CompiledRunner` runs chunks of these updates for every seed in one program, as for the other
families. `ControlEvaluator` runs separate episodes of the same controller for the reported
returns: the controller has no policy of observations alone (it needs the env's state), so the
evaluation plans too.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.envs.core import EpisodeStatistics, JaxEnv
from bellman.runners.common import EpisodeTotals, env_action
from bellman.runners.compiled import CompiledRunner
from bellman.runners.evaluation import DEFAULT_MAX_STEPS, JaxEvaluator

EPISODE_STATISTICS = True
"""The runner counts episodes with `EpisodeStatistics`."""


class ControlState(struct.PyTreeNode):
    algo: Any
    env_state: Any
    key: jax.Array


def init_state(algo: Any, config: Any, env: JaxEnv, total_updates: int, key: jax.Array) -> Any:
    key, algo_key, reset_key = jax.random.split(key, 3)
    algo_state = algo.init(algo_key, config, env.spec, total_updates)
    env_state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, config.num_envs))
    return ControlState(algo_state, env_state, key)


def update(
    algo: Any, config: Any, env: JaxEnv, state: ControlState, update_id: jax.Array
) -> tuple[ControlState, dict[str, jax.Array]]:
    """One step of every env, each action planned from the env's state."""
    assert isinstance(env, EpisodeStatistics)
    key, plan_key, step_key = jax.random.split(state.key, 3)
    inner_states = state.env_state.env_state  # the model: the env itself, without the counters
    action, algo_state, found = algo.act(config, env.env, state.algo, inner_states, plan_key)
    env_state, ts = jax.vmap(env.step)(
        jax.random.split(step_key, config.num_envs), state.env_state, env_action(env.spec, action)
    )
    algo_state = algo.reset(config, env.spec, algo_state, ts.done)
    totals = EpisodeTotals.of_step(ts.done, ts.info)
    metrics = {
        "planned_return": found.planned_return.mean(),
        "best_sampled_return": found.best_return.mean(),
        "step_reward": ts.reward.mean(),
        "episodes": totals.count,
        "episode_return_sum": totals.return_sum,
        "episode_length_sum": totals.length_sum,
    }
    return ControlState(algo_state, env_state, key), metrics


def CompiledControl(
    algo: Any,
    configs: Sequence[Any],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
) -> CompiledRunner:
    """The compiled runner of the controller, for `seeds` seeds of each config."""
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


def evaluate_control(
    algo: Any, config: Any, env: JaxEnv, algo_state: Any, key: jax.Array, episodes: int
) -> tuple[jax.Array, jax.Array]:
    """Returns and lengths `[episodes]` of the controller on fresh episodes run in parallel,
    each planned from its own state (plans start from the middle of the bounds)."""
    max_steps = env.spec.max_episode_steps or DEFAULT_MAX_STEPS
    key, reset_key = jax.random.split(key)
    env_state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))
    evaluation = dataclasses.replace(config, num_envs=episodes)
    plans = algo.init(key, evaluation, env.spec, 1)
    alive = jnp.ones((episodes,), bool)
    zeros = jnp.zeros((episodes,), jnp.float32)

    def running(carry: tuple[Any, ...]) -> jax.Array:
        return jnp.logical_and(carry[2].any(), carry[6] < max_steps)

    def step(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        env_state, plans, alive, returns, lengths, key, t = carry
        key, plan_key, step_key = jax.random.split(key, 3)
        action, plans, _ = algo.act(evaluation, env, plans, env_state, plan_key)
        env_state, ts = jax.vmap(env.step)(
            jax.random.split(step_key, episodes), env_state, env_action(env.spec, action)
        )
        returns = returns + jnp.where(alive, ts.reward, 0.0)
        lengths = lengths + alive
        alive = jnp.logical_and(alive, ~ts.done)
        return env_state, plans, alive, returns, lengths, key, t + 1

    carry = (env_state, plans, alive, zeros, zeros, key, jnp.zeros((), jnp.int32))
    _, _, _, returns, lengths, _, _ = jax.lax.while_loop(running, step, carry)
    return returns, lengths


def ControlEvaluator(
    algo: Any, configs: Sequence[Any], env: JaxEnv, episodes: int, seeds: int
) -> JaxEvaluator:
    """`evaluate_control` for all members at once, compiled ahead of time (a `JaxEvaluator`
    whose program plans)."""
    return JaxEvaluator(algo, configs, env, episodes, seeds, evaluate=evaluate_control)
