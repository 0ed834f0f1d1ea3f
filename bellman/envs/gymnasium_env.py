"""The host backend: any gymnasium environment, stepped as a `gymnasium.vector` env in Python.

Works for every registered id (`CartPole-v1`, `LunarLander-v3`, `ALE/Breakout-v5`, ...) and for a
user's own class given as `module:Class`, so an env written the gymnasium way trains unchanged.
Vector envs run in gymnasium's SAME_STEP autoreset mode: an episode that ends is reset within the
same step, and its true last observation comes back as `final_obs`, as in the JAX protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from bellman.envs.core import TimeStep
from bellman.envs.spaces import ActionSpace, Box, Discrete, EnvSpec, Other

EnvFactory = Callable[..., gym.Env]


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
    )


class GymnasiumVectorEnv:
    """`num_envs` copies of a gymnasium env stepped together; results as numpy `TimeStep`s."""

    def __init__(self, env_id: str, make_env: EnvFactory, num_envs: int):
        factory = lambda: prepare(make_env())
        self.envs = gym.vector.SyncVectorEnv(
            [factory for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
        )
        self.spec = spec_of(env_id, self.envs.envs[0])
        self.num_envs = num_envs
        self._obs_dtype = np.dtype(self.spec.obs_dtype)

    def reset(self, seed: int) -> np.ndarray:
        obs: Any
        obs, _ = self.envs.reset(seed=[seed + i for i in range(self.num_envs)])
        return np.asarray(obs, self._obs_dtype)

    def step(self, action: np.ndarray) -> TimeStep:
        """Step every env; the TimeStep's fields are numpy arrays `[num_envs, ...]`."""
        if isinstance(self.spec.action_space, Box):
            action = self.spec.action_space.clip_numpy(action)
        result: Any = self.envs.step(action)
        obs, reward, terminated, truncated, info = result
        obs = np.asarray(obs, self._obs_dtype)
        final_obs = obs.copy()
        if "final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final_obs[i] = info["final_obs"][i]
        fields: dict[str, Any] = {
            "obs": obs,
            "reward": np.asarray(reward, np.float32),
            "terminated": np.asarray(terminated, bool),
            "truncated": np.asarray(truncated, bool),
            "final_obs": final_obs,
            "info": {},
        }
        return TimeStep(**fields)

    def close(self) -> None:
        self.envs.close()


def make_single(make_env: EnvFactory, **kwargs: Any) -> gym.Env:
    """One env for evaluation or rendering, prepared like the training envs."""
    return prepare(make_env(**kwargs))
