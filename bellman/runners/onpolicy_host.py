"""The host on-policy runner: a gymnasium vector env stepped in Python, jitted `act` and `learn`.

The same algorithm functions as the compiled runner; only the interaction loop differs. With
`seeds` > 1, one vector env holds `seeds * num_envs` envs and `act`/`learn` are vmapped over seeds,
so several seeds still cost one jitted call per step.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.contracts import OnPolicyAlgorithm
from bellman.envs.gymnasium_env import GymnasiumVectorEnv
from bellman.envs.registry import ResolvedEnv
from bellman.envs.spaces import Discrete
from bellman.rollout import Rollout
from bellman.runners.common import ChunkResult, HostEpisodes, seed_keys


class HostState(struct.PyTreeNode):
    """The part of a host run that lives on the device: `[seeds]` algorithm states and keys."""

    algo: Any
    key: jax.Array


def env_seed(seed: int, first_update: int) -> int:
    """The gymnasium seed of the envs when (re)starting at `first_update`."""
    return int(np.random.SeedSequence([seed, first_update]).generate_state(1)[0])


class HostOnPolicy:
    backend = "gymnasium"

    def __init__(
        self,
        algo: OnPolicyAlgorithm,
        config: Any,
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
        init = lambda key: algo.init(key, config, spec, total_updates)
        self._init = jax.jit(jax.vmap(init))
        # called through jit's own dispatch, the fastest path for a call per env step
        act = jax.vmap(functools.partial(self._policy_step, algo, config, spec))
        self._act = jax.jit(act)
        learn = jax.vmap(functools.partial(self._learn_step, algo, config, spec), in_axes=(0, 1))
        self._learn = jax.jit(learn, donate_argnums=0)
        self.obs = np.zeros((seeds, config.num_envs, *spec.obs_shape), spec.obs_dtype)

    @staticmethod
    def _policy_step(
        algo: OnPolicyAlgorithm, config: Any, spec: Any, algo_state: Any, obs: jax.Array, key: Any
    ) -> tuple[jax.Array, Any, jax.Array]:
        key, act_key = jax.random.split(key)
        action, info = algo.act(config, spec, algo_state, obs, act_key)
        return action, info, key

    @staticmethod
    def _learn_step(
        algo: OnPolicyAlgorithm, config: Any, spec: Any, state: HostState, rollout: Rollout
    ) -> tuple[HostState, dict[str, jax.Array]]:
        key, learn_key = jax.random.split(state.key)
        algo_state, metrics = algo.learn(config, spec, state.algo, rollout, learn_key)
        return HostState(algo_state, key), metrics

    @property
    def steps_per_update(self) -> int:
        return int(self.config.num_envs * self.config.num_steps)

    def init_state(self) -> HostState:
        keys = seed_keys(self.seed, self.seeds)
        split = jax.vmap(jax.random.split)(keys)
        state = HostState(self._init(split[:, 0]), split[:, 1])
        self._reset_envs(0)
        return state

    def _reset_envs(self, first_update: int) -> None:
        obs = self.envs.reset(env_seed(self.seed, first_update))
        self.obs = obs.reshape(self.obs.shape)

    def _templates(self) -> tuple[Any, Any, Any]:
        keys = seed_keys(self.seed, self.seeds)
        algo = jax.eval_shape(self._init, keys)
        obs = jax.ShapeDtypeStruct(self.obs.shape, self.obs.dtype)
        action, info, _ = jax.eval_shape(self._act, algo, obs, keys)
        t = self.config.num_steps
        over_time = lambda x: jax.ShapeDtypeStruct((t, *x.shape), x.dtype)
        flags = jax.ShapeDtypeStruct((t, self.seeds, self.num_envs), bool)
        fields: dict[str, Any] = {
            "obs": over_time(obs),
            "action": over_time(action),
            "reward": jax.ShapeDtypeStruct((t, self.seeds, self.num_envs), jnp.float32),
            "terminated": flags,
            "truncated": flags,
            "next_obs": over_time(obs),
            "policy_info": jax.tree.map(over_time, info),
        }
        return HostState(algo, keys), obs, Rollout(**fields)

    def state_template(self) -> HostState:
        return self._templates()[0]

    def compile(self) -> float:
        """Compile `act` and `learn` by calling them once on zeros of the right shapes (which
        fills jit's own cache, unlike ahead-of-time compilation); returns the seconds it took."""
        start = time.perf_counter()
        zeros = lambda tree: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
        state, obs, rollout = zeros(self._templates())
        jax.block_until_ready(self._act(state.algo, obs, state.key))
        jax.block_until_ready(self._learn(state, rollout))
        return time.perf_counter() - start

    def _collect(
        self, state: HostState, episodes: HostEpisodes, update: int
    ) -> tuple[HostState, Rollout]:
        cfg, spec = self.config, self.spec
        episodic = self.algo.EPISODIC
        if episodic:  # fresh episodes for every rollout; only each env's first one is counted
            self._reset_envs(update)
            counted = np.ones(self.envs.num_envs, bool)
        t_max, shape = cfg.num_steps, (self.seeds, self.num_envs)
        obs_buf = np.zeros((t_max, *self.obs.shape), self.obs.dtype)
        next_obs_buf = np.zeros_like(obs_buf)
        action_dtype = np.int32 if isinstance(spec.action_space, Discrete) else np.float32
        action_buf = np.zeros((t_max, *shape, *spec.action_space.shape), action_dtype)
        reward_buf = np.zeros((t_max, *shape), np.float32)
        terminated_buf = np.zeros((t_max, *shape), bool)
        truncated_buf = np.zeros((t_max, *shape), bool)
        infos = []
        key = state.key
        for t in range(t_max):
            action, info, key = self._act(state.algo, self.obs, key)
            action = np.asarray(action)  # the only transfer per step; `info` stays on device
            ts = self.envs.step(action.reshape((-1, *spec.action_space.shape)))
            obs_buf[t] = self.obs
            action_buf[t] = action
            reward_buf[t] = ts.reward.reshape(shape)
            terminated_buf[t] = ts.terminated.reshape(shape)
            truncated_buf[t] = ts.truncated.reshape(shape)
            next_obs_buf[t] = ts.final_obs.reshape(self.obs.shape)
            infos.append(info)
            self.obs = np.asarray(ts.obs).reshape(self.obs.shape)
            if episodic:
                ended = ts.info["episode_ended"] & counted
                counted &= ~ended
                episodes.add({**ts.info, "episode_ended": ended})
            else:
                episodes.add(ts.info)
        fields: dict[str, Any] = {
            "obs": obs_buf,
            "action": action_buf,
            "reward": reward_buf,
            "terminated": terminated_buf,
            "truncated": truncated_buf,
            "next_obs": next_obs_buf,
            "policy_info": jax.tree.map(lambda *xs: jnp.stack(xs), *infos),
        }
        return state.replace(key=key), Rollout(**fields)

    def run_chunk(self, state: HostState, first_update: int) -> tuple[HostState, ChunkResult]:
        episodes = HostEpisodes(self.seeds, self.num_envs)
        per_update: list[dict[str, Any]] = []
        for update in range(
            first_update, min(first_update + self.chunk_updates, self.total_updates)
        ):
            state, rollout = self._collect(state, episodes, update)
            state, metrics = self._learn(state, rollout)
            per_update.append(metrics)
        return state, episodes.chunk_result(per_update)

    def algo_state(self, state: HostState) -> Any:
        return state.algo

    def checkpoint_parts(self, state: HostState) -> dict[str, Any]:
        return {"algo": state.algo, "runner": {"key": state.key}}

    def checkpoint_templates(self) -> dict[str, Any]:
        template = self.state_template()
        return {"algo": template.algo, "runner": {"key": template.key}}

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> HostState:
        """Restore the device state; the envs restart fresh episodes, seeded from the update."""
        self._reset_envs(first_update)
        return HostState(parts["algo"], parts["runner"]["key"])

    def close(self) -> None:
        self.envs.close()
