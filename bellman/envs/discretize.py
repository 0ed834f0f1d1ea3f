"""Discretisation: a continuous-state env made tabular, as in the robotics lecture's exercise.

`Discretized` wraps a JAX env: each observation is mapped to features (the observation itself by
default), each feature is cut into equal bins between its bounds (values outside fall into the
first or last bin), and the bin indices form one state index (row-major). Continuous actions become
a finite list of action values. `DiscretizedGym` does the same to a gymnasium env, so a table
learned in JAX is evaluated and rendered in gymnasium.

`PendulumDiscrete-v1` is Pendulum-v1 with features (theta, theta_dot) = (atan2(sin, cos), theta_dot)
cut into 21 x 21 bins and 5 torques (-2, -1, 0, 1, 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from bellman.envs.core import JaxEnv, TimeStep
from bellman.envs.spaces import Box, Discrete, EnvSpec
from bellman.errors import EnvError
from bellman.mdp import GridLayout


class Binning:
    """Features -> one state index: `bins[i]` equal bins over [low[i], high[i]] per feature."""

    def __init__(self, bins: Sequence[int], low: Sequence[float], high: Sequence[float]):
        if not len(bins) == len(low) == len(high):
            raise EnvError("bins, low and high need one entry per feature")
        if any(b < 1 for b in bins) or any(h <= lo for lo, h in zip(low, high, strict=True)):
            raise EnvError("every feature needs at least one bin and low < high")
        self.bins = tuple(int(b) for b in bins)
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.num_states = math.prod(self.bins)

    def index(self, features: Any, xp: Any = jnp) -> Any:
        """The state index of `[..., F]` features (`xp` is jax.numpy or numpy)."""
        bins = xp.asarray(self.bins)
        scaled = (features - xp.asarray(self.low)) / xp.asarray(self.high - self.low)
        cell = xp.clip(xp.floor(scaled * bins), 0, bins - 1).astype(xp.int32)
        strides = np.cumprod((*self.bins[1:], 1)[::-1])[::-1]
        return xp.sum(cell * xp.asarray(strides, np.int32), axis=-1).astype(xp.int32)


def identity_features(obs: Any, xp: Any = jnp) -> Any:
    """The observation itself, flattened into a feature vector."""
    return obs.reshape(-1)


def pendulum_features(obs: Any, xp: Any = jnp) -> Any:
    """(cos theta, sin theta, theta_dot) -> (theta, theta_dot), theta in [-pi, pi]."""
    return xp.stack([xp.arctan2(obs[..., 1], obs[..., 0]), obs[..., 2]], axis=-1)


class Discretized:
    """A JAX env with finitely many states (and actions), for tabular methods."""

    def __init__(
        self,
        env: JaxEnv,
        binning: Binning,
        actions: Sequence[float] | None = None,
        features: Callable[..., Any] = identity_features,
        env_id: str | None = None,
        feature_names: tuple[str, str] | None = None,
    ):
        self.env, self.binning, self.features = env, binning, features
        inner = env.spec
        if actions is not None:
            if not isinstance(inner.action_space, Box):
                raise EnvError("action values are for continuous (Box) action spaces")
            shape = inner.action_space.shape
            self.actions: jax.Array | None = jnp.asarray(actions, jnp.float32).reshape(
                (len(actions), *shape)
            )
            action_space: Discrete = Discrete(len(actions))
            self.action_labels = tuple(f"{a:g}" for a in actions)
        elif isinstance(inner.action_space, Discrete):
            self.actions = None
            action_space = inner.action_space
            self.action_labels = tuple(str(a) for a in range(action_space.n))
        else:
            raise EnvError(f"'{inner.id}' has continuous actions: give the action values to use")
        self.spec = EnvSpec(
            id=env_id or f"{inner.id}-discretized",
            obs_shape=(),
            obs_dtype="int32",
            action_space=action_space,
            max_episode_steps=inner.max_episode_steps,
            num_states=binning.num_states,
        )
        self.layout = None
        """For two features: the bins as a grid (rows: first feature), to plot a policy."""
        if len(binning.bins) == 2:
            names = feature_names or ("feature 0", "feature 1")
            axes = tuple(
                f"{name} bin ({lo:.3g} .. {hi:.3g})"
                for name, lo, hi in zip(names, binning.low, binning.high, strict=True)
            )
            self.layout = GridLayout.full(*binning.bins, axes=(axes[0], axes[1]))
        inner_key = getattr(env, "cache_key", None)
        self.cache_key = (
            None
            if inner_key is None
            else f"discretized({inner_key}, {binning.bins}, {binning.low.tolist()}, "
            f"{binning.high.tolist()}, {actions}, {features.__name__})"
        )

    def _state(self, obs: jax.Array) -> jax.Array:
        return self.binning.index(self.features(obs))

    def _discrete(self, ts: TimeStep) -> TimeStep:
        return ts.replace(obs=self._state(ts.obs), final_obs=self._state(ts.final_obs))

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]:
        state, ts = self.env.reset(key)
        return state, self._discrete(ts)

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[Any, TimeStep]:
        inner_action = action if self.actions is None else self.actions[action]
        state, ts = self.env.step(key, state, inner_action)
        return state, self._discrete(ts)


class DiscretizedGym(gym.ObservationWrapper):
    """The gymnasium twin of `Discretized`: the same state index, action values as a list."""

    def __init__(
        self,
        env: gym.Env,
        binning: Binning,
        actions: Sequence[float] | None = None,
        features: Callable[..., Any] = identity_features,
    ):
        super().__init__(env)
        self.binning, self.features = binning, features
        self.observation_space = gym.spaces.Discrete(binning.num_states)
        self._actions = None if actions is None else np.asarray(actions, np.float32)
        if self._actions is not None:
            self.action_space = gym.spaces.Discrete(len(self._actions))

    def observation(self, observation: Any) -> int:
        features = self.features(np.asarray(observation, np.float64), xp=np)
        return int(self.binning.index(features, xp=np))

    def step(self, action: Any) -> Any:
        if self._actions is not None:
            inner_shape = self.env.action_space.shape
            action = self._actions[int(action)].reshape(inner_shape)
        return super().step(action)


PENDULUM_BINNING = Binning((21, 21), (-math.pi, -8.0), (math.pi, 8.0))
PENDULUM_TORQUES = (-2.0, -1.0, 0.0, 1.0, 2.0)


def pendulum_discrete() -> Discretized:
    """PendulumDiscrete-v1: gymnax's Pendulum-v1 as a table of 21 x 21 states and 5 torques."""
    from bellman.envs.gymnax_env import GymnaxEnv

    return Discretized(
        GymnaxEnv("Pendulum-v1"),
        PENDULUM_BINNING,
        PENDULUM_TORQUES,
        pendulum_features,
        env_id="PendulumDiscrete-v1",
        feature_names=("theta", "theta_dot"),
    )


def pendulum_discrete_gym(**kwargs: Any) -> gym.Env:
    """The gymnasium twin of PendulumDiscrete-v1 (registered as bellman/PendulumDiscrete-v1)."""
    return DiscretizedGym(
        gym.make("Pendulum-v1", **kwargs), PENDULUM_BINNING, PENDULUM_TORQUES, pendulum_features
    )


def register_gymnasium_env() -> None:
    if "bellman/PendulumDiscrete-v1" not in gym.registry:
        gym.register(
            id="bellman/PendulumDiscrete-v1",
            entry_point="bellman.envs.discretize:pendulum_discrete_gym",
        )
