"""The functional JAX environment protocol: explicit state, separate termination and truncation.

`reset(key) -> (state, TimeStep)` and `step(key, state, action) -> (state, TimeStep)`. Environments
reset themselves when an episode ends; `TimeStep.obs` is then the first observation of the next
episode and `TimeStep.final_obs` the true last observation of the one that ended, which an algorithm
needs to bootstrap a truncated (time-limited) episode.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from bellman.envs.spaces import EnvSpec


class TimeStep(struct.PyTreeNode):
    """What the agent sees after a reset or a step (one env; vmapped envs add leading axes)."""

    obs: jax.Array
    """Observation to act on next (the reset observation if the episode just ended)."""
    reward: jax.Array
    """Reward of the transition (0 after a reset)."""
    terminated: jax.Array
    """The episode reached a terminal state: no value beyond it."""
    truncated: jax.Array
    """The episode was cut (time limit): the value of `final_obs` still counts."""
    final_obs: jax.Array
    """The true next observation s_{t+1}; equals `obs` unless the episode just ended."""
    info: dict[str, jax.Array]
    """Extra per-step values; `EpisodeStatistics` adds `episode_return` and `episode_length`."""

    @property
    def done(self) -> jax.Array:
        """The episode ended (either way); works on JAX and numpy fields alike."""
        return self.terminated | self.truncated


class JaxEnv(Protocol):
    """Any environment written as pure JAX functions.

    An env may also have a `cache_key` string naming its code and parameters; with one, the
    programs compiled for it are kept on disk between runs (`bellman.runners.programs`), so it
    must change whenever either does. A user's env is checked against this protocol before it
    trains (`bellman.envs.protocol.check_jax_env`); docs/environments.md shows how to write one.
    """

    spec: EnvSpec

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]: ...

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[Any, TimeStep]: ...


class EpisodeState(struct.PyTreeNode):
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStatistics:
    """Wraps a JaxEnv to report each finished episode's undiscounted return and length.

    On a step that ends an episode, `info["episode_return"]` and `info["episode_length"]` hold the
    finished episode's totals; on other steps they hold the running totals.
    """

    def __init__(self, env: JaxEnv):
        self.env = env
        self.spec = env.spec
        inner = getattr(env, "cache_key", None)
        self.cache_key = None if inner is None else f"episode-statistics({inner})"

    def reset(self, key: jax.Array) -> tuple[EpisodeState, TimeStep]:
        env_state, ts = self.env.reset(key)
        zero = jnp.zeros((), jnp.float32)
        info = {**ts.info, "episode_return": zero, "episode_length": jnp.zeros((), jnp.int32)}
        state = EpisodeState(env_state, zero, jnp.zeros((), jnp.int32))
        return state, ts.replace(info=info)

    def step(
        self, key: jax.Array, state: EpisodeState, action: jax.Array
    ) -> tuple[EpisodeState, TimeStep]:
        env_state, ts = self.env.step(key, state.env_state, action)
        episode_return = state.episode_return + ts.reward
        episode_length = state.episode_length + 1
        info = {**ts.info, "episode_return": episode_return, "episode_length": episode_length}
        keep = 1 - ts.done
        new_state = EpisodeState(
            env_state,
            episode_return * keep,
            episode_length * keep.astype(jnp.int32),
        )
        return new_state, ts.replace(info=info)


def auto_reset(env: JaxEnv, key: jax.Array, state: Any, timestep: TimeStep) -> tuple[Any, TimeStep]:
    """Start a new episode where `timestep` ended one, keeping the true last observation.

    `timestep.obs` must be the observation reached by the step; on return it is the reset
    observation where the episode ended, and `final_obs` is the observation reached.
    """
    reset_state, reset_ts = env.reset(key)
    done = timestep.done
    state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
    obs = jnp.where(done, reset_ts.obs, timestep.obs)
    return state, timestep.replace(obs=obs, final_obs=timestep.obs)
