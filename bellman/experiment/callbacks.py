"""Callbacks: user code called between compiled chunks, with the metrics just logged.

    def log(chunk: bellman.Chunk) -> None:
        wandb.log({"return": chunk.mean("episode_return")}, step=chunk.step)

    bellman.train("ppo", env="CartPole-v1", callbacks=[log, bellman.KeepBest(),
                  bellman.EarlyStopping(threshold=475)])

A callback is any callable taking a `Chunk`; it returns None (go on) or False (stop the run
here: the run saves a checkpoint, evaluates and writes its summary, with `stopped_early` saying
why). Callbacks run on the host between chunks, never inside a compiled program, so they cost
nothing while a chunk trains. `KeepBest` and `EarlyStopping` are the two every run wants.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any

import numpy as np

from bellman.errors import ConfigError

BEST = "best"
"""The folder `KeepBest` writes into: RUN_DIR/best/best.ckpt and best.json."""


@dataclass(frozen=True)
class Chunk:
    """What a callback sees after a chunk of training: logged, and checkpointed if one was due."""

    run_dir: Path
    step: int
    """Environment steps per seed so far."""
    update: int
    total_steps: int
    """Environment steps per seed the run is planned for."""
    metrics: dict[str, Any]
    """The record just written to metrics.jsonl: scalars, and per-seed values as arrays `[seeds]`
    (`episode_return`, `eval_return` at evaluation chunks, losses, ...)."""
    checkpoint: Path | None
    """The checkpoint written after this chunk, if one was due."""
    algo_state: Any
    """The algorithm's state of every seed (leading axis: seed)."""
    save: Callable[[Path], Path] = field(repr=False)
    """Write the algorithm's state, as a checkpoint `bellman.load` reads, to a path."""

    def mean(self, name: str) -> float:
        """The mean over seeds of metric `name` (NaN where it was not logged this chunk)."""
        if name not in self.metrics:
            return math.nan
        values = np.asarray(self.metrics[name], np.float64)
        return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


Callback = Callable[[Chunk], bool | None]


@dataclass
class KeepBest:
    """Keep the checkpoint of the best mean `metric` so far (default: the greedy evaluation's
    return, logged at `--evals` points) in RUN_DIR/best/: `bellman.load(run_dir,
    checkpoint="best")` and `bellman eval RUN_DIR --checkpoint best` use it."""

    metric: str = "eval_return"
    mode: str = "max"
    best: float = field(default=math.nan, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ConfigError(f"KeepBest mode must be max or min, not {self.mode!r}")

    def __call__(self, chunk: Chunk) -> None:
        value = chunk.mean(self.metric)
        if not math.isfinite(value):
            return
        better = value > self.best if self.mode == "max" else value < self.best
        if math.isnan(self.best) or better:
            self.best = value
            folder = chunk.run_dir / BEST
            folder.mkdir(exist_ok=True)
            chunk.save(folder / "best.ckpt")
            record = {"metric": self.metric, "value": value, "step": chunk.step}
            (folder / "best.json").write_text(json.dumps({**record, "update": chunk.update}))


@dataclass
class EarlyStopping:
    """Stop when the mean `metric` reaches `threshold` (as Stable-Baselines3's
    StopTrainingOnRewardThreshold), or when it has not improved by more than `min_delta` for
    `patience` of the chunks that log it; the larger the better."""

    metric: str = "eval_return"
    threshold: float | None = None
    patience: int | None = None
    min_delta: float = 0.0
    best: float = field(default=-math.inf, init=False)
    stale: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.threshold is None and self.patience is None:
            raise ConfigError("EarlyStopping needs a threshold, a patience, or both")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"EarlyStopping patience must be at least 1, not {self.patience}")
        self.reason = ""

    def __call__(self, chunk: Chunk) -> bool | None:
        value = chunk.mean(self.metric)
        if not math.isfinite(value):
            return None
        if self.threshold is not None and value >= self.threshold:
            self.reason = f"{self.metric} {value:.2f} reached {self.threshold:g}"
            return False
        if value > self.best + self.min_delta:
            self.best, self.stale = value, 0
            return None
        self.stale += 1
        if self.patience is not None and self.stale >= self.patience:
            self.reason = (
                f"{self.metric} did not improve on {self.best:.2f} for {self.stale} evaluations"
            )
            return False
        return None


def stop_reason(callbacks: list[Callback], chunk: Chunk) -> str | None:
    """Call every callback; the reason to stop if one returned False, else None."""
    reason = None
    for callback in callbacks:
        if callback(chunk) is False and reason is None:
            if isinstance(callback, EarlyStopping):
                reason = callback.reason
            else:
                name = callback.__name__ if isinstance(callback, FunctionType) else ""
                reason = f"the callback {name or type(callback).__name__} returned False"
    return reason


def check_callbacks(callbacks: Any) -> list[Callback]:
    """`callbacks` as a list, or ConfigError if it is not a sequence of callables."""
    if callable(callbacks):
        callbacks = [callbacks]
    if not isinstance(callbacks, list | tuple) or not all(callable(c) for c in callbacks):
        raise ConfigError("callbacks must be a list of callables that take a bellman.Chunk")
    return list(callbacks)
