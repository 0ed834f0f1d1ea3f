"""The host backend: any gymnasium environment, stepped as a `gymnasium.vector` env in Python.

Works for every registered id (`CartPole-v1`, `LunarLander-v3`, `ALE/Breakout-v5`, ...) and for a
user's own class given as `module:Class`, so an env written the gymnasium way trains unchanged.
Vector envs run in gymnasium's SAME_STEP autoreset mode: an episode that ends is reset within the
same step, and its true last observation comes back as `final_obs`, as in the JAX protocol.

A call into an env's code that fails, and a NaN or infinite observation or reward, stop here
with one sentence naming the env (`bellman.envs.guard`), before a learner sees anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from bellman.envs import guard
from bellman.envs.core import TimeStep
from bellman.envs.spaces import ActionSpace, Box, Discrete, EnvSpec, Other
from bellman.errors import EnvError

EnvFactory = Callable[..., gym.Env]
MAX_BOUNDS = 1024
"""Observation bounds are kept in the spec only for observations of at most this many numbers."""


def action_space_of(space: gym.Space) -> ActionSpace:
    if isinstance(space, gym.spaces.Discrete):
        if int(space.start) != 0:
            return Other(f"Discrete(n={space.n}, start={space.start})")
        return Discrete(int(space.n))
    if isinstance(space, gym.spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        low = np.broadcast_to(space.low.astype(np.float64), shape).ravel()
        high = np.broadcast_to(space.high.astype(np.float64), shape).ravel()
        return Box(shape, tuple(low.tolist()), tuple(high.tolist()))
    return Other(type(space).__name__)


def prepare(env: gym.Env) -> gym.Env:
    """Flatten observation spaces other than Box and Discrete (Tuple, Dict, ...) into a Box.

    A Discrete observation stays a state index, as in bellman's JAX finite envs: tabular methods
    index their tables with it and networks one-hot it (`bellman.nets.obs_features`).
    """
    if not isinstance(env.observation_space, gym.spaces.Box | gym.spaces.Discrete):
        env = gym.wrappers.FlattenObservation(env)
    return env


def _bounds(space: gym.spaces.Box) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    if space.dtype == np.uint8 or int(np.prod(space.shape)) > MAX_BOUNDS:  # pixels: 0..255
        return None, None
    low = np.broadcast_to(space.low.astype(np.float64), space.shape).ravel()
    high = np.broadcast_to(space.high.astype(np.float64), space.shape).ravel()
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None, None
    return tuple(low.tolist()), tuple(high.tolist())


def spec_of(env_id: str, env: gym.Env) -> EnvSpec:
    obs_space = env.observation_space
    limit = env.spec.max_episode_steps if env.spec is not None else None
    action_space = action_space_of(env.action_space)
    if isinstance(obs_space, gym.spaces.Discrete):
        return EnvSpec(
            id=env_id,
            obs_shape=(),
            obs_dtype="int32",
            action_space=action_space,
            max_episode_steps=limit,
            num_states=int(obs_space.n),
        )
    assert isinstance(obs_space, gym.spaces.Box)
    dtype = "uint8" if obs_space.dtype == np.uint8 else "float32"
    low, high = _bounds(obs_space)
    return EnvSpec(
        id=env_id,
        obs_shape=tuple(int(d) for d in obs_space.shape),
        obs_dtype=dtype,
        action_space=action_space,
        max_episode_steps=limit,
        obs_low=low,
        obs_high=high,
        frame_stack=frame_stack_of(env),
    )


def frame_stack_of(env: gym.Env) -> int:
    """How many frames an env's observations stack (1 unless FrameStackObservation wraps it)."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.FrameStackObservation):
            return int(env.stack_size)
        env = env.env
    return 1


class GymnasiumVectorEnv:
    """`num_envs` copies of a gymnasium env stepped together; results as numpy `TimeStep`s."""

    def __init__(self, env_id: str, make_env: EnvFactory, num_envs: int):
        factory = lambda: prepare(make_env())
        self.env_id = env_id
        with guard.EnvCall(env_id, "__init__"):
            self.envs = gym.vector.SyncVectorEnv(
                [factory for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
            )
        self.spec = spec_of(env_id, self.envs.envs[0])
        self.num_envs = num_envs
        self._obs_dtype = np.dtype(self.spec.obs_dtype)
        self._float_obs = self._obs_dtype.kind == "f"
        self._return = np.zeros(num_envs)
        self._length = np.zeros(num_envs, np.int64)
        self._step_call = guard.EnvCall(env_id, "step")

    def reset(self, seed: int | list[int | None]) -> np.ndarray:
        """Start every env's episode: env i from seed + i, or from seed[i] for a list."""
        obs: Any
        seeds: list[int | None] = (
            list(seed) if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
        )
        with guard.EnvCall(self.env_id, "reset"):
            obs, _ = self.envs.reset(seed=seeds)
        self._return[:] = 0.0
        self._length[:] = 0
        obs = np.asarray(obs, self._obs_dtype)
        if self._float_obs and not np.isfinite(obs).all():
            raise self._nonfinite("observation", obs, np.ones(self.num_envs, bool))
        return obs

    def _nonfinite(self, what: str, values: np.ndarray, from_reset: np.ndarray) -> EnvError:
        """The error for the first env whose `values` hold a NaN or an infinity; `from_reset`
        marks the envs whose values came from reset() (an episode that ended and restarted)."""
        finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        i = int(np.flatnonzero(~finite)[0])
        if from_reset[i]:
            return guard.nonfinite(self.env_id, what, values[i], "reset", i, None)
        step = int(self._length[i]) + 1
        return guard.nonfinite(self.env_id, what, values[i], "step", i, step)

    def step(self, action: np.ndarray) -> TimeStep:
        """Step every env; the TimeStep's fields are numpy arrays `[num_envs, ...]`.

        `info` reports finished episodes: `episode_ended`, and where it is set the episode's
        undiscounted `episode_return` and `episode_length`. An episode is what the env says it
        is, except for envs that mark the end of a whole game in `info["game_over"]` (Atari with
        episodic life, `bellman.envs.atari`): their episodes are games, across lost lives.

        Raises:
            EnvError: the env's code raised, or returned a NaN or infinite observation or reward.
        """
        if isinstance(self.spec.action_space, Box):
            action = self.spec.action_space.clip_numpy(action)
        result: Any
        with self._step_call:
            result = self.envs.step(action)
        obs, reward, terminated, truncated, info = result
        obs = np.asarray(obs, self._obs_dtype)
        reward = np.asarray(reward, np.float32)
        done = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        if not np.isfinite(reward).all():
            raise self._nonfinite("reward", reward, np.zeros(self.num_envs, bool))
        if self._float_obs and not np.isfinite(obs).all():
            raise self._nonfinite("observation", obs, done)  # where done: from reset()
        final_obs = obs.copy()
        if "final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final_obs[i] = info["final_obs"][i]
            if self._float_obs and not np.isfinite(final_obs).all():
                raise self._nonfinite("observation", final_obs, np.zeros(self.num_envs, bool))
        ended = done
        final_info = info.get("final_info", {})
        if "game_over" in final_info:
            ended = done & np.asarray(final_info["game_over"], bool)
        self._return += reward
        self._length += 1
        episode_return = np.where(ended, self._return, 0.0)
        episode_length = np.where(ended, self._length, 0)
        self._return[ended] = 0.0
        self._length[ended] = 0
        fields: dict[str, Any] = {
            "obs": obs,
            "reward": reward,
            "terminated": np.asarray(terminated, bool),
            "truncated": np.asarray(truncated, bool),
            "final_obs": final_obs,
            "info": {
                "episode_ended": ended,
                "episode_return": episode_return,
                "episode_length": episode_length,
            },
        }
        return TimeStep(**fields)

    def close(self) -> None:
        with guard.EnvCall(self.env_id, "close"):
            self.envs.close()


def make_single(make_env: EnvFactory, **kwargs: Any) -> gym.Env:
    """One env for evaluation or rendering, prepared like the training envs."""
    return prepare(make_env(**kwargs))
