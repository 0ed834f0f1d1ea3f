"""JAX environments written as a user would, for bellman's compiled backend.

`Signpost` is the worked example of docs/environments.md (a test checks that the page shows this
code as it is here); the envs after it each break the protocol in one way, for the tests of its
error messages.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.envs import Discrete, EnvSpec, TimeStep, auto_reset

# --- the worked example: begin ---


class SignpostState(struct.PyTreeNode):
    position: jax.Array  # int32 cell, 0 .. length - 1
    goal: jax.Array  # int32: +1 when the right door is the open one, -1 the left
    t: jax.Array  # int32 steps taken in this episode


class Signpost:
    """A corridor with a door at each end; a signpost in the observation says which one opens.

    Start in the middle; action 1 steps right, 0 steps left. Reaching the open door pays +1 and
    the closed one -1, and either ends the episode (terminated). An episode still going after
    `max_steps` steps is cut (truncated). Observation: [position in [0, 1], signpost +-1].
    A greedy agent that reads the signpost earns 1; one that ignores it earns 0 on average.
    """

    def __init__(self, length: int = 5, max_steps: int = 10):
        self.length, self.max_steps = length, max_steps
        self.spec = EnvSpec(
            id="Signpost-v0",
            obs_shape=(2,),
            obs_dtype="float32",
            action_space=Discrete(2),
            max_episode_steps=max_steps,
        )
        # optional: with a cache_key, compiled programs are kept between runs; it must change
        # whenever the code or the parameters do
        self.cache_key = f"signpost-v0 length={length} max_steps={max_steps}"

    def _obs(self, state: SignpostState) -> jax.Array:
        where = state.position / (self.length - 1)
        return jnp.stack([where, state.goal]).astype(jnp.float32)

    def reset(self, key: jax.Array) -> tuple[SignpostState, TimeStep]:
        goal = jnp.where(jax.random.bernoulli(key), 1, -1).astype(jnp.int32)
        state = SignpostState(jnp.int32(self.length // 2), goal, jnp.int32(0))
        obs = self._obs(state)
        false = jnp.zeros((), bool)
        return state, TimeStep(obs, jnp.float32(0.0), false, false, obs, {})

    def step(
        self, key: jax.Array, state: SignpostState, action: jax.Array
    ) -> tuple[SignpostState, TimeStep]:
        position = state.position + jnp.where(action == 1, 1, -1)
        at_right, at_left = position == self.length - 1, position == 0
        opened = jnp.where(at_right, 1, -1) == state.goal
        reward = jnp.where(at_right | at_left, jnp.where(opened, 1.0, -1.0), 0.0)
        state = state.replace(position=position, t=state.t + 1)
        terminated = at_right | at_left
        truncated = ~terminated & (state.t >= self.max_steps)
        obs = self._obs(state)
        timestep = TimeStep(obs, reward.astype(jnp.float32), terminated, truncated, obs, {})
        # a new episode where this one ended; final_obs keeps the observation reached
        return auto_reset(self, key, state, timestep)


# --- the worked example: end ---


def make_signpost(length: int = 5, max_steps: int = 10) -> Signpost:
    """A function making the env, as `--env tests.jax_envs:make_signpost` names it."""
    return Signpost(length, max_steps)


SIGNPOST = Signpost()
"""An env object, as `--env tests.jax_envs:SIGNPOST` names it."""


# ----- envs that break the protocol, one way each -----


class NoReset:
    def __init__(self) -> None:
        self.spec = Signpost().spec

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> Any:
        return Signpost().step(key, state, action)


class NoSpec(Signpost):
    def __init__(self) -> None:
        super().__init__()
        del self.spec


class DictSpec(Signpost):
    def __init__(self) -> None:
        super().__init__()
        self.spec = {"obs_shape": (2,), "action_space": 2}  # type: ignore[assignment]


class WrongObsShape(Signpost):
    """reset() returns 3 numbers where the spec says 2."""

    def reset(self, key: jax.Array) -> tuple[SignpostState, TimeStep]:
        state, ts = super().reset(key)
        obs = jnp.zeros(3, jnp.float32)
        return state, ts.replace(obs=obs, final_obs=obs)


class WrongObsDtype(Signpost):
    """Observations of int32 where the spec says float32."""

    def _obs(self, state: SignpostState) -> jax.Array:
        return jnp.stack([state.position, state.goal]).astype(jnp.int32)


class WrongStepSignature(Signpost):
    """step(state, action), without the key (as jumanji's envs have it)."""

    def step(self, state: SignpostState, action: jax.Array) -> Any:  # type: ignore[override]
        return super().step(jax.random.PRNGKey(0), state, action)


class WrongStepReturn(Signpost):
    """step() returns gymnasium's five values."""

    def step(self, key: jax.Array, state: SignpostState, action: jax.Array) -> Any:
        state, ts = super().step(key, state, action)
        return ts.obs, ts.reward, ts.terminated, ts.truncated, ts.info


class IntReward(Signpost):
    """A reward of int32."""

    def step(self, key: jax.Array, state: SignpostState, action: jax.Array) -> Any:
        state, ts = super().step(key, state, action)
        return state, ts.replace(reward=ts.reward.astype(jnp.int32))


class StateChanges(Signpost):
    """step() returns a state of another structure than reset()'s."""

    def step(self, key: jax.Array, state: SignpostState, action: jax.Array) -> Any:
        state, ts = super().step(key, state, action)
        return (state, state.t), ts


class PythonBranch(Signpost):
    """Python control flow on a traced value: an error at the line, while bellman traces it."""

    def step(self, key: jax.Array, state: SignpostState, action: jax.Array) -> Any:
        if action == 1:  # line: python branch
            return super().step(key, state, action)
        return super().step(key, state, action)
