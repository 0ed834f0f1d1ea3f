"""What separates a simulator from the real system, as wrappers of a JAX env: physics drawn per
episode (domain randomisation), observation noise, action noise, and actions that act k steps late.

Domain randomisation (Tobin et al. 2017; Peng et al. 2018) trains on a distribution of
simulators so that the real one is, to the policy, one more sample. `--randomize` names gymnax
parameters with a uniform range each,

    m=0.5:2.0,l=0.7:1.3          (Pendulum-v1's mass and length, in its own units)

or a JSON object / file `{"m": [0.5, 2.0], ...}`. Every episode of every env of every seed draws
its own values when it starts; gymnax's derived fields (CartPole's `total_mass` and
`polemass_length`) are recomputed from each draw. The parameters live in the env state, so a
vmapped batch of envs is a batch of different simulators.

The wrappers compose in one order, from the simulator out (`wrap`): parameters, then the
action delay (the simulator receives the action chosen k steps before), then action noise (on
the action the policy chose), then observation noise (on what the policy sees, `final_obs`
included, so that a bootstrapped value reads the same kind of input it acts on).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman import config as cfg
from bellman.envs import options
from bellman.envs.core import JaxEnv, TimeStep
from bellman.envs.spaces import Box, Discrete
from bellman.errors import ConfigError, closest

Ranges = dict[str, tuple[float, float]]


# ----- settings -----


def _bounds(setting: str, name: str, value: Any) -> tuple[float, float]:
    """(low, high) of one range given as `low:high` text or a two-number JSON list."""
    if isinstance(value, str) and value.count(":") == 1:
        parts: Any = value.split(":")
    elif isinstance(value, list | tuple) and len(value) == 2:
        parts = value
    else:
        raise ConfigError(
            f"{setting} {name} takes a range low:high (or [low, high] in JSON), not {value!r}"
        )
    try:
        low, high = (float(x) for x in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} {name} takes two numbers low:high, not {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(
            f"{setting} {name} must be finite numbers with low <= high, not {low}:{high}"
        )
    return low, high


def parse_ranges(text: str, setting: str = "randomize") -> Ranges:
    """The ranges `text` gives: `name=low:high,...`, a JSON object of [low, high] lists, or a
    JSON file holding one; ConfigError, naming `setting`, for anything else."""
    stripped = text.strip()
    if stripped and not stripped.startswith("{") and "=" in stripped:
        # low:high is not JSON: read the pairs as text, so that 0.5:2.0 stays one value
        values: dict[str, Any] = {}
        for item in stripped.split(","):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or not name.isidentifier():
                raise ConfigError(
                    f"{setting} takes name=low:high pairs separated by commas, not '{item.strip()}'"
                )
            if name in values:
                raise ConfigError(f"{setting} gives '{name}' twice")
            values[name] = value.strip()
    else:
        values = options.parse(text, setting)
    if not values:
        raise ConfigError(f"{setting} names no parameter")
    return {name: _bounds(setting, name, value) for name, value in values.items()}


def canonical_ranges(ranges: Ranges | None) -> str | None:
    """Ranges as the JSON text a run records (None when there are none)."""
    if not ranges:
        return None
    return json.dumps({name: [low, high] for name, (low, high) in sorted(ranges.items())})


@dataclass(frozen=True)
class SimSettings:
    """What a run changes between the simulator and what the policy meets."""

    randomize: Ranges | None = None
    """gymnax parameter -> (low, high), drawn uniformly per episode."""
    obs_noise: float = 0.0
    """Standard deviation of Gaussian noise added to every observation."""
    action_noise: float = 0.0
    """Box actions: standard deviation of Gaussian noise added (then clipped to the box);
    discrete actions: the probability that a uniformly random action replaces the chosen one."""
    action_delay: int = 0
    """Steps between choosing an action and the simulator receiving it."""

    @property
    def active(self) -> bool:
        return bool(self.randomize) or bool(
            self.obs_noise or self.action_noise or self.action_delay
        )


def check_noise(obs_noise: float, action_noise: float, action_delay: int) -> None:
    """ConfigError for a noise level or delay out of range."""
    cfg.require(
        math.isfinite(obs_noise) and obs_noise >= 0,
        f"obs_noise must be a finite number >= 0, not {obs_noise!r}",
    )
    cfg.require(
        math.isfinite(action_noise) and action_noise >= 0,
        f"action_noise must be a finite number >= 0, not {action_noise!r}",
    )
    cfg.require(
        action_delay >= 0 and action_delay <= 1000,
        f"action_delay must be a whole number of steps from 0 to 1,000, not {action_delay!r}",
    )


# ----- domain randomisation -----


def check_randomizable(env_id: str, defaults: Any, ranges: Ranges) -> None:
    """ConfigError unless every name in `ranges` is a real-valued, settable gymnax parameter."""
    fields = [f.name for f in dataclasses.fields(defaults)]
    derived = options.DERIVED.get(env_id, {})
    floats = [
        name
        for name in fields
        if name not in derived and isinstance(getattr(defaults, name), float)
    ]
    for name in ranges:
        if name in derived:
            sources = " and ".join(derived[name][0])
            raise ConfigError(
                f"{env_id} parameter {name} follows from {sources}: randomize those instead"
            )
        if name not in floats:
            known = name in fields
            raise ConfigError(
                f"{env_id} "
                + (
                    f"parameter {name} is not a real number"
                    if known
                    else f"has no parameter '{name}'"
                )
                + (closest(name, floats) if not known else "")
                + f"; the ones that can be randomized are {', '.join(floats)}"
            )


def with_derived(env_id: str, params: Any) -> Any:
    """`params` with gymnax's derived fields recomputed from the others."""
    derived = options.DERIVED.get(env_id, {})
    if not derived:
        return params
    return params.replace(**{name: how(params) for name, (_, how) in derived.items()})


class ParamState(struct.PyTreeNode):
    env_state: Any
    values: dict[str, jax.Array]
    """The randomized parameters' values for the episode under way."""


class DomainRandomization:
    """A gymnax env (`bellman.envs.gymnax_env.GymnaxEnv`) whose parameters named in `ranges`
    are drawn uniformly when each episode starts: s_0 and every step of the episode use them."""

    def __init__(self, env: Any, ranges: Ranges):
        check_randomizable(env.spec.id, env.params, ranges)
        self.env, self.ranges = env, dict(sorted(ranges.items()))
        self.spec = env.spec
        self.cache_key = f"randomize({env.cache_key}, {canonical_ranges(self.ranges)})"

    def draw(self, key: jax.Array) -> dict[str, jax.Array]:
        """One episode's values of the randomized parameters."""
        keys = jax.random.split(key, len(self.ranges))
        return {
            name: jax.random.uniform(k, (), jnp.float32, low, high)
            for k, (name, (low, high)) in zip(keys, self.ranges.items(), strict=True)
        }

    def params(self, values: dict[str, jax.Array]) -> Any:
        """The env's parameters with `values` put in, derived fields recomputed."""
        return with_derived(self.spec.id, self.env.params.replace(**values))

    def reset(self, key: jax.Array) -> tuple[ParamState, TimeStep]:
        draw_key, reset_key = jax.random.split(key)
        values = self.draw(draw_key)
        env_state, ts = self.env.reset_with(reset_key, self.params(values))
        return ParamState(env_state, values), ts

    def step(
        self, key: jax.Array, state: ParamState, action: jax.Array
    ) -> tuple[ParamState, TimeStep]:
        step_key, draw_key, reset_key = jax.random.split(key, 3)
        env_state, ts = self.env.step_with(
            step_key, state.env_state, action, self.params(state.values)
        )
        values = self.draw(draw_key)
        reset_state, reset_ts = self.env.reset_with(reset_key, self.params(values))
        done = ts.done
        pick = lambda new, old: jnp.where(done, new, old)
        new_state = ParamState(
            jax.tree.map(pick, reset_state, env_state), jax.tree.map(pick, values, state.values)
        )
        return new_state, ts.replace(obs=pick(reset_ts.obs, ts.obs))


# ----- noise and delay -----


class ObservationNoise:
    """Gaussian noise of standard deviation `std` on every observation the policy sees."""

    def __init__(self, env: JaxEnv, std: float):
        self.env, self.std, self.spec = env, float(std), env.spec
        inner = getattr(env, "cache_key", None)
        self.cache_key = None if inner is None else f"obs-noise({inner}, {self.std!r})"

    def _noisy(self, key: jax.Array, ts: TimeStep) -> TimeStep:
        obs_key, final_key = jax.random.split(key)
        noise = lambda k, x: x + self.std * jax.random.normal(k, x.shape, x.dtype)
        obs = noise(obs_key, ts.obs)
        # where the episode goes on, the next observation is the one reached: the same draw
        final = jnp.where(ts.done, noise(final_key, ts.final_obs), obs)
        return ts.replace(obs=obs, final_obs=final)

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]:
        key, noise_key = jax.random.split(key)
        state, ts = self.env.reset(key)
        return state, self._noisy(noise_key, ts)

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[Any, TimeStep]:
        key, noise_key = jax.random.split(key)
        state, ts = self.env.step(key, state, action)
        return state, self._noisy(noise_key, ts)


class ActionNoise:
    """Box actions: Gaussian noise of standard deviation `level` added, then clipped to the box.
    Discrete actions: with probability `level` a uniformly random action instead."""

    def __init__(self, env: JaxEnv, level: float):
        space = env.spec.action_space
        if not isinstance(space, Box | Discrete):
            raise ConfigError(f"action_noise needs Box or Discrete actions, not {space}")
        if isinstance(space, Discrete) and level > 1:
            raise ConfigError(
                f"action_noise on discrete actions is a probability, at most 1, not {level!r}"
            )
        self.env, self.level, self.spec = env, float(level), env.spec
        inner = getattr(env, "cache_key", None)
        self.cache_key = None if inner is None else f"action-noise({inner}, {self.level!r})"

    def perturb(self, key: jax.Array, action: jax.Array) -> jax.Array:
        space = self.spec.action_space
        if isinstance(space, Discrete):
            replace_key, action_key = jax.random.split(key)
            other = jax.random.randint(action_key, jnp.shape(action), 0, space.n, jnp.int32)
            replaced = jax.random.uniform(replace_key, jnp.shape(action)) < self.level
            return jnp.where(replaced, other, action).astype(jnp.asarray(action).dtype)
        assert isinstance(space, Box)
        noisy = action + self.level * jax.random.normal(key, jnp.shape(action), jnp.float32)
        return space.clip(noisy) if space.bounded else noisy

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]:
        return self.env.reset(key)

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[Any, TimeStep]:
        key, noise_key = jax.random.split(key)
        return self.env.step(key, state, self.perturb(noise_key, action))


class DelayState(struct.PyTreeNode):
    env_state: Any
    pending: jax.Array
    """The last k actions chosen, oldest first: pending[0] reaches the simulator next."""


class ActionDelay:
    """The simulator receives each action `k` steps after the policy chose it; an episode's first
    k steps apply the null action (0, or the zero vector clipped into the box)."""

    def __init__(self, env: JaxEnv, k: int):
        if k < 1:
            raise ConfigError(f"an action delay is at least 1 step, not {k!r}")
        self.env, self.k, self.spec = env, int(k), env.spec
        inner = getattr(env, "cache_key", None)
        self.cache_key = None if inner is None else f"action-delay({inner}, {self.k})"

    def _null(self) -> jax.Array:
        space = self.spec.action_space
        if isinstance(space, Box):
            null = jnp.zeros(space.shape, jnp.float32)
            return space.clip(null) if space.bounded else null
        return jnp.zeros((), jnp.int32)

    def _queue(self) -> jax.Array:
        null = self._null()
        return jnp.broadcast_to(null, (self.k, *null.shape))

    def reset(self, key: jax.Array) -> tuple[DelayState, TimeStep]:
        state, ts = self.env.reset(key)
        return DelayState(state, self._queue()), ts

    def step(
        self, key: jax.Array, state: DelayState, action: jax.Array
    ) -> tuple[DelayState, TimeStep]:
        pending = state.pending
        action = jnp.asarray(action, pending.dtype).reshape(pending.shape[1:])
        env_state, ts = self.env.step(key, state.env_state, pending[0])
        queued = jnp.concatenate([pending[1:], action[None]])
        # a new episode starts with nothing pending
        queued = jnp.where(ts.done, self._queue(), queued)
        return DelayState(env_state, queued), ts


def wrap(env: JaxEnv, sim: SimSettings) -> JaxEnv:
    """`env` with the simulator-to-real wrappers `sim` asks for, innermost first: randomized
    parameters, action delay, action noise, observation noise."""
    if sim.randomize:
        env = DomainRandomization(env, sim.randomize)
    if sim.action_delay:
        env = ActionDelay(env, sim.action_delay)
    if sim.action_noise:
        env = ActionNoise(env, sim.action_noise)
    if sim.obs_noise:
        env = ObservationNoise(env, sim.obs_noise)
    return env
