"""Jumanji's environments (InstaDeep's JAX suite: Snake, Maze, 2048, routing and packing problems)
as bellman JAX envs, named `jumanji:<id>` (`jumanji:Snake-v1`).

Jumanji's envs are functional like bellman's, with three differences the adapter bridges:
- **Observations** are structured (a NamedTuple of arrays: Snake's grid, step count and action
  mask). The adapter flattens them into one float32 vector: every array of the observation, in
  the order jumanji declares them, raveled and concatenated. Action masks are observed, not
  enforced: an invalid action does what the env does with one (Snake ends the episode).
- **Episode ends** come as a dm_env `TimeStep` whose `step_type` is LAST, with discount 0 for a
  terminal state and 1 for a cut. Most jumanji envs also end a time-limited episode with
  discount 0, as if it had reached a terminal state; the adapter counts each episode's steps
  and calls an end at the env's `time_limit` truncated (`max_episode_steps`), so the value of
  the last state still counts. A terminal state reached on exactly the last allowed step is then
  counted as truncated: one step in `time_limit` where bellman bootstraps when it should not,
  instead of every time-limited episode taught as a death.
- **No auto-reset**: the adapter resets an env whose episode ended (`auto_reset`), keeping the
  last observation as `final_obs`.
Discrete actions (`DiscreteArray`) become `Discrete(n)` and bounded continuous ones `Box`; other
action specs (`MultiDiscreteArray`) are kept by name, which bellman's algorithms refuse, and
multi-agent envs (a reward per agent) are refused here.

jumanji is an optional dependency (`pip install 'bellman[jumanji]'`), imported when such an env is
made. `--env-kwargs` go to `jumanji.make` (`num_rows=6,num_cols=6,time_limit=200` for Snake).
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.envs.core import TimeStep, auto_reset
from bellman.envs.spaces import ActionSpace, Box, Discrete, EnvSpec, Other
from bellman.errors import EnvError

PREFIX = "jumanji:"
EXTRA = "jumanji"
"""The optional dependency group that installs jumanji (`pip install 'bellman[jumanji]'`)."""

# jumanji 1.1's registered ids, listed here so that naming one does not import jumanji (seconds);
# a test checks the list against `jumanji.registered_environments()`.
JUMANJI_IDS: tuple[str, ...] = (
    "BinPack-v2",
    "CVRP-v1",
    "Cleaner-v0",
    "Connector-v3",
    "FlatPack-v0",
    "Game2048-v1",
    "GraphColoring-v1",
    "JobShop-v0",
    "Knapsack-v1",
    "LevelBasedForaging-v0",
    "MMST-v0",
    "Maze-v0",
    "Minesweeper-v0",
    "MultiCVRP-v0",
    "PacMan-v1",
    "RobotWarehouse-v0",
    "RubiksCube-partly-scrambled-v0",
    "RubiksCube-v0",
    "SearchAndRescue-v0",
    "SlidingTilePuzzle-v0",
    "Snake-v1",
    "Sokoban-v0",
    "Sudoku-v0",
    "Sudoku-very-easy-v0",
    "TSP-v1",
    "Tetris-v0",
)
LAST = 2
"""`jumanji.types.StepType.LAST`: the step that ends an episode."""


class JumanjiState(struct.PyTreeNode):
    env_state: Any
    """Jumanji's own state."""
    steps: jax.Array
    """Steps taken in this episode, to tell a time limit from a terminal state."""


def _import_jumanji(env_id: str) -> Any:
    try:
        import jumanji
    except ModuleNotFoundError as exc:
        if exc.name != "jumanji":
            raise
        raise EnvError(
            f"environment '{env_id}' needs jumanji, an optional dependency: pip install "
            f"'bellman[{EXTRA}]'"
        ) from None
    return jumanji


def _action_space(spec: Any) -> ActionSpace:
    from jumanji import specs

    if isinstance(spec, specs.DiscreteArray):
        return Discrete(int(spec.num_values))
    if isinstance(spec, specs.MultiDiscreteArray):
        return Other(f"MultiDiscreteArray{tuple(np.asarray(spec.num_values).tolist())}")
    if isinstance(spec, specs.BoundedArray) and np.dtype(spec.dtype).kind == "f":
        shape = tuple(int(d) for d in spec.shape)
        low = np.broadcast_to(np.asarray(spec.minimum, np.float64), shape).ravel()
        high = np.broadcast_to(np.asarray(spec.maximum, np.float64), shape).ravel()
        return Box(shape, tuple(low.tolist()), tuple(high.tolist()))
    return Other(type(spec).__name__)


def _flatten(observation: Any) -> jax.Array:
    """Every array of a jumanji observation, raveled into one float32 vector."""
    leaves = jax.tree.leaves(observation)
    return jnp.concatenate([jnp.ravel(jnp.asarray(x, jnp.float32)) for x in leaves])


class JumanjiEnv:
    """A jumanji environment (`jumanji.make(env_id, **kwargs)`) as a bellman `JaxEnv`."""

    def __init__(self, env_id: str, **kwargs: Any):
        name = env_id.removeprefix(PREFIX)
        full_id = PREFIX + name
        jumanji = _import_jumanji(full_id)
        try:
            self._env = jumanji.make(name, **kwargs)
        except Exception as exc:  # unknown id, a keyword the env does not take, a download
            text = " ".join(str(exc).split())[:300]
            raise EnvError(f"cannot create environment '{full_id}': {text}") from None
        reward_shape = tuple(self._env.reward_spec.shape)
        if reward_shape != ():
            raise EnvError(
                f"environment '{full_id}' is a multi-agent env (a reward of shape "
                f"{reward_shape} per step); bellman trains single-agent envs"
            )
        limit = getattr(self._env, "time_limit", None)
        self._limit = int(limit) if isinstance(limit, int | np.integer) and limit > 0 else None
        with jax.ensure_compile_time_eval():
            action_space = _action_space(self._env.action_spec)
        key = jax.ShapeDtypeStruct((2,), np.uint32)
        obs = jax.eval_shape(lambda k: _flatten(self._env.reset(k)[1].observation), key)
        self.spec = EnvSpec(
            id=full_id,
            obs_shape=tuple(obs.shape),
            obs_dtype="float32",
            action_space=action_space,
            max_episode_steps=self._limit,
        )
        self.cache_key: str | None = None
        """Names jumanji's version, the env and its keyword arguments, for
        `bellman.runners.programs`; None (compile every run) when an argument is not plain
        JSON (a generator object, say), whose text would not name it."""
        try:
            arguments = json.dumps(kwargs, sort_keys=True)
        except TypeError:
            return
        self.cache_key = f"jumanji {metadata.version('jumanji')} {full_id} {arguments}"

    def _action(self, action: jax.Array) -> jax.Array:
        space = self.spec.action_space
        if isinstance(space, Box):
            return jnp.asarray(action, jnp.float32).reshape(space.shape)
        return jnp.asarray(action, jnp.int32)

    def reset(self, key: jax.Array) -> tuple[JumanjiState, TimeStep]:
        env_state, ts = self._env.reset(key)
        obs = _flatten(ts.observation)
        false = jnp.zeros((), bool)
        state = JumanjiState(env_state, jnp.zeros((), jnp.int32))
        return state, TimeStep(obs, jnp.zeros((), jnp.float32), false, false, obs, {})

    def step(
        self, key: jax.Array, state: JumanjiState, action: jax.Array
    ) -> tuple[JumanjiState, TimeStep]:
        env_state, ts = self._env.step(state.env_state, self._action(action))
        steps = state.steps + 1
        ended = jnp.asarray(ts.step_type).reshape(()) == LAST
        at_limit = steps >= self._limit if self._limit is not None else jnp.zeros((), bool)
        terminal = jnp.asarray(ts.discount).reshape(()) == 0
        terminated = ended & terminal & ~at_limit
        obs = _flatten(ts.observation)
        timestep = TimeStep(
            obs=obs,
            reward=jnp.asarray(ts.reward, jnp.float32).reshape(()),
            terminated=terminated,
            truncated=ended & ~terminated,
            final_obs=obs,
            info={},
        )
        return auto_reset(self, key, JumanjiState(env_state, steps), timestep)
