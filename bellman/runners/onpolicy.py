"""The compiled on-policy runner: rollout -> learn, with env and agent in one XLA program.

`run_updates` is a pure function of one seed's `RunnerState`; the driver compiles
`jit(vmap(run_updates))` once, so a chunk of updates for every seed is a single call, and calls it
chunk after chunk, logging, evaluating and checkpointing in between. Nothing leaves the device
inside a chunk.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.envs.core import EpisodeStatistics, JaxEnv
from bellman.envs.spaces import Box, EnvSpec
from bellman.rollout import Rollout
from bellman.runners import programs
from bellman.runners.common import (
    ChunkResult,
    episode_means,
    over_seeds,
    paused_gc,
    reduce_metrics,
    seed_keys,
    seed_sharding,
)


class OnPolicyAlgorithm(Protocol):
    """What an on-policy algorithm module provides (see `bellman.algos.ppo`)."""

    def init(self, key: jax.Array, config: Any, spec: EnvSpec, total_updates: int) -> Any: ...

    def act(
        self, config: Any, spec: EnvSpec, state: Any, obs: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, Any]: ...

    def greedy(self, config: Any, spec: EnvSpec, state: Any, obs: jax.Array) -> jax.Array: ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, rollout: Rollout, key: jax.Array
    ) -> tuple[Any, dict[str, jax.Array]]: ...


class RunnerState(struct.PyTreeNode):
    """Everything one seed's training needs to continue exactly."""

    algo: Any
    """The algorithm's state: parameters, optimiser, normalisation statistics."""
    env_state: Any
    """`[B]` env states, with running episode statistics."""
    obs: jax.Array
    """`[B, *obs_shape]` observations to act on next."""
    key: jax.Array


class EpisodeTotals(struct.PyTreeNode):
    """Episodes that ended during an update, summed over envs and steps."""

    count: jax.Array
    return_sum: jax.Array
    length_sum: jax.Array


def env_action(spec: EnvSpec, action: jax.Array) -> jax.Array:
    """The action sent to the env: Box actions are clipped to its bounds."""
    space = spec.action_space
    return space.clip(action) if isinstance(space, Box) and space.bounded else action


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
    """Run the current policy for `config.num_steps` steps in every env."""

    def env_step(
        state: RunnerState, keys: jax.Array
    ) -> tuple[RunnerState, tuple[Rollout, EpisodeTotals]]:
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
        done = ts.done.astype(jnp.float32)
        totals = EpisodeTotals(
            done.sum(),
            (done * ts.info["episode_return"]).sum(),
            (done * ts.info["episode_length"]).sum(),
        )
        return state.replace(env_state=env_state, obs=ts.obs), (transition, totals)

    # all of the rollout's keys at once: one for acting and one per env, at every step
    key, rollout_key = jax.random.split(state.key)
    keys = jax.random.split(rollout_key, (config.num_steps, 1 + config.num_envs))
    state, (batch, totals) = jax.lax.scan(env_step, state.replace(key=key), keys)
    return state, batch, jax.tree.map(jnp.sum, totals)


def update(
    algo: OnPolicyAlgorithm, config: Any, env: JaxEnv, state: RunnerState
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


def run_updates(
    algo: OnPolicyAlgorithm,
    config: Any,
    env: JaxEnv,
    total_updates: int,
    state: RunnerState,
    update_ids: jax.Array,
) -> tuple[RunnerState, dict[str, jax.Array]]:
    """Run the updates numbered `update_ids` (`[C]`); ids >= total_updates are skipped.

    Skipping keeps every chunk the same length, so one compiled program serves the whole run.
    """
    metrics_shape = jax.eval_shape(lambda s: update(algo, config, env, s)[1], state)

    def skip(state: RunnerState) -> tuple[RunnerState, dict[str, jax.Array]]:
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics_shape)

    def body(state: RunnerState, update_id: jax.Array) -> tuple[RunnerState, dict[str, jax.Array]]:
        run = functools.partial(update, algo, config, env)
        return jax.lax.cond(update_id < total_updates, run, skip, state)

    return jax.lax.scan(body, state, update_ids)


class CompiledOnPolicy:
    """Drives `run_updates` for many seeds at once: `jit(vmap(scan))`, compiled ahead of time,
    with the seeds sharded over the CPU cores when they divide evenly."""

    backend = "compiled"

    def __init__(
        self,
        algo: OnPolicyAlgorithm,
        config: Any,
        env: JaxEnv,
        seeds: int,
        seed: int,
        total_updates: int,
        chunk_updates: int,
    ):
        self.algo, self.config, self.spec = algo, config, env.spec
        self.env = EpisodeStatistics(env)
        self.seeds, self.seed = seeds, seed
        self.total_updates, self.chunk_updates = total_updates, chunk_updates
        self.sharding, self.replicated = seed_sharding(seeds)
        init = functools.partial(init_state, algo, config, self.env, total_updates)
        self._init = jax.jit(
            over_seeds(init, seeds, (0,)),
            in_shardings=self.sharding,
            out_shardings=self.sharding,
        )
        chunk = functools.partial(run_updates, algo, config, self.env, total_updates)
        self._chunk = jax.jit(
            over_seeds(chunk, seeds, (0, None)),
            in_shardings=(self.sharding, self.replicated),
            out_shardings=self.sharding,
            donate_argnums=0,
        )
        # the programs compiled ahead of time by `compile`, and the state's shapes
        self._compiled_init: Any = None
        self._compiled_chunk: Any = None
        self._template: Any = None

    @property
    def steps_per_update(self) -> int:
        return int(self.config.num_envs * self.config.num_steps)

    def _keys(self) -> jax.Array:
        return jax.device_put(seed_keys(self.seed, self.seeds), self.sharding)

    def init_state(self) -> RunnerState:
        init = self._compiled_init if self._compiled_init is not None else self._init
        return init(self._keys())

    def state_template(self) -> Any:
        if self._template is None:
            self._template = jax.eval_shape(self._init, self._keys())
        return self._template

    def _description(self, part: str) -> list[str] | None:
        """What the program `part` depends on besides the code (see `programs`)."""
        env_key = getattr(self.env, "cache_key", None)
        if env_key is None:
            return None
        return [
            f"onpolicy {part}",
            getattr(self.algo, "__name__", repr(self.algo)),
            repr(self.config),
            env_key,
            f"seeds={self.seeds} updates={self.total_updates} chunk={self.chunk_updates}",
        ]

    def compile(self) -> float:
        """Compile (or load) the init and chunk programs; returns the seconds it took.

        The init program is traced first: its output shapes are the chunk program's input, and
        its compilation runs on the worker while the chunk program is traced.
        """
        start = time.perf_counter()
        devices = list(self.sharding.mesh.devices.flat)
        keys = self._keys()
        traced: list[Any] = []

        def lower_init() -> Any:
            traced.append(self._init.trace(keys))
            return traced[0].lower()

        with paused_gc():
            self._compiled_init = programs.start(
                self._description("init"), lower_init, devices, light=True
            )
            self._template = (traced[0] if traced else self._compiled_init.result()).out_info
            ids = jax.ShapeDtypeStruct((self.chunk_updates,), jnp.int32)
            description = self._description("chunk")
            self._compiled_chunk = programs.start(
                description and [*description, programs.signature(self._template, ids)],
                lambda: self._chunk.lower(self._template, ids),
                devices,
            )
        self._compiled_init.result()
        self._compiled_chunk.result()
        return time.perf_counter() - start

    def run_chunk(self, state: RunnerState, first_update: int) -> tuple[RunnerState, ChunkResult]:
        """Run updates first_update, ..., first_update + chunk_updates - 1 (those that exist)."""
        if self._compiled_chunk is None:
            self.compile()
        ids = jnp.arange(first_update, first_update + self.chunk_updates, dtype=jnp.int32)
        state, metrics = self._compiled_chunk(state, jax.device_put(ids, self.replicated))
        metrics = jax.device_get(metrics)
        valid = np.asarray(ids) < self.total_updates
        done = int(valid.sum())
        return state, ChunkResult(
            updates=done,
            metrics=reduce_metrics(metrics, valid),
            **episode_means(metrics, valid),
        )

    def algo_state(self, state: RunnerState) -> Any:
        return state.algo

    def checkpoint_parts(self, state: RunnerState) -> dict[str, Any]:
        return {"algo": state.algo, "runner": state.replace(algo=None)}

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> RunnerState:
        state = parts["runner"].replace(algo=parts["algo"])
        return jax.device_put(state, self.sharding)

    def checkpoint_templates(self) -> dict[str, Any]:
        template = self.state_template()
        return {"algo": template.algo, "runner": template.replace(algo=None)}

    def close(self) -> None:
        pass
