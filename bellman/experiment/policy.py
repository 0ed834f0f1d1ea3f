"""Trained runs read back: the algorithm state of every seed, and a policy that acts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bellman import algos
from bellman import config as cfg
from bellman.algos import AlgoInfo
from bellman.envs import registry
from bellman.envs.spaces import Box, EnvSpec
from bellman.errors import CheckpointError, RunDirError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.rundir import RunDir
from bellman.experiment.settings import Plan, RunSettings
from bellman.runners.common import seed_keys


@dataclass
class TrainedRun:
    """What evaluation and `bellman.load` need from a run directory."""

    run_dir: RunDir
    info: AlgoInfo
    config: Any
    settings: RunSettings
    env: registry.ResolvedEnv
    algo_state: Any
    """All seeds' algorithm states (leading axis: seed), from the newest checkpoint."""
    update: int


def open_run(path: str | Path, backend: str | None = None) -> TrainedRun:
    """Read a run directory's settings and newest checkpoint."""
    run_dir = RunDir.open(Path(path))
    record = run_dir.config
    try:
        info = algos.get(record["algo"])
        settings = cfg.with_overrides(RunSettings(env=record["env"]), record["settings"])
        config = cfg.with_overrides(info.make_config(), record["config"])
        plan = Plan(**record["plan"])
    except (KeyError, TypeError):
        raise RunDirError(f"{run_dir.path}/config.json is not a complete bellman config") from None
    env = registry.resolve(settings.env, backend or record["backend"])
    found = ckpt.list_checkpoints(run_dir.checkpoints)
    if not found:
        raise CheckpointError(f"{run_dir.path} has no checkpoint yet; nothing to evaluate")
    update, path_ = found[-1]
    init = lambda key: info.module.init(key, config, env.spec, plan.total_updates)
    template = jax.eval_shape(jax.vmap(init), seed_keys(settings.seed, settings.seeds))
    parts, _ = ckpt.load(path_, {"algo": template})
    return TrainedRun(run_dir, info, config, settings, env, parts["algo"], update)


class Policy:
    """The greedy (deterministic) policy of one seed of a trained run.

    `policy(obs)` takes one observation (shape `obs_shape`) or a batch (`[B, *obs_shape]`) and
    returns actions as numpy arrays, clipped to the env's bounds for continuous actions.
    """

    def __init__(self, trained: TrainedRun, seed_index: int = 0):
        seeds = trained.settings.seeds
        if not 0 <= seed_index < seeds:
            raise RunDirError(f"the run has seeds 0..{seeds - 1}, not {seed_index}")
        self.run = trained
        self.spec: EnvSpec = trained.env.spec
        self.state = jax.tree.map(lambda x: x[seed_index], trained.algo_state)
        module, config = trained.info.module, trained.config
        self._greedy = jax.jit(lambda state, obs: module.greedy(config, self.spec, state, obs))

    def __call__(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs, self.spec.obs_dtype)
        single = obs.shape == self.spec.obs_shape
        batch = obs[None] if single else obs
        action = np.asarray(self._greedy(self.state, batch))
        space = self.spec.action_space
        if isinstance(space, Box) and space.bounded:
            action = space.clip_numpy(action)
        return action[0] if single else action


def load(run_dir: str | Path, seed: int = 0) -> Policy:
    """The greedy policy of seed `seed` of the run in `run_dir`."""
    return Policy(open_run(run_dir), seed)
