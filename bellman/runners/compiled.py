"""The compiled runner: env and agent in one XLA program, chunk after chunk, for many seeds.

A runner family (`runners.onpolicy`, `runners.offpolicy`) gives two pure functions of one seed:
`init_state(algo, config, env, total_updates, key)` and `update(algo, config, env, state)`, one
iteration of its loop (rollout then learn; or collect, store, sample and learn). `run_updates`
loops over a chunk of updates; `CompiledRunner` compiles `jit(shard_map(vmap(run_updates)))` once
(each device runs its own members) and calls it chunk after chunk, so a chunk for every member is
a single call, while the driver logs, evaluates and checkpoints in between. Nothing leaves the
device inside a chunk.

A family may take data every member reads and none owns (the offline family's dataset): the
runner hands it to both programs as one more argument, replicated on every device, never part of
the members' state or of a checkpoint.

The members are settings x seeds: K configs that differ only in traced settings (`bellman.config`:
the float fields, taken by the program as arrays) times S seeds, setting-major. A single run is
K = 1; a sweep's group is K > 1, the same program with more members. Seed s of every setting
starts from the same key as seed s of a single run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from bellman import config as cfg
from bellman.contracts import Algorithm
from bellman.envs.core import EpisodeStatistics, JaxEnv
from bellman.runners import programs
from bellman.runners.common import (
    ChunkResult,
    episode_means,
    over_seeds,
    paused_gc,
    reduce_metrics,
    seed_keys,
    seed_sharding,
)


class Family(Protocol):
    """A runner family: a module with these two functions."""

    __name__: str

    EPISODE_STATISTICS: bool
    """The runner wraps the env in `EpisodeStatistics` (False: the family counts episodes
    itself, as self-play does for its games)."""

    def init_state(
        self, algo: Any, config: Any, env: JaxEnv, total_updates: int, key: jax.Array, *data: Any
    ) -> Any: ...

    def update(
        self, algo: Any, config: Any, env: JaxEnv, state: Any, update_id: jax.Array, *data: Any
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One iteration of the loop; `data` is the runner's shared data, if it was given
        one."""
        ...


def run_updates(
    update: Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]],
    total_updates: int,
    state: Any,
    update_ids: jax.Array,
) -> tuple[Any, dict[str, jax.Array]]:
    """Run the updates numbered `update_ids` (`[C]`, consecutive); ids >= total_updates are
    skipped (their metrics are zeros).

    Skipping keeps every chunk the same length, so one compiled program serves the whole run:
    a loop over the first n ids, n = the ids below total_updates. The count is not batched over
    seeds, so under vmap the loop stays one loop. (A branch between updating and skipping inside
    a fixed-length loop made XLA copy the replay memory's rings around it.)"""
    metrics_shape = jax.eval_shape(lambda s: update(s, update_ids[0])[1], state)
    rows = update_ids.shape[0]
    zeros = jax.tree.map(lambda s: jnp.zeros((rows, *s.shape), s.dtype), metrics_shape)

    def body(i: jax.Array, carry: tuple[Any, dict[str, jax.Array]]) -> Any:
        state, out = carry
        state, metrics = update(state, update_ids[i])
        return state, jax.tree.map(lambda o, m: o.at[i].set(m), out, metrics)

    count = jnp.sum(update_ids < total_updates)
    return jax.lax.fori_loop(0, count, body, (state, zeros))


def per_device(fn: Callable[..., Any], runner: CompiledRunner) -> Any:
    """`fn(state, values, update_ids, *data)` run by each device on its own members (`shard_map`):
    nothing in a chunk crosses devices. (Under a plain sharded `vmap`, an op that reduces over
    the members, like the condition of a while loop whose members finish at different times,
    would make the devices wait for each other at every step.)"""
    mesh = runner.sharding.mesh
    seeds, replicated = runner.sharding.spec, runner.replicated.spec
    specs = (seeds, seeds, replicated, *(replicated for _ in runner.data))
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=seeds, check_vma=False)


class CompiledRunner:
    """Drives a family's `update` for many seeds at once: `jit(vmap(scan))`, compiled ahead of
    time, with the seeds sharded over the CPU cores when they divide evenly."""

    backend = "compiled"

    def __init__(
        self,
        family: Family,
        algo: Algorithm,
        configs: Sequence[Any],
        env: JaxEnv,
        seeds: int,
        seed: int,
        total_updates: int,
        chunk_updates: int,
        first_seed: int = 0,
        data: Any = None,
    ):
        """`data`, if not None, is what every member reads (a pytree of arrays): passed to the
        family's `init_state` and `update` after their other arguments."""
        self.family, self.algo, self.spec = family, algo, env.spec
        self.first_seed = first_seed
        self.config = cfg.static_part(configs[0])
        """What every member shares (the traced settings blanked)."""
        if any(cfg.static_part(c) != self.config for c in configs):
            raise ValueError("the configs of one compiled runner differ in a static setting")
        self.env = EpisodeStatistics(env) if family.EPISODE_STATISTICS else env
        self.settings, self.seeds, self.seed = len(configs), seeds, seed
        self.members = self.settings * seeds
        self.total_updates, self.chunk_updates = total_updates, chunk_updates
        self.sharding, self.replicated = seed_sharding(self.members)
        self.values = jax.device_put(cfg.traced_values(configs, seeds), self.sharding)
        """The members' traced settings, `[members]` arrays sharded as the members."""
        self.data: tuple[Any, ...] = (
            () if data is None else (jax.device_put(data, self.replicated),)
        )
        """The shared data (none, or one pytree), on every device once."""
        shared = tuple(None for _ in self.data)
        member = lambda values: cfg.with_values(self.config, values)
        init = lambda values, key, *data: family.init_state(
            algo, member(values), self.env, total_updates, key, *data
        )
        self._init = jax.jit(
            over_seeds(init, self.members, (0, 0, *shared)),
            in_shardings=(self.sharding, self.sharding, *(self.replicated for _ in shared)),
            out_shardings=self.sharding,
        )

        def chunk(state: Any, values: dict[str, jax.Array], ids: jax.Array, *data: Any) -> Any:
            update = functools.partial(family.update, algo, member(values), self.env)
            return run_updates(lambda s, i: update(s, i, *data), total_updates, state, ids)

        local = self.members // self.sharding.mesh.size
        self._chunk = jax.jit(
            per_device(over_seeds(chunk, local, (0, 0, None, *shared)), self),
            in_shardings=(
                self.sharding,
                self.sharding,
                self.replicated,
                *(self.replicated for _ in shared),
            ),
            out_shardings=self.sharding,
            donate_argnums=0,
        )
        # the programs compiled ahead of time by `compile`, and the state's shapes
        self._compiled_init: Any = None
        self._compiled_chunk: Any = None
        self._template: Any = None

    @property
    def steps_per_update(self) -> int:
        return int(self.config.num_envs * self.config.num_steps)

    def _keys(self) -> jax.Array:
        keys = jnp.tile(seed_keys(self.seed, self.seeds, self.first_seed), (self.settings, 1))
        return jax.device_put(keys, self.sharding)

    def init_state(self) -> Any:
        init = self._compiled_init if self._compiled_init is not None else self._init
        return init(self.values, self._keys(), *self.data)

    def state_template(self) -> Any:
        if self._template is None:
            self._template = jax.eval_shape(self._init, self.values, self._keys(), *self.data)
        return self._template

    def _description(self, part: str) -> list[str] | None:
        """What the program `part` depends on besides the code (see `programs`)."""
        env_key = getattr(self.env, "cache_key", None)
        if env_key is None:
            return None
        return [
            f"{self.family.__name__} {part}",
            self.algo.__name__,
            repr(self.config),
            env_key,
            f"members={self.members} updates={self.total_updates} chunk={self.chunk_updates}",
            *(["data " + programs.signature(*self.data)] if self.data else []),
        ]

    def compile(self) -> float:
        """Compile (or load) the init and chunk programs; returns the seconds it took.

        The init program is traced first: its output shapes are the chunk program's input, and
        its compilation runs on the worker while the chunk program is traced.
        """
        start = time.perf_counter()
        devices = list(self.sharding.mesh.devices.flat)
        keys = self._keys()
        traced: list[Any] = []

        def lower_init() -> Any:
            traced.append(self._init.trace(self.values, keys, *self.data))
            return traced[0].lower()

        with paused_gc():
            self._compiled_init = programs.start(
                self._description("init"), lower_init, devices, light=True
            )
            self._template = (traced[0] if traced else self._compiled_init.result()).out_info
            ids = jax.ShapeDtypeStruct((self.chunk_updates,), jnp.int32)
            description = self._description("chunk")
            self._compiled_chunk = programs.start(
                description
                and [*description, programs.signature((self._template, self.values), ids)],
                lambda: self._chunk.lower(self._template, self.values, ids, *self.data),
                devices,
            )
        self._compiled_init.result()
        self._compiled_chunk.result()
        return time.perf_counter() - start

    def run_chunk(self, state: Any, first_update: int) -> tuple[Any, ChunkResult]:
        """Run updates first_update, ..., first_update + chunk_updates - 1 (those that exist)."""
        if self._compiled_chunk is None:
            self.compile()
        ids = jnp.arange(first_update, first_update + self.chunk_updates, dtype=jnp.int32)
        state, metrics = self._compiled_chunk(
            state, self.values, jax.device_put(ids, self.replicated), *self.data
        )
        metrics = jax.device_get(metrics)
        valid = np.asarray(ids) < self.total_updates
        done = int(valid.sum())
        return state, ChunkResult(
            updates=done,
            metrics=reduce_metrics(metrics, valid),
            **episode_means(metrics, valid),
        )

    def algo_state(self, state: Any) -> Any:
        return state.algo

    def checkpoint_parts(self, state: Any) -> dict[str, Any]:
        return {"algo": state.algo, "runner": state.replace(algo=None)}

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> Any:
        state = parts["runner"].replace(algo=parts["algo"])
        return jax.device_put(state, self.sharding)

    def checkpoint_templates(self) -> dict[str, Any]:
        template = self.state_template()
        return {"algo": template.algo, "runner": template.replace(algo=None)}

    def close(self) -> None:
        pass
