"""The host off-policy runner: a gymnasium vector env stepped in Python; storing, acting and
learning jitted, the replay memory on the device.

The same loop as `runners.offpolicy` and the same functions: every env step is one jitted call
(`_store_and_act`: the step's transition goes into D, and the exploration policy chooses the next
actions), every `train_frequency` steps one jitted learning phase (`offpolicy.learn_if_ready`).
With `seeds` > 1 one vector env holds `seeds * num_envs` envs and everything is vmapped over seeds.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman import buffers
from bellman.contracts import OffPolicyAlgorithm, ReplayLoop
from bellman.envs.gymnasium_env import GymnasiumVectorEnv
from bellman.envs.registry import ResolvedEnv
from bellman.envs.spaces import EnvSpec
from bellman.runners import offpolicy
from bellman.runners.common import ChunkResult, HostEpisodes, seed_keys
from bellman.runners.offpolicy import RunnerState
from bellman.runners.onpolicy_host import env_seed


def _act(
    algo: OffPolicyAlgorithm, config: ReplayLoop, spec: EnvSpec, state: RunnerState
) -> tuple[jax.Array, Any, jax.Array]:
    """The key and noise state that replace `state.key` and `state.noise`, and the next actions.
    Only these come out: a jitted function that returned the state would copy the replay memory
    into its output."""
    key, act_key = jax.random.split(state.key)
    action, noise = offpolicy.explore(algo, config, spec, state, act_key)
    return key, noise, action


def _store_and_act(
    algo: OffPolicyAlgorithm,
    config: ReplayLoop,
    spec: EnvSpec,
    state: RunnerState,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    final_obs: jax.Array,
    obs: jax.Array,
) -> tuple[RunnerState, jax.Array]:
    """Store one step of every env in D, then choose the next actions on `obs`."""
    buffer = buffers.add(state.buffer, action, reward, terminated, truncated, final_obs, obs)
    state = state.replace(
        buffer=buffer,
        obs=obs,
        env_steps=state.env_steps + config.num_envs,
        noise=offpolicy.restart_noise(state.noise, terminated | truncated),
    )
    key, noise, action = _act(algo, config, spec, state)
    return state.replace(key=key, noise=noise), action


def _init(
    algo: OffPolicyAlgorithm,
    config: ReplayLoop,
    spec: EnvSpec,
    total_updates: int,
    key: jax.Array,
    obs: Any,
) -> RunnerState:
    key, algo_key = jax.random.split(key)
    algo_state = algo.init(algo_key, config, spec, total_updates)
    buffer = offpolicy.empty_buffer(config, spec, obs)
    return RunnerState(
        algo=algo_state,
        buffer=buffer,
        env_state=None,
        obs=obs,
        key=key,
        env_steps=jnp.zeros((), jnp.int32),
        noise=offpolicy.init_noise(algo, config, spec),
        total_steps=total_updates * config.steps_per_update,
    )


def _restart(state: RunnerState, obs: jax.Array) -> RunnerState:
    """The envs restarted (a resumed run): their first observations start new episodes in D,
    and the exploration noise starts again from zero."""
    noise = jax.tree.map(jnp.zeros_like, state.noise)
    return state.replace(buffer=buffers.start(state.buffer, obs), obs=obs, noise=noise)


class HostOffPolicy:
    backend = "gymnasium"

    def __init__(
        self,
        algo: OffPolicyAlgorithm,
        config: ReplayLoop,
        env: ResolvedEnv,
        seeds: int,
        seed: int,
        total_updates: int,
        chunk_updates: int,
    ):
        assert env.make_gym is not None
        self.algo, self.config = algo, config
        self.seeds, self.seed = seeds, seed
        self.total_updates, self.chunk_updates = total_updates, chunk_updates
        self.num_envs = config.num_envs
        self.envs = GymnasiumVectorEnv(env.id, env.make_gym, seeds * config.num_envs)
        self.spec = spec = self.envs.spec
        init = functools.partial(_init, algo, config, spec, total_updates)
        self._init = jax.jit(jax.vmap(init))
        self._next_actions = jax.jit(jax.vmap(functools.partial(_act, algo, config, spec)))
        store = functools.partial(_store_and_act, algo, config, spec)
        self._store_and_act = jax.jit(jax.vmap(store), donate_argnums=0)
        learn = jax.vmap(functools.partial(self._learn_step, algo, config, spec), (0, None))
        self._learn = jax.jit(learn, donate_argnums=0)
        self._restart = jax.jit(jax.vmap(_restart), donate_argnums=0)
        self._shape = (seeds, config.num_envs)
        self.obs = np.zeros((*self._shape, *spec.obs_shape), spec.obs_dtype)
        self._action: Any = None
        """The actions chosen for `self.obs` (on the device)."""

    def _act(self, state: RunnerState) -> tuple[RunnerState, jax.Array]:
        key, noise, action = self._next_actions(state)
        return state.replace(key=key, noise=noise), action

    @staticmethod
    def _learn_step(
        algo: OffPolicyAlgorithm,
        config: ReplayLoop,
        spec: EnvSpec,
        state: RunnerState,
        update: Any,
    ) -> tuple[RunnerState, dict[str, jax.Array]]:
        state, metrics = offpolicy.learn_if_ready(algo, config, spec, state, update)
        return state, {**metrics, **offpolicy.progress_metrics(algo, config, state)}

    @property
    def steps_per_update(self) -> int:
        return self.config.steps_per_update

    def _reset_envs(self, first_update: int) -> None:
        self.obs = self.envs.reset(env_seed(self.seed, first_update)).reshape(self.obs.shape)

    def init_state(self) -> RunnerState:
        self._reset_envs(0)
        state = self._init(seed_keys(self.seed, self.seeds), self.obs)
        state, self._action = self._act(state)
        return state

    def state_template(self) -> RunnerState:
        obs = jax.ShapeDtypeStruct(self.obs.shape, self.obs.dtype)
        return jax.eval_shape(self._init, seed_keys(self.seed, self.seeds), obs)

    def compile(self) -> float:
        """Compile acting, storing and learning by calling them on zeros of the right shapes."""
        start = time.perf_counter()
        zeros = lambda tree: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
        state = zeros(self.state_template())
        state, action = self._act(state)
        flags = jnp.zeros(self._shape, bool)
        reward = jnp.zeros(self._shape, jnp.float32)
        state, action = self._store_and_act(
            state, action, reward, flags, flags, state.obs, state.obs
        )
        state, _ = self._learn(state, jnp.int32(0))
        jax.block_until_ready(self._restart(state, state.obs))
        return time.perf_counter() - start

    def _collect(self, state: RunnerState, episodes: HostEpisodes) -> RunnerState:
        """`train_frequency` steps of every env, each stored in D."""
        action_shape = self.spec.action_space.shape
        shaped = lambda x: x.reshape((*self._shape, *x.shape[1:]))
        for _ in range(self.config.train_frequency):
            action = np.asarray(self._action)  # the one transfer from the device per step
            ts = self.envs.step(action.reshape((-1, *action_shape)))
            state, self._action = self._store_and_act(
                state,
                self._action,
                shaped(ts.reward),
                shaped(ts.terminated),
                shaped(ts.truncated),
                shaped(ts.final_obs),
                shaped(ts.obs),
            )
            episodes.add(ts.info)
        return state

    def run_chunk(self, state: RunnerState, first_update: int) -> tuple[RunnerState, ChunkResult]:
        episodes = HostEpisodes(self.seeds, self.num_envs)
        per_update: list[dict[str, Any]] = []
        for update in range(
            first_update, min(first_update + self.chunk_updates, self.total_updates)
        ):
            state = self._collect(state, episodes)
            state, metrics = self._learn(state, jnp.int32(update + 1))  # after its steps
            state, self._action = self._act(state)  # the next actions, with the new parameters
            per_update.append(metrics)
        return state, episodes.chunk_result(per_update)

    def algo_state(self, state: RunnerState) -> Any:
        return state.algo

    def checkpoint_parts(self, state: RunnerState) -> dict[str, Any]:
        return {"algo": state.algo, "runner": state.replace(algo=None)}

    def checkpoint_templates(self) -> dict[str, Any]:
        template = self.state_template()
        return {"algo": template.algo, "runner": template.replace(algo=None)}

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> RunnerState:
        """Restore the state and replay memory; the envs restart fresh episodes, seeded from the
        update, which begin new episodes in D."""
        state = parts["runner"].replace(algo=parts["algo"])
        self._reset_envs(first_update)
        state = self._restart(state, jnp.asarray(self.obs))
        state, self._action = self._act(state)
        return state

    def close(self) -> None:
        self.envs.close()
