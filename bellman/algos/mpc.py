"""Model predictive control with the env's own dynamics as the model: at every step, optimise an
open-loop action sequence over a horizon by simulating it from the env's current state, execute
its first action, and plan again from the next state (a receding horizon).

The algorithm, as the control runner drives it (`bellman.runners.control`):

    for each env step, in every env at once:
        from the env's state s_t, optimise a_{t:t+H} to maximise
            sum_{k<H} gamma^k r(s_{t+k}, a_{t+k}),  s_{t+k+1} = f(s_{t+k}, a_{t+k})   -> `plan`
          by CEM or MPPI (`bellman.ops.planning`), warm-started from the last plan
          shifted by one step                                                       -> `act`
        execute a_t; where the episode ended, the next plan starts afresh          -> `reset`

f is the env's `step` (its true dynamics: "system identification" already done), each candidate
sequence simulated from the same state with the same random keys (common random numbers), the
rewards after an episode's end left out. Continuous actions are sampled from Gaussians within
their bounds; discrete ones (RoboParking's four pushes) from one categorical distribution per
step, the most likely action executed. Nothing is learned: `bellman train mpc` runs the
controller for the run's env steps and reports its returns, like every algorithm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from bellman import config as cfg
from bellman.envs.core import JaxEnv
from bellman.envs.spaces import Box, Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.ops import planning


@dataclass(frozen=True)
class MPCConfig:
    """MPC's settings; the defaults plan Pendulum-v1's swing-up (CEM as in PETS, Chua et al.,
    2018: 5 iterations of 500 sequences, 50 elites, horizon 30)."""

    planner: Literal["cem", "mppi"] = "cem"
    """The trajectory optimiser: the cross-entropy method or MPPI."""
    horizon: int = 30
    """H, the steps each plan looks ahead."""
    population: int = 500
    """Candidate action sequences per iteration."""
    iterations: int = 5
    """Optimiser iterations per env step."""
    elites: int = 50
    """CEM: the best sequences the Gaussian is refitted to."""
    momentum: float = 0.1
    """CEM: the share of the old mean and standard deviation kept at each refit."""
    init_std: float = 0.5
    """The sampling standard deviation at the start of each step's optimisation, as a fraction
    of each action's half-range (MPPI keeps it)."""
    uniform_mix: float = 0.5
    """Discrete actions: the share of uniform probabilities mixed into each step's warm start,
    so that the search starts wide again (the counterpart of init_std)."""
    temperature: float = 1.0
    """MPPI: lambda, the weights exp((R - max R) / lambda) of the sampled sequences."""
    gamma: float = 1.0
    """The discount of the planned return."""
    warm_start: bool = True
    """Start each step's optimisation from the last plan shifted by one step (else from the
    middle of the action bounds)."""
    num_envs: int = 1
    """Envs controlled at once per seed."""

    @property
    def num_steps(self) -> int:
        """Env steps per update: one (a controller acts every step)."""
        return 1

    @property
    def steps_per_update(self) -> int:
        return self.num_envs

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent."""
        cfg.check_fields(self)
        cfg.at_least(self, 1, "horizon", "population", "iterations", "elites", "num_envs")
        cfg.within(self, 0, 1, "momentum", "gamma", "uniform_mix")
        cfg.positive(self, "init_std", "temperature")
        cfg.require(
            self.elites <= self.population,
            f"elites ({self.elites}) must be at most population ({self.population})",
        )


Config = MPCConfig
DEFAULT_STEPS = 2_000


class MPCState(struct.PyTreeNode):
    plans: jax.Array
    """`[E, H, *action_shape]` each env's current plan (the warm start of its next step); for
    discrete actions `[E, H, K]`, the probabilities of each step's action."""


class Step(struct.PyTreeNode):
    """What one step's planning found, `[E]` each."""

    planned_return: jax.Array
    """The planned return of the executed plan's sequence (its mean, evaluated)."""
    best_return: jax.Array
    """The highest return among the last iteration's samples."""


def check_env(config: MPCConfig, spec: EnvSpec) -> None:
    """MPC optimises bounded continuous actions or one discrete action per step."""
    space = spec.action_space
    if not (isinstance(space, Discrete) or (isinstance(space, Box) and space.bounded)):
        raise EnvError(
            f"mpc optimises bounded continuous actions or discrete ones (CEM and MPPI sample "
            f"them); {spec.id} has the action space {describe(space)}"
        )


def is_discrete(spec: EnvSpec) -> bool:
    return isinstance(spec.action_space, Discrete)


def bounds(spec: EnvSpec) -> tuple[jax.Array, jax.Array]:
    space = spec.action_space
    assert isinstance(space, Box)
    low = jnp.asarray(space.low, jnp.float32).reshape(space.shape)
    return low, jnp.asarray(space.high, jnp.float32).reshape(space.shape)


def middle(config: MPCConfig, spec: EnvSpec) -> jax.Array:
    """`[H, *action_shape]` the plan at the middle of the bounds (no warm start); for discrete
    actions, uniform probabilities `[H, K]`."""
    space = spec.action_space
    if isinstance(space, Discrete):
        return jnp.full((config.horizon, space.n), 1.0 / space.n, jnp.float32)
    low, high = bounds(spec)
    return jnp.broadcast_to((low + high) / 2.0, (config.horizon, *low.shape))


def init(key: jax.Array, config: MPCConfig, spec: EnvSpec, total_updates: int) -> MPCState:
    plan = middle(config, spec)
    return MPCState(jnp.broadcast_to(plan, (config.num_envs, *plan.shape)))


def simulated_return(
    config: MPCConfig, env: JaxEnv, env_state: Any, actions: jax.Array, keys: jax.Array
) -> jax.Array:
    """sum_k gamma^k r_k of the action sequence `actions` `[H, ...]` from `env_state` through
    the env's own step (rewards after the episode ends left out)."""

    def step(carry: tuple, inputs: tuple) -> tuple[tuple, None]:
        state, total, weight = carry
        action, key = inputs
        state, ts = env.step(key, state, action)
        total = total + weight * ts.reward
        weight = weight * config.gamma * (1.0 - ts.done.astype(jnp.float32))
        return (state, total, weight), None

    one = jnp.ones((), jnp.float32)
    (_, total, _), _ = jax.lax.scan(step, (env_state, 0.0 * one, one), (actions, keys))
    return total


def plan(
    config: MPCConfig, env: JaxEnv, env_state: Any, start: jax.Array, key: jax.Array
) -> tuple[planning.Plan, jax.Array]:
    """Optimise the action sequence of one env from its state `env_state`, starting from the
    plan `start` `[H, ...]`; returns the optimiser's answer and its sequence's planned return
    (for discrete actions: of each step's most likely action)."""
    model_keys = jax.random.split(jax.random.fold_in(key, 1), config.horizon)
    returns_of = jax.vmap(lambda seq: simulated_return(config, env, env_state, seq, model_keys))
    optimise_key = jax.random.fold_in(key, 0)
    if is_discrete(env.spec):
        start = (1.0 - config.uniform_mix) * start + config.uniform_mix / start.shape[-1]
        if config.planner == "cem":
            found = planning.cem_categorical(
                returns_of,
                start,
                optimise_key,
                population=config.population,
                elites=config.elites,
                iterations=config.iterations,
                momentum=config.momentum,
            )
        else:
            found = planning.mppi_categorical(
                returns_of,
                start,
                optimise_key,
                population=config.population,
                temperature=config.temperature,
                iterations=config.iterations,
                momentum=config.momentum,
            )
        chosen = jnp.argmax(found.mean, axis=-1).astype(jnp.int32)
        return found, returns_of(chosen[None])[0]
    low, high = bounds(env.spec)
    std = jnp.broadcast_to(config.init_std * (high - low) / 2.0, start.shape)
    if config.planner == "cem":
        found = planning.cem(
            returns_of,
            start,
            std,
            optimise_key,
            low=low,
            high=high,
            population=config.population,
            elites=config.elites,
            iterations=config.iterations,
            momentum=config.momentum,
        )
    else:
        found = planning.mppi(
            returns_of,
            start,
            std,
            optimise_key,
            low=low,
            high=high,
            population=config.population,
            temperature=config.temperature,
            iterations=config.iterations,
        )
    return found, returns_of(found.mean[None])[0]


def act(
    config: MPCConfig, env: JaxEnv, state: MPCState, env_states: Any, key: jax.Array
) -> tuple[jax.Array, MPCState, Step]:
    """The actions `[E, ...]` of every env's plan from its state, and the plans to warm-start
    the next step with."""
    keys = jax.random.split(key, config.num_envs)
    found, planned = jax.vmap(functools.partial(plan, config, env))(env_states, state.plans, keys)
    if is_discrete(env.spec):
        action = jnp.argmax(found.mean[:, 0], axis=-1).astype(jnp.int32)
    else:
        action = found.mean[:, 0]
    if config.warm_start:
        plans = jax.vmap(planning.shift)(found.mean)
    else:
        plans = jnp.broadcast_to(middle(config, env.spec), found.mean.shape)
    return action, state.replace(plans=plans), Step(planned, found.best_return)


def reset(config: MPCConfig, spec: EnvSpec, state: MPCState, done: jax.Array) -> MPCState:
    """The plans of the envs whose episode ended (`done` `[E]`) start again from the middle."""
    fresh = middle(config, spec)
    mask = done.reshape((-1,) + (1,) * fresh.ndim)
    return state.replace(plans=jnp.where(mask, fresh, state.plans))
