"""What every runner shares: per-seed keys and the summary of a chunk of updates."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bellman.envs.spaces import Box, EnvSpec

EPISODE_KEYS = ("episodes", "episode_return_sum", "episode_length_sum")


class EpisodeTotals(struct.PyTreeNode):
    """Episodes that ended during an update, summed over envs and steps."""

    count: jax.Array
    return_sum: jax.Array
    length_sum: jax.Array

    @classmethod
    def of_step(cls, done: jax.Array, info: dict[str, jax.Array]) -> EpisodeTotals:
        """The episodes that ended in one step of `[B]` envs wrapped in `EpisodeStatistics`."""
        ended = done.astype(jnp.float32)
        return cls(
            ended.sum(),
            (ended * info["episode_return"]).sum(),
            (ended * info["episode_length"]).sum(),
        )


def env_action(spec: EnvSpec, action: jax.Array) -> jax.Array:
    """The action sent to the env: Box actions are clipped to its bounds."""
    space = spec.action_space
    return space.clip(action) if isinstance(space, Box) and space.bounded else action


def seed_keys(seed: int, seeds: int, first: int = 0) -> jax.Array:
    """`[seeds, 2]` independent PRNG keys: seed i gets fold_in(PRNGKey(seed), first + i) (a run
    whose seeds are a share of a larger run's starts at `first`)."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(first, first + seeds))


def over_seeds(fn: Callable[..., Any], seeds: int, in_axes: tuple[int | None, ...]) -> Any:
    """`vmap(fn, in_axes)` over a leading seed axis.

    For a single seed, `fn` itself with the axis removed and put back: a size-1 vmap would give
    XLA a larger program to compile for the same work.
    """
    if seeds > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def single(*args: Any) -> Any:
        inner = [
            jax.tree.map(lambda x: x[0], arg) if axis == 0 else arg
            for arg, axis in zip(args, in_axes, strict=True)
        ]
        return jax.tree.map(lambda x: x[None], fn(*inner))

    return single


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Tracing creates many short-lived Python objects; collecting them is wasted time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def seed_sharding(seeds: int) -> tuple[NamedSharding, NamedSharding]:
    """Shard a leading seed axis over as many devices as divide `seeds` (one per CPU core, see
    `bellman.jax_setup`); returns (sharded, replicated)."""
    devices = jax.devices()
    count = max(d for d in range(1, len(devices) + 1) if seeds % d == 0)
    mesh = Mesh(np.array(devices[:count]), ("seed",))
    return NamedSharding(mesh, PartitionSpec("seed")), NamedSharding(mesh, PartitionSpec())


@dataclass
class ChunkResult:
    """A chunk of updates, summarised per seed (arrays are `[seeds]`)."""

    updates: int
    """Updates the chunk ran."""
    metrics: dict[str, np.ndarray]
    """The algorithm's metrics, averaged over the chunk's updates."""
    episodes: np.ndarray
    """Training episodes that ended in the chunk."""
    episode_return: np.ndarray
    """Their mean undiscounted return (NaN where none ended)."""
    episode_length: np.ndarray


class Runner(Protocol):
    """What the training driver needs from a runner (compiled or host).

    A runner owns the interaction loop; its state is opaque to the driver, which only passes it
    back, checkpoints it through `checkpoint_parts`, and reads the algorithm's part of it.
    """

    backend: str
    spec: Any

    @property
    def steps_per_update(self) -> int: ...

    def init_state(self) -> Any: ...

    def compile(self) -> float:
        """Compile ahead of time; returns the seconds it took."""
        ...

    def run_chunk(self, state: Any, first_update: int) -> tuple[Any, ChunkResult]: ...

    def algo_state(self, state: Any) -> Any: ...

    def checkpoint_parts(self, state: Any) -> dict[str, Any]: ...

    def checkpoint_templates(self) -> dict[str, Any]: ...

    def from_checkpoint_parts(self, parts: dict[str, Any], first_update: int) -> Any: ...

    def close(self) -> None: ...


def reduce_metrics(metrics: dict[str, Any], valid: np.ndarray) -> dict[str, np.ndarray]:
    """Average `[seeds, C]` metrics over the chunk's valid updates; NaN marks a metric an update
    did not measure (TD3's actor loss between delayed actor steps), left out of the average."""
    out = {}
    for name, value in metrics.items():
        if name in EPISODE_KEYS:
            continue
        value = np.asarray(value, np.float64)[:, valid]
        measured = ~np.isnan(value)
        count = measured.sum(axis=1)
        total = np.where(measured, value, 0.0).sum(axis=1)
        out[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


class HostEpisodes:
    """The episodes a host runner's envs (`seeds * envs_per_seed` of them, seed-major) finished
    during a chunk, counted per seed from the vector env's episode statistics."""

    def __init__(self, seeds: int, envs_per_seed: int):
        self.envs_per_seed = envs_per_seed
        self.count, self.return_sum, self.length_sum = (np.zeros(seeds) for _ in range(3))

    def add(self, info: dict[str, Any]) -> None:
        """Count the episodes of one vector-env step (`GymnasiumVectorEnv.step`'s info)."""
        ended = info["episode_ended"]
        if ended.any():
            seed_of = np.flatnonzero(ended) // self.envs_per_seed
            np.add.at(self.count, seed_of, 1)
            np.add.at(self.return_sum, seed_of, info["episode_return"][ended])
            np.add.at(self.length_sum, seed_of, info["episode_length"][ended])

    def chunk_result(self, per_update: list[dict[str, Any]]) -> ChunkResult:
        """The chunk's summary: the algorithm's metrics of each update, and these episodes."""
        stacked = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *jax.device_get(per_update))
        with np.errstate(invalid="ignore", divide="ignore"):
            return ChunkResult(
                updates=len(per_update),
                metrics=reduce_metrics(stacked, np.ones(len(per_update), bool)),
                episodes=self.count,
                episode_return=np.where(self.count > 0, self.return_sum / self.count, np.nan),
                episode_length=np.where(self.count > 0, self.length_sum / self.count, np.nan),
            )


def episode_means(metrics: dict[str, Any], valid: np.ndarray) -> dict[str, np.ndarray]:
    """Mean return and length of the episodes that ended in the chunk, per seed."""
    total = lambda name: np.asarray(metrics[name], np.float64)[:, valid].sum(axis=1)
    count = total("episodes")
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "episodes": count,
            "episode_return": np.where(count > 0, total("episode_return_sum") / count, np.nan),
            "episode_length": np.where(count > 0, total("episode_length_sum") / count, np.nan),
        }
