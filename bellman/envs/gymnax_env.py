"""A thin adapter from gymnax (>= 1.0) environments to bellman's JAX env protocol.

gymnax 1.0 already separates `terminated` from `truncated`, auto-resets, and returns the true last
observation as `info["final_observation"]`; this adapter only renames fields and describes spaces.
"""

from __future__ import annotations

import copy
import importlib
import sys
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman.envs.core import TimeStep
from bellman.envs.options import gymnax_params
from bellman.envs.spaces import ActionSpace, Box, Discrete, EnvSpec, Other

# gymnax's registered ids, listed here so that naming an env does not import gymnax (which
# imports matplotlib and seaborn, seconds on a small machine); a test checks the list.
GYMNAX_IDS: tuple[str, ...] = (
    "CartPole-v1",
    "Pendulum-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "MNISTBandit-bsuite",
    "SimpleBandit-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "PointRobot-misc",
    "BernoulliBandit-misc",
    "GaussianBandit-misc",
    "Reacher-misc",
    "Swimmer-misc",
    "Pong-misc",
    "FrozenLake-misc",
)


class _Deferred(types.ModuleType):
    """Stands in for a module gymnax imports, and imports the real one on first use."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # used while gymnax imports
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def import_gymnax() -> Any:
    """Import gymnax without its plotting dependencies.

    gymnax imports matplotlib.pyplot and seaborn at import time, for rendering helpers bellman
    never calls; that is more than a second on a small machine, paid by every run. They are
    deferred: stand-ins are put in sys.modules for the duration of `import gymnax` only, so
    gymnax's module-level `plt` and `sns` are stand-ins that import the real modules on first
    use, and sys.modules is left as it was (a later `import seaborn` gets the real one).
    """
    stand_ins: dict[str, _Deferred] = {}
    if "gymnax" not in sys.modules:
        plotting = ("seaborn", "matplotlib.pyplot")
        stand_ins = {name: _Deferred(name) for name in plotting if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        import gymnax
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return gymnax


def _action_space(space: Any) -> ActionSpace:
    from gymnax.environments import spaces as gx_spaces

    if isinstance(space, gx_spaces.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, gx_spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float64), shape).ravel()
        high = np.broadcast_to(np.asarray(space.high, np.float64), shape).ravel()
        return Box(shape, tuple(low.tolist()), tuple(high.tolist()))
    return Other(type(space).__name__)


def _observation_bounds(
    space: Any, shape: tuple[int, ...]
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """A Box observation space's finite bounds, flattened; (None, None) when unbounded."""
    try:
        low = np.broadcast_to(np.asarray(space.low, np.float64), shape).ravel()
        high = np.broadcast_to(np.asarray(space.high, np.float64), shape).ravel()
    except (AttributeError, ValueError):
        return None, None
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None, None
    return tuple(low.tolist()), tuple(high.tolist())


class GymnaxEnv:
    """A gymnax environment as a bellman `JaxEnv`, with its default parameters or with `params`
    changed (`bellman.envs.options.gymnax_params`: checked, converted to each field's type,
    derived fields recomputed); `changes` holds the changes as converted, for a run's record."""

    def __init__(self, env_id: str, **params: Any):
        self._env, default_params = import_gymnax().make(env_id)
        self._params, self.changes = gymnax_params(env_id, default_params, params)
        self.cache_key: str | None = f"gymnax {env_id} {self._params!r}"
        """Names the env's code and parameters, for `bellman.runners.programs`."""
        # The spaces are built with jnp: evaluate them eagerly even when an env is made while
        # tracing (e.g. inside `jax.eval_shape`), since the spec holds plain numbers.
        with jax.ensure_compile_time_eval():
            action_space = _action_space(self._env.action_space(self._params))
            obs_space = self._env.observation_space(self._params)
            obs_shape = tuple(int(d) for d in obs_space.shape)
            low, high = _observation_bounds(obs_space, obs_shape)
        max_steps = getattr(self._params, "max_steps_in_episode", None)
        self.spec = EnvSpec(
            id=env_id,
            obs_shape=obs_shape,
            obs_dtype="float32",
            action_space=action_space,
            max_episode_steps=int(max_steps) if max_steps is not None else None,
            obs_low=low,
            obs_high=high,
        )

    @property
    def params(self) -> Any:
        """The gymnax `EnvParams` this env steps with."""
        return self._params

    def with_params(self, params: Any) -> GymnaxEnv:
        """The same env stepping with `params` (traced values too: a vmapped grid of them)."""
        env = copy.copy(self)
        env._params = params
        env.cache_key = None
        return env

    @property
    def differentiable(self) -> bool:
        """Whether gymnax can pass gradients through this env's step (Pendulum-v1, ...)."""
        return bool(self._env.supports_transition_gradients)

    def with_gradients(self) -> GymnaxEnv:
        """The same env with gradients through its step (gymnax stops them by default)."""
        env = copy.copy(self)
        env._env = self._env.with_transition_gradients()
        env.cache_key = None
        return env

    def reset_with(self, key: jax.Array, params: Any) -> tuple[Any, TimeStep]:
        """`reset` with the parameters `params` instead of the env's."""
        obs, state = self._env.reset_env(key, params)
        obs = self._obs(obs)
        false = jnp.zeros((), bool)
        return state, TimeStep(obs, jnp.zeros((), jnp.float32), false, false, obs, {})

    def step_with(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[Any, TimeStep]:
        """One step with the parameters `params`, without the reset at an episode's end:
        `obs` is the observation reached (the caller resets, with parameters of its own)."""
        obs, state, reward, terminated, _ = self._env.step_env(key, state, action, params)
        truncated = self._env.is_truncated(state, params)
        obs = self._obs(obs)
        timestep = TimeStep(
            obs=obs,
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            terminated=jnp.asarray(terminated, bool).reshape(()),
            truncated=jnp.asarray(truncated, bool).reshape(()),
            final_obs=obs,
            info={},
        )
        return state, timestep

    def _obs(self, obs: jax.Array) -> jax.Array:
        return jnp.asarray(obs, jnp.float32).reshape(self.spec.obs_shape)

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]:
        obs, state = self._env.reset(key, self._params)
        obs = self._obs(obs)
        false = jnp.zeros((), bool)
        return state, TimeStep(obs, jnp.zeros((), jnp.float32), false, false, obs, {})

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[Any, TimeStep]:
        obs, state, reward, terminated, truncated, info = self._env.step(
            key, state, action, self._params
        )
        timestep = TimeStep(
            obs=self._obs(obs),
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            terminated=jnp.asarray(terminated, bool).reshape(()),
            truncated=jnp.asarray(truncated, bool).reshape(()),
            final_obs=self._obs(info["final_observation"]),
            info={},
        )
        return state, timestep
