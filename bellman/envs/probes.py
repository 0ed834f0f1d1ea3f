"""Probe environments: tiny MDPs whose exact answer is known, to test what an algorithm learns.

Each isolates one piece of the learning machinery (after Andy Jones' "debugging RL" probes):
- `probe/ConstantReward-v0`: one step, reward 1 -> V(s) = 1 (the value loss works).
- `probe/ActionReward-v0`: one step, reward 1 for action 1 -> the policy picks it.
- `probe/ObsAction-v0`: one step, observation +-1, reward 1 when the action matches the sign -> the
  policy reads its input.
- `probe/Truncation-v0`: reward 1 forever, cut by a time limit of 10 steps -> with discount gamma,
  V(s) = 1 / (1 - gamma); an algorithm that treats the cut as a terminal state learns about 4.1
  instead of 10 for gamma = 0.9.
- `probe/ContinuousAction-v0`: one step, reward -(a - 0.5)^2 with a in [-1, 1] -> a = 0.5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bellman.envs.core import TimeStep, auto_reset
from bellman.envs.spaces import Box, Discrete, EnvSpec


class ProbeState(struct.PyTreeNode):
    obs: jax.Array
    time: jax.Array


class _Probe:
    """Shared mechanics: an observation drawn at reset, a reward function, an episode length."""

    spec: EnvSpec
    horizon: int

    @property
    def cache_key(self) -> str:
        return self.spec.id

    terminal: bool
    """Whether the episode terminates at `horizon` (True) or is truncated there (False)."""

    def _draw_obs(self, key: jax.Array) -> jax.Array:
        return jnp.ones(self.spec.obs_shape, jnp.float32)

    def _reward(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        raise NotImplementedError

    def reset(self, key: jax.Array) -> tuple[ProbeState, TimeStep]:
        obs = self._draw_obs(key)
        false = jnp.zeros((), bool)
        ts = TimeStep(obs, jnp.zeros((), jnp.float32), false, false, obs, {})
        return ProbeState(obs, jnp.zeros((), jnp.int32)), ts

    def step(
        self, key: jax.Array, state: ProbeState, action: jax.Array
    ) -> tuple[ProbeState, TimeStep]:
        time = state.time + 1
        at_end = time >= self.horizon
        reward = self._reward(state.obs, action).astype(jnp.float32)
        next_state = ProbeState(state.obs, time)
        ts = TimeStep(
            obs=state.obs,
            reward=reward,
            terminated=jnp.logical_and(at_end, self.terminal),
            truncated=jnp.logical_and(at_end, not self.terminal),
            final_obs=state.obs,
            info={},
        )
        return auto_reset(self, key, next_state, ts)


class ConstantReward(_Probe):
    horizon, terminal = 1, True

    def __init__(self) -> None:
        self.spec = EnvSpec("probe/ConstantReward-v0", (1,), "float32", Discrete(2), 1)

    def _reward(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return jnp.ones(())


class ActionReward(_Probe):
    horizon, terminal = 1, True

    def __init__(self) -> None:
        self.spec = EnvSpec("probe/ActionReward-v0", (1,), "float32", Discrete(2), 1)

    def _reward(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return (action == 1).astype(jnp.float32)


class ObsAction(_Probe):
    horizon, terminal = 1, True

    def __init__(self) -> None:
        self.spec = EnvSpec("probe/ObsAction-v0", (1,), "float32", Discrete(2), 1)

    def _draw_obs(self, key: jax.Array) -> jax.Array:
        return jnp.where(jax.random.bernoulli(key), 1.0, -1.0).reshape(1)

    def _reward(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return (action == (obs[0] > 0)).astype(jnp.float32)


class Truncation(_Probe):
    horizon, terminal = 10, False

    def __init__(self) -> None:
        self.spec = EnvSpec("probe/Truncation-v0", (1,), "float32", Discrete(2), 10)

    def _reward(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return jnp.ones(())


class ContinuousAction(_Probe):
    horizon, terminal = 1, True

    def __init__(self) -> None:
        self.spec = EnvSpec(
            "probe/ContinuousAction-v0", (1,), "float32", Box((1,), (-1.0,), (1.0,)), 1
        )

    def _reward(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return -jnp.sum((action - 0.5) ** 2)


PROBES = {
    p().spec.id: p for p in (ConstantReward, ActionReward, ObsAction, Truncation, ContinuousAction)
}
