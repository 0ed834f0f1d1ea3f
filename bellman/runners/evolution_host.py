"""The host evolution runner: the population's episodes on a gymnasium vector env (MuJoCo, any
gymnasium env), with jitted `ask`, `act` and `tell` vmapped over seeds.

One generation (`run_chunk`, per update):

    the members of every seed, and each seed's centre                        (jitted ask)
    reset all seeds x (P + 1) x episodes envs, seeded from the run's seed and the update
    step them together, one jitted call for every member's actions per step, until every
    episode ended or max_steps passed; finished envs are masked             (jitted act)
    the strategy's update from the members' mean returns                    (jitted tell)

Every generation starts fresh episodes from seeds that depend only on the update, so a resumed
run plays the same episodes as an uninterrupted one.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman.contracts import EvolutionAlgorithm
from bellman.envs.gymnasium_env import GymnasiumVectorEnv
from bellman.envs.registry import ResolvedEnv
from bellman.nets import flatten_obs
from bellman.runners.common import ChunkResult, reduce_metrics, seed_keys
from bellman.runners.evolution import EvolutionState, moments_of
from bellman.runners.onpolicy_host import env_seed


class HostEvolution:
    backend = "gymnasium"

    def __init__(
        self,
        algo: EvolutionAlgorithm,
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
        self.members = config.population + 1  # and the centre, last
        self.shape = (seeds, self.members, config.episodes)
        self.envs = GymnasiumVectorEnv(env.id, env.make_gym, int(np.prod(self.shape)))
        self.spec = spec = self.envs.spec

        def init(key: jax.Array) -> EvolutionState:
            key, algo_key = jax.random.split(key)
            return EvolutionState(algo.init(algo_key, config, spec, total_updates), key)

        def ask(state: EvolutionState) -> tuple[EvolutionState, Any, Any]:
            key, ask_key = jax.random.split(state.key)
            population, algo_state = algo.ask(config, spec, state.algo, ask_key)
            centre = algo.center(config, spec, algo_state)
            members = jax.tree.map(lambda p, c: jnp.concatenate([p, c[None]]), population, centre)
            return EvolutionState(algo_state, key), population, members

        def act(algo_state: Any, members: Any, obs: jax.Array) -> jax.Array:
            member_act = jax.vmap(algo.act, in_axes=(None, None, None, 0, 0))
            return member_act(config, spec, algo_state, members, obs)

        def tell(
            state: EvolutionState,
            population: Any,
            returns: jax.Array,
            moments: tuple[jax.Array, jax.Array, jax.Array],
        ) -> tuple[EvolutionState, dict[str, jax.Array]]:
            key, tell_key = jax.random.split(state.key)
            algo_state, metrics = algo.tell(
                config, spec, state.algo, population, returns, moments, tell_key
            )
            return EvolutionState(algo_state, key), metrics

        self._init = jax.jit(jax.vmap(init))
        self._ask = jax.jit(jax.vmap(ask))
        self._act = jax.jit(jax.vmap(act))
        self._tell = jax.jit(jax.vmap(tell))

    @property
    def steps_per_update(self) -> int:
        return int(self.config.num_envs * self.config.num_steps)

    def init_state(self) -> EvolutionState:
        return self._init(seed_keys(self.seed, self.seeds))

    def state_template(self) -> EvolutionState:
        return jax.eval_shape(self._init, seed_keys(self.seed, self.seeds))

    def compile(self) -> float:
        """Compile `ask`, `act` and `tell` by calling them once on zeros of the right shapes;
        returns the seconds it took."""
        start = time.perf_counter()
        zeros = lambda tree: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
        state = zeros(self.state_template())
        state, population, members = self._ask(state)
        obs = jnp.zeros((*self.shape, *self.spec.obs_shape), self.spec.obs_dtype)
        jax.block_until_ready(self._act(state.algo, members, obs))
        returns = jnp.zeros((self.seeds, self.config.population))
        features = flatten_obs(obs[0, 0, 0], self.spec.obs_shape).shape[-1]
        moments = (jnp.zeros(self.seeds), jnp.zeros((self.seeds, features)))
        jax.block_until_ready(self._tell(state, population, returns, (*moments, moments[1])))
        return time.perf_counter() - start

    def _play(self, state: EvolutionState, members: Any, update: int) -> dict[str, Any]:
        """Every member's episodes, side by side: returns and lengths `[S, M, E]`, the visited
        observations' moments per seed, and the steps the loop ran."""
        spec, shape = self.spec, self.shape
        base = env_seed(self.seed, update) % 2**31
        seeds = np.arange(self.envs.num_envs).reshape(shape)
        if self.config.common_episodes:  # every member's episode e starts from one state
            seeds = np.broadcast_to(seeds[:, :1], shape)
        obs = self.envs.reset([int(base + s) for s in seeds.flat])
        obs = obs.reshape((*shape, *spec.obs_shape))
        alive = np.ones(shape, bool)
        returns, lengths = np.zeros(shape), np.zeros(shape)
        features = lambda obs: obs.reshape((*shape, -1)).astype(np.float64)
        total, squares = (np.zeros((self.seeds, features(obs).shape[-1])) for _ in range(2))
        t = 0
        while t < self.config.max_steps and alive.any():
            if self.config.normalize_obs:
                x = features(obs) * alive[..., None]
                total += x.sum(axis=(1, 2))
                squares += (x * x).sum(axis=(1, 2))
            action = np.asarray(self._act(state.algo, members, obs))
            ts = self.envs.step(action.reshape((-1, *spec.action_space.shape)))
            returns += np.where(alive, ts.reward.reshape(shape), 0.0)
            lengths += alive
            alive &= ~(ts.terminated | ts.truncated).reshape(shape)
            obs = np.asarray(ts.obs).reshape((*shape, *spec.obs_shape))
            t += 1
        count = lengths.sum(axis=(1, 2))
        moments = (count, *moments_of(count, total, squares))
        return {"returns": returns, "lengths": lengths, "moments": moments, "t": t}

    def run_chunk(
        self, state: EvolutionState, first_update: int
    ) -> tuple[EvolutionState, ChunkResult]:
        per_update: list[dict[str, Any]] = []
        last = min(first_update + self.chunk_updates, self.total_updates)
        for update in range(first_update, last):
            state, population, members = self._ask(state)
            played = self._play(state, members, update)
            returns, lengths = played["returns"][:, :-1], played["lengths"][:, :-1]
            moments = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), played["moments"])
            mean_returns = jnp.asarray(returns.mean(axis=2), jnp.float32)
            state, metrics = self._tell(state, population, mean_returns, moments)
            metrics = {
                **jax.device_get(metrics),
                "center_return": played["returns"][:, -1].mean(axis=1),
                "env_steps": lengths.sum(axis=(1, 2)),
                "loop_steps": np.full(self.seeds, float(played["t"])),
                "episodes": np.full(self.seeds, float(returns[0].size)),
                "episode_return_sum": returns.sum(axis=(1, 2)),
                "episode_length_sum": lengths.sum(axis=(1, 2)),
            }
            per_update.append(metrics)
        stacked = {k: np.stack([m[k] for m in per_update], axis=1) for k in per_update[0]}
        count = stacked["episodes"].sum(axis=1)
        return state, ChunkResult(
            updates=len(per_update),
            metrics=reduce_metrics(stacked, np.ones(len(per_update), bool)),
            episodes=count,
            episode_return=stacked["episode_return_sum"].sum(axis=1) / count,
            episode_length=stacked["episode_length_sum"].sum(axis=1) / count,
        )

    def algo_state(self, state: EvolutionState) -> Any:
        return state.algo

    def checkpoint_parts(self, state: EvolutionState) -> dict[str, Any]:
        return {"algo": state.algo, "runner": {"key": state.key}}

    def checkpoint_templates(self) -> dict[str, Any]:
        template = self.state_template()
        return {"algo": template.algo, "runner": {"key": template.key}}

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> EvolutionState:
        """Restore the device state; each generation resets its envs itself."""
        return EvolutionState(parts["algo"], parts["runner"]["key"])

    def close(self) -> None:
        self.envs.close()
