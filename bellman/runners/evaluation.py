"""Evaluation of the greedy (deterministic) policy on separate episodes, for every seed.

Training returns are those of the exploring policy; the numbers bellman reports as a run's result
are these: `episodes` fresh episodes per seed with the algorithm's `greedy` action (or its
`evaluation_action`, or its `evaluation_memory`'s policy, which keeps a state per episode).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman import config as cfg
from bellman.contracts import Algorithm
from bellman.envs.core import JaxEnv
from bellman.envs.gymnasium_env import EnvFactory, GymnasiumVectorEnv
from bellman.envs.spaces import EnvSpec
from bellman.runners import programs
from bellman.runners.common import env_action, over_seeds, seed_sharding

DEFAULT_MAX_STEPS = 100_000


def evaluation_start(algo: Algorithm, config: Any, spec: EnvSpec, episodes: int) -> Any:
    """The reported policy's memory of `episodes` fresh episodes (`evaluation_memory`; None for
    a policy of observations alone)."""
    memory = algo.evaluation_memory
    return None if memory is None else memory.init(config, spec, episodes)


def evaluation_step(
    algo: Algorithm,
    config: Any,
    spec: EnvSpec,
    algo_state: Any,
    obs: Any,
    key: jax.Array,
    memory: Any,
) -> tuple[jax.Array, Any]:
    """The actions of the policy a run reports its return for, and its memory after them: the
    algorithm's `evaluation_memory` policy if it declares one (PETS's kept plans), else its
    `evaluation_action` (TD(0) evaluates a stochastic policy), else `greedy`, the memory None."""
    if algo.evaluation_memory is not None:
        return algo.evaluation_memory.act(config, spec, algo_state, obs, key, memory)
    if algo.evaluation_action is not None:
        return algo.evaluation_action(config, spec, algo_state, obs, key), memory
    return algo.greedy(config, spec, algo_state, obs), memory


def evaluate_jax(
    algo: Algorithm, config: Any, env: JaxEnv, algo_state: Any, key: jax.Array, episodes: int
) -> tuple[jax.Array, jax.Array]:
    """Returns and lengths `[episodes]` of one seed's greedy policy, episodes run in parallel.

    Each episode runs until it terminates or is truncated (the env's time limit, or
    100,000 steps for an env without one).
    """
    max_steps = env.spec.max_episode_steps or DEFAULT_MAX_STEPS
    key, reset_key = jax.random.split(key)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))
    alive = jnp.ones((episodes,), bool)
    zeros = jnp.zeros((episodes,), jnp.float32)
    memory = evaluation_start(algo, config, env.spec, episodes)
    carry = (env_state, ts.obs, alive, zeros, zeros, key, jnp.zeros((), jnp.int32), memory)

    def running(carry: tuple[Any, ...]) -> jax.Array:
        alive, t = carry[2], carry[6]
        return jnp.logical_and(alive.any(), t < max_steps)

    def step(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        env_state, obs, alive, returns, lengths, key, t, memory = carry
        key, step_key, act_key = jax.random.split(key, 3)
        action, memory = evaluation_step(algo, config, env.spec, algo_state, obs, act_key, memory)
        env_state, ts = jax.vmap(env.step)(
            jax.random.split(step_key, episodes), env_state, env_action(env.spec, action)
        )
        returns = returns + jnp.where(alive, ts.reward, 0.0)
        lengths = lengths + alive
        alive = jnp.logical_and(alive, ~ts.done)
        return env_state, ts.obs, alive, returns, lengths, key, t + 1, memory

    _, _, _, returns, lengths, _, _, _ = jax.lax.while_loop(running, step, carry)
    return returns, lengths


class JaxEvaluator:
    """`evaluate_jax` for all seeds at once, compiled ahead of time, seeds sharded over cores."""

    def __init__(
        self,
        algo: Any,
        configs: Sequence[Any],
        env: JaxEnv,
        episodes: int,
        seeds: int,
        evaluate: Callable[..., Any] = evaluate_jax,
    ):
        """For `seeds` seeds of each of `configs` (which differ only in traced settings; see
        `bellman.runners.compiled`): members setting-major, as the compiled runner's.
        `evaluate(algo, config, env, algo_state, key, episodes)` runs one member's episodes
        (`evaluate_jax`, or a family's own: the control runner's plans from env states)."""
        self.episodes, self.seeds = episodes, len(configs) * seeds
        static = cfg.static_part(configs[0])
        env_key = getattr(env, "cache_key", None)
        self._description = None
        if env_key is not None:
            self._description = [
                "evaluate" if evaluate is evaluate_jax else f"evaluate {evaluate.__name__}",
                algo.__name__,
                repr(static),
                env_key,
                f"members={self.seeds} episodes={episodes}",
            ]
        self.sharding, _ = seed_sharding(self.seeds)
        self.values = jax.device_put(cfg.traced_values(configs, seeds), self.sharding)

        def fn(algo_state: Any, values: dict[str, jax.Array], key: jax.Array) -> Any:
            config = cfg.with_values(static, values)
            return evaluate(algo, config, env, algo_state, key, episodes)

        self._fn = jax.jit(
            over_seeds(fn, self.seeds, (0, 0, 0)),
            in_shardings=self.sharding,
            out_shardings=self.sharding,
        )
        self._compiled: Any = None

    def start_compile(self, algo_state_template: Any) -> None:
        """Start compiling (or loading) the evaluation program on the compile worker: it is
        traced and compiled there, while training goes on, and waited for when first used."""
        keys = jax.ShapeDtypeStruct((self.seeds, 2), jnp.uint32)
        description = self._description and [
            *self._description,
            programs.signature(algo_state_template, self.values, keys),
        ]
        self._compiled = programs.start(
            description,
            lambda: self._fn.lower(algo_state_template, self.values, keys),
            list(self.sharding.mesh.devices.flat),
            light=True,
            trace_on_worker=True,
        )

    @property
    def wait_s(self) -> float:
        """Seconds spent waiting for the program to compile (0 when it was ready in time)."""
        return self._compiled.wait_s if self._compiled is not None else 0.0

    def __call__(self, algo_state: Any, keys: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """Returns and lengths `[seeds, episodes]`."""
        fn = self._compiled if self._compiled is not None else self._fn
        algo_state, keys = jax.device_put((algo_state, keys), self.sharding)
        returns, lengths = fn(algo_state, self.values, keys)
        return np.asarray(returns, np.float64), np.asarray(lengths, np.float64)


def evaluate_gymnasium(
    algo: Algorithm,
    config: Any,
    spec: EnvSpec,
    env_id: str,
    make_env: EnvFactory,
    algo_state: Any,
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths `[seeds, episodes]` in gymnasium envs.

    `algo_state` holds all seeds (leading axis). All `seeds * episodes` episodes run side by side,
    one env each, seeded from `seed`, so one jitted call acts for all of them at every step.
    """
    seeds = jax.tree.leaves(algo_state)[0].shape[0]
    envs = GymnasiumVectorEnv(env_id, make_env, seeds * episodes)
    policy = functools.partial(evaluation_step, algo, config, spec)
    act = jax.jit(jax.vmap(policy, in_axes=(0, 0, None, 0)))
    fresh = evaluation_start(algo, config, spec, episodes)
    memory = jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds, *x.shape)), fresh)
    key = jax.random.PRNGKey(seed)
    returns = np.zeros(seeds * episodes)
    lengths = np.zeros(seeds * episodes)
    running = np.ones(seeds * episodes, bool)
    max_steps = spec.max_episode_steps or DEFAULT_MAX_STEPS
    try:
        obs = envs.reset(seed)
        while running.any() and lengths.max() < max_steps:
            batch = obs.reshape((seeds, episodes, *spec.obs_shape))
            key, act_key = jax.random.split(key)
            actions, memory = act(algo_state, batch, act_key, memory)
            action: np.ndarray = np.asarray(actions)
            ts = envs.step(action.reshape((seeds * episodes, *spec.action_space.shape)))
            returns += np.where(running, ts.reward, 0.0)
            lengths += running
            running &= ~ts.info["episode_ended"]  # a whole game for Atari, across lost lives
            obs = np.asarray(ts.obs)
    finally:
        envs.close()
    return returns.reshape(seeds, episodes), lengths.reshape(seeds, episodes)
