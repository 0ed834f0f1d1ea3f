"""Observation and action spaces as small hashable values, shared by every backend.

Configs, env specs and spaces are static arguments of compiled functions, so they must be hashable:
bounds are stored as tuples, and only action bounds are kept (an observation needs shape and dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Discrete:
    """Actions 0, 1, ..., n - 1."""

    n: int

    @property
    def shape(self) -> tuple[int, ...]:
        return ()


@dataclass(frozen=True)
class Box:
    """Real-valued actions in the box [low, high] (bounds flattened in C order)."""

    shape: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def bounded(self) -> bool:
        return bool(np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)))

    def clip(self, action: jnp.ndarray) -> jnp.ndarray:
        """Clip an action (or a batch of them) into the box."""
        low = jnp.asarray(self.low, jnp.float32).reshape(self.shape)
        high = jnp.asarray(self.high, jnp.float32).reshape(self.shape)
        return jnp.clip(action, low, high)

    def clip_numpy(self, action: np.ndarray) -> np.ndarray:
        low = np.asarray(self.low, np.float32).reshape(self.shape)
        high = np.asarray(self.high, np.float32).reshape(self.shape)
        return np.clip(action, low, high)


@dataclass(frozen=True)
class Other:
    """A space bellman's algorithms do not handle (MultiDiscrete, Dict, ...), kept by name."""

    name: str

    @property
    def shape(self) -> tuple[int, ...]:
        return ()


ActionSpace = Discrete | Box | Other


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm needs to know about an environment before it builds its networks."""

    id: str
    obs_shape: tuple[int, ...]
    obs_dtype: str
    action_space: ActionSpace
    max_episode_steps: int | None
    """The time limit after which an episode is truncated, if the env has one."""
    num_states: int | None = None
    """For a finite env: observations are state indices 0..num_states-1 (a scalar int32)."""
    obs_low: tuple[float, ...] | None = None
    """Lower bounds of a Box observation (flattened, C order), when the env declares them."""
    obs_high: tuple[float, ...] | None = None
    """Upper bounds of a Box observation (flattened, C order), when the env declares them."""
    frame_stack: int = 1
    """Observations are the last `frame_stack` frames stacked on their first axis (Atari's
    preprocessing); replay memory then stores each frame once."""


def describe(space: object) -> str:
    """A short human name for a space, for error messages."""
    if isinstance(space, Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, Box):
        return f"Box(shape={space.shape})"
    if isinstance(space, Other):
        return space.name
    return type(space).__name__
