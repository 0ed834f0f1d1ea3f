"""The host DAgger runner (Ross et al., 2011): the rounds of `runners.dagger` on a gymnasium
vector env (Box2D, MuJoCo, any gymnasium env), the mixture and the cloning jitted.

One round (`run_chunk`, per update), for every seed at once:

    beta_i = beta * beta_decay^i                                  (dagger.mixing_weight)
    T steps of the seeds' E envs, one jitted call per step for every seed: the expert's and
      the learner's greedy actions, each env's drawn from them with probability beta_i, and
      the expert's label of every env's observation                (_step: dagger.mixture)
    the round's observations and labels into D, then `gradient_steps` cloning steps, one
      jitted call for every seed                                    (_learn: dagger.learn_round)

One `GymnasiumVectorEnv` holds `seeds * num_envs` envs, seed-major, and goes on from round to
round: an episode is not cut where a round ends. The vector env resets an ended episode within
the step (SAME_STEP autoreset), so the observation the next step labels and acts on is already
the new episode's first, and an episode's last observation, where no action is taken, is never
labelled, as in the compiled runner.

A checkpoint holds the learner, D (observations, labels and count), the round and the keys;
the expert and the demonstrations are read again. Gymnasium envs cannot be saved: a resumed run
restarts its envs with seeds derived from the update it resumes at, so the episodes that were
running when the run stopped start over (their steps already in D stay there), and from there
on the run plays other episodes than an uninterrupted one would.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.contracts import LearnsFromData
from bellman.envs.gymnasium_env import GymnasiumVectorEnv
from bellman.envs.registry import ResolvedEnv
from bellman.envs.spaces import EnvSpec
from bellman.runners.common import ChunkResult, HostEpisodes, seed_keys
from bellman.runners.dagger import (
    Aggregate,
    DaggerData,
    Expert,
    empty_aggregate,
    learn_round,
    mixing_weight,
    mixture,
)
from bellman.runners.onpolicy_host import env_seed


class HostState(struct.PyTreeNode):
    """The part of a host DAgger run that lives on the device, per seed (a leading `[seeds]`
    axis): the learner, D, the rounds played and the key."""

    algo: Any
    aggregate: Aggregate
    round: jax.Array
    key: jax.Array


def _init(
    algo: LearnsFromData,
    config: Any,
    spec: EnvSpec,
    total_updates: int,
    key: jax.Array,
    data: DaggerData,
) -> HostState:
    key, algo_key = jax.random.split(key)
    algo_state = algo.init(algo_key, config, spec, total_updates)
    algo_state = algo.prepare(config, spec, algo_state, data.stats)
    obs = jnp.zeros((1, *spec.obs_shape), spec.obs_dtype)
    memory = empty_aggregate(config.aggregate_size, obs, data.expert)
    return HostState(algo_state, memory, jnp.zeros((), jnp.int32), key)


def _step(
    algo: LearnsFromData,
    config: Any,
    spec: EnvSpec,
    algo_state: Any,
    i: jax.Array,
    obs: jax.Array,
    key: jax.Array,
    expert: Expert,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One step of round i in a seed's envs: the mixture's actions, the expert's labels of `obs`
    `[E, ...]` and the key that replaces `key`."""
    key, mix_key = jax.random.split(key)
    beta = mixing_weight(config, i)
    action, label = mixture(algo, config, spec, algo_state, expert, obs, beta, mix_key)
    return action, label, key


def _learn(
    algo: LearnsFromData,
    config: Any,
    spec: EnvSpec,
    state: HostState,
    obs: jax.Array,
    labels: list[jax.Array],
    data: DaggerData,
) -> tuple[HostState, dict[str, jax.Array]]:
    """The end of a seed's round: its observations `[T, E, ...]` and the labels of each step
    (T arrays `[E, ...]`) into D, then the cloning phase (`dagger.learn_round`)."""
    key, learn_key = jax.random.split(state.key)
    flat = lambda x: x.reshape((-1, *x.shape[2:]))
    beta = mixing_weight(config, state.round)
    algo_state, memory, metrics = learn_round(
        algo,
        config,
        spec,
        state.algo,
        state.aggregate,
        data,
        flat(obs),
        flat(jnp.stack(labels)),
        beta,
        learn_key,
    )
    return HostState(algo_state, memory, state.round + 1, key), metrics


class HostDagger:
    """DAgger's rounds on `seeds * num_envs` gymnasium envs, with the expert and the
    demonstrations of `data` (`runners.dagger.DaggerData`) at hand."""

    backend = "gymnasium"

    def __init__(
        self,
        algo: LearnsFromData,
        config: Any,
        env: ResolvedEnv,
        seeds: int,
        seed: int,
        total_updates: int,
        chunk_updates: int,
        *,
        data: DaggerData,
    ):
        assert env.make_gym is not None
        self.algo, self.config, self.data = algo, config, data
        self.seeds, self.seed = seeds, seed
        self.total_updates, self.chunk_updates = total_updates, chunk_updates
        self.num_envs = config.num_envs
        self.envs = GymnasiumVectorEnv(env.id, env.make_gym, seeds * config.num_envs)
        self.spec = spec = self.envs.spec
        init = functools.partial(_init, algo, config, spec, total_updates)
        self._init = jax.jit(jax.vmap(init, in_axes=(0, None)))
        step = functools.partial(_step, algo, config, spec)
        self._step = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, 0, None)))
        learn = functools.partial(_learn, algo, config, spec)
        self._learn = jax.jit(jax.vmap(learn, in_axes=(0, 1, 0, None)), donate_argnums=0)
        self.obs = np.zeros((seeds, config.num_envs, *spec.obs_shape), spec.obs_dtype)

    @property
    def steps_per_update(self) -> int:
        return int(self.config.num_envs * self.config.num_steps)

    def _reset_envs(self, first_update: int) -> None:
        self.obs = self.envs.reset(env_seed(self.seed, first_update)).reshape(self.obs.shape)

    def init_state(self) -> HostState:
        self._reset_envs(0)
        return self._init(seed_keys(self.seed, self.seeds), self.data)

    def state_template(self) -> HostState:
        return jax.eval_shape(self._init, seed_keys(self.seed, self.seeds), self.data)

    def compile(self) -> float:
        """Compile the step and the round's learning by calling them once on zeros of the
        right shapes; returns the seconds it took."""
        start = time.perf_counter()
        zeros = lambda tree: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
        state = zeros(self.state_template())
        obs = jnp.zeros(self.obs.shape, self.obs.dtype)
        _, label, _ = self._step(state.algo, state.round, obs, state.key, self.data.expert)
        t = self.config.num_steps
        round_obs = jnp.zeros((t, *self.obs.shape), self.obs.dtype)
        jax.block_until_ready(self._learn(state, round_obs, [label] * t, self.data))
        return time.perf_counter() - start

    def _round(self, state: HostState, episodes: HostEpisodes) -> tuple[HostState, dict[str, Any]]:
        """One round: `num_steps` steps of every env with the round's mixture, each observation
        kept and labelled, then D and the cloning (`_learn`); the envs go on where they are."""
        action_shape = self.spec.action_space.shape
        obs = np.zeros((self.config.num_steps, *self.obs.shape), self.obs.dtype)
        labels = []
        key = state.key
        for t in range(self.config.num_steps):
            action, label, key = self._step(
                state.algo, state.round, self.obs, key, self.data.expert
            )
            ts = self.envs.step(np.asarray(action).reshape((-1, *action_shape)))
            obs[t] = self.obs
            labels.append(label)  # stays on the device
            self.obs = np.asarray(ts.obs).reshape(self.obs.shape)
            episodes.add(ts.info)
        return self._learn(state.replace(key=key), obs, labels, self.data)

    def run_chunk(self, state: HostState, first_update: int) -> tuple[HostState, ChunkResult]:
        episodes = HostEpisodes(self.seeds, self.num_envs)
        per_update: list[dict[str, Any]] = []
        for _ in range(first_update, min(first_update + self.chunk_updates, self.total_updates)):
            state, metrics = self._round(state, episodes)
            per_update.append(metrics)
        return state, episodes.chunk_result(per_update)

    def algo_state(self, state: HostState) -> Any:
        return state.algo

    def checkpoint_parts(self, state: HostState) -> dict[str, Any]:
        return {"algo": state.algo, "runner": state.replace(algo=None)}

    def checkpoint_templates(self) -> dict[str, Any]:
        template = self.state_template()
        return {"algo": template.algo, "runner": template.replace(algo=None)}

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> HostState:
        """Restore the learner, D, the round and the keys; the envs restart fresh episodes,
        seeded from the update."""
        self._reset_envs(first_update)
        return parts["runner"].replace(algo=parts["algo"])

    def close(self) -> None:
        self.envs.close()
