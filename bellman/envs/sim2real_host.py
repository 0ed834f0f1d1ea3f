"""Sim-to-real on the gymnasium (host) backend: MuJoCo models randomised per episode, and the
compiled backend's observation noise, action noise and action delay as a gymnasium wrapper.

`--randomize mass=0.7:1.3,friction=0.5:1.5` on a MuJoCo env draws, when each episode starts, one
factor per element from the named range and multiplies the nominal model by it:

    mass       every body's mass (and its inertia, by the same factor: the same shape, heavier)
    friction   every geom's sliding friction
    damping    every joint degree of freedom's damping
    gain       every actuator's gear (the force per unit of control)

The factors are multiples of the model's own values (unlike gymnax parameters, which are set in
their units), since a model has one value per body, geom, joint or actuator. A reset with a seed
reseeds the draws, so seeded episodes are reproducible.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from bellman.errors import ConfigError, closest

FIELDS: dict[str, tuple[str, ...]] = {
    "mass": ("body_mass", "body_inertia"),
    "friction": ("geom_friction",),
    "damping": ("dof_damping",),
    "gain": ("actuator_gear",),
}
"""A randomised quantity -> the MjModel arrays it scales (friction: the sliding column only;
gain: the gear's first column, the one a motor uses)."""
FIRST_COLUMN = {"geom_friction", "actuator_gear"}


def check_names(env_id: str, ranges: dict[str, tuple[float, float]]) -> None:
    """ConfigError for a name that is not one of FIELDS, or a factor range that is not
    positive."""
    for name, (low, _) in ranges.items():
        if name not in FIELDS:
            raise ConfigError(
                f"{env_id} (MuJoCo) randomizes {', '.join(FIELDS)} as factors of the model's "
                f"values, not '{name}'{closest(name, list(FIELDS))}"
            )
        if low <= 0:
            raise ConfigError(f"randomize {name} is a factor of the model's values: low > 0")


class MujocoRandomization(gym.Wrapper):
    """Scales the MuJoCo model's `ranges` quantities by factors drawn at every reset."""

    def __init__(self, env: gym.Env, ranges: dict[str, tuple[float, float]]):
        super().__init__(env)
        model = env.unwrapped.model  # type: ignore[attr-defined]
        self.ranges = ranges
        self.nominal = {
            field: np.array(getattr(model, field), copy=True)
            for name in ranges
            for field in FIELDS[name]
        }
        self.rng = np.random.default_rng()
        self.factors: dict[str, np.ndarray] = {}

    def _draw(self) -> None:
        factors = {}
        for name, (low, high) in self.ranges.items():
            count = len(self.nominal[FIELDS[name][0]])
            factors[name] = self.rng.uniform(low, high, count)
        self.set_factors(factors)

    def set_factors(self, factors: dict[str, Any]) -> None:
        """Scale the model's quantities by `factors` (a number, or one per element)."""
        model = self.env.unwrapped.model  # type: ignore[attr-defined]
        for name, given in factors.items():
            fields = FIELDS[name]
            count = len(self.nominal[fields[0]])
            factor = np.broadcast_to(np.asarray(given, np.float64), (count,))
            self.factors[name] = factor
            for field in fields:
                target, nominal = getattr(model, field), self.nominal[field]
                if field in FIRST_COLUMN:
                    target[:, 0] = nominal[:, 0] * factor
                else:
                    shape = (count,) + (1,) * (nominal.ndim - 1)
                    target[...] = nominal * factor.reshape(shape)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x5EED])
        self._draw()
        return self.env.reset(seed=seed, options=options)


def randomized_factory(factory: Any, ranges: dict[str, tuple[float, float]]) -> Any:
    """`factory` (an EnvFactory) with every env it makes wrapped in MujocoRandomization."""
    return functools.partial(_make_randomized, factory, ranges)


def _make_randomized(factory: Any, ranges: dict[str, tuple[float, float]], **kwargs: Any) -> Any:
    return MujocoRandomization(factory(**kwargs), ranges)


# ----- observation noise, action noise and action delay on the host -----


class HostNoise(gym.Wrapper):
    """The compiled backend's `ObservationNoise`, `ActionNoise` and `ActionDelay`
    (`bellman.envs.sim2real`) for a gymnasium env, in the same order: the env receives the
    action chosen `delay` steps before (the null action first), perturbed by `action_noise`;
    the policy sees observations with Gaussian noise of `obs_noise`. A seeded reset reseeds the
    noise."""

    def __init__(self, env: gym.Env, obs_noise: float, action_noise: float, delay: int):
        super().__init__(env)
        self.obs_noise, self.action_noise, self.delay = obs_noise, action_noise, delay
        self.rng = np.random.default_rng()
        self.pending: list[Any] = []
        space = env.action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        if self.discrete:
            self.null: Any = 0
        else:
            low, high = np.asarray(space.low), np.asarray(space.high)  # type: ignore[attr-defined]
            self.null = np.clip(np.zeros(low.shape, np.float32), low, high)

    def _observe(self, obs: Any) -> Any:
        if not self.obs_noise:
            return obs
        noisy = obs + self.obs_noise * self.rng.normal(size=np.shape(obs))
        return noisy.astype(np.asarray(obs).dtype)

    def _perturb(self, action: Any) -> Any:
        if not self.action_noise:
            return action
        space = self.env.action_space
        if self.discrete:
            if self.rng.uniform() < self.action_noise:
                return int(self.rng.integers(space.n))  # type: ignore[attr-defined]
            return action
        noisy = action + self.action_noise * self.rng.normal(size=np.shape(action))
        low, high = space.low, space.high  # type: ignore[attr-defined]
        return np.clip(noisy, low, high).astype(np.asarray(action).dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x401])
        self.pending = [self.null] * self.delay
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observe(obs), info

    def step(self, action: Any) -> Any:
        if self.delay:
            self.pending.append(action)
            action = self.pending.pop(0)
        obs, reward, terminated, truncated, info = self.env.step(self._perturb(action))
        return self._observe(obs), reward, terminated, truncated, info


def noisy_factory(factory: Any, obs_noise: float, action_noise: float, delay: int) -> Any:
    """`factory` (an EnvFactory) with every env it makes wrapped in HostNoise."""
    return functools.partial(_make_noisy, factory, obs_noise, action_noise, delay)


def _make_noisy(
    factory: Any, obs_noise: float, action_noise: float, delay: int, **kwargs: Any
) -> Any:
    return HostNoise(factory(**kwargs), obs_noise, action_noise, delay)
