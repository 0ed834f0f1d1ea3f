"""How a run is carried out (env, budget, seeds, logging), apart from the algorithm's own config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bellman import config as cfg


@dataclass(frozen=True)
class RunSettings:
    """Settings of `bellman train` that are not the algorithm's."""

    env: str
    """Environment: a JAX env id, a gymnasium id, or module:Class for your own gymnasium env."""
    steps: int | None = None
    """Environment steps per seed, summed over parallel envs (default: the algorithm's)."""
    seeds: int = 1
    """Independent seeds trained together (vmapped in one program on the compiled backend)."""
    seed: int = 0
    """Base random seed; seed i of the run uses fold_in(PRNGKey(seed), i)."""
    backend: Literal["auto", "compiled", "gymnasium"] = "auto"
    """compiled: env and agent in one XLA program (JAX envs); gymnasium: any gymnasium env;
    auto: compiled whenever the env has a JAX implementation."""
    eval_episodes: int = 20
    """Greedy-policy episodes per seed in the final evaluation."""
    evals: int = 10
    """Greedy evaluations during training, evenly spread, for the learning curve (0: none)."""
    log_every: int | None = None
    """Environment steps per seed between log records, rounded to whole updates (default: 1%
    of the run)."""
    checkpoint_every: int | None = None
    """Environment steps per seed between checkpoints (default: 10% of the run)."""
    preset: str | None = None
    """A named set of the algorithm's settings (dqn: atari, minatar), applied before the flags
    given; default: the one the algorithm picks for the env (atari for stacked Atari frames)."""

    def validate(self) -> None:
        cfg.require(self.steps is None or self.steps >= 1, "steps must be at least 1")
        cfg.require(self.seeds >= 1, "seeds must be at least 1")
        cfg.require(self.seed >= 0, "seed must not be negative")
        cfg.require(self.eval_episodes >= 1, "eval_episodes must be at least 1")
        cfg.require(self.evals >= 0, "evals must not be negative")
        cfg.require(self.log_every is None or self.log_every >= 1, "log_every must be positive")
        cfg.require(
            self.checkpoint_every is None or self.checkpoint_every >= 1,
            "checkpoint_every must be positive",
        )


@dataclass(frozen=True)
class Plan:
    """The run cut into updates and chunks (one compiled call per chunk)."""

    steps_per_update: int
    total_updates: int
    chunk_updates: int
    checkpoint_chunks: int
    """Chunks between checkpoints."""
    eval_chunks: int
    """Chunks between evaluations during training (0: none)."""

    @property
    def total_chunks(self) -> int:
        return math.ceil(self.total_updates / self.chunk_updates)

    @property
    def total_steps(self) -> int:
        return self.total_updates * self.steps_per_update

    @classmethod
    def make(cls, settings: RunSettings, steps: int, steps_per_update: int) -> Plan:
        total_updates = max(1, math.ceil(steps / steps_per_update))
        log_every = settings.log_every or max(1, steps // 100)
        chunk_updates = min(total_updates, max(1, round(log_every / steps_per_update)))
        chunks = math.ceil(total_updates / chunk_updates)
        checkpoint_every = settings.checkpoint_every or max(1, steps // 10)
        checkpoint_chunks = max(1, round(checkpoint_every / (chunk_updates * steps_per_update)))
        eval_chunks = max(1, chunks // settings.evals) if settings.evals else 0
        return cls(steps_per_update, total_updates, chunk_updates, checkpoint_chunks, eval_chunks)
