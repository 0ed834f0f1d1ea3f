"""Trained runs read back: the algorithm state of every seed, and a policy that acts."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman import algos
from bellman import config as cfg
from bellman.algos import AlgoInfo
from bellman.envs import registry
from bellman.envs.spaces import Box, EnvSpec
from bellman.errors import (
    BellmanError,
    BellmanWarning,
    CheckpointError,
    ConfigError,
    EnvError,
    RunDirError,
    UntrustedCodeError,
)
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.callbacks import BEST
from bellman.experiment.rundir import RunDir
from bellman.experiment.settings import Plan, RunSettings, resolve_env
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


@dataclass
class SavedRun:
    """A run directory's config.json, read and checked."""

    info: AlgoInfo
    settings: RunSettings
    config: Any
    plan: Plan


def read_saved(run_dir: RunDir, trust_env: bool = False) -> SavedRun:
    """The algorithm, settings, config and plan that `run_dir`'s config.json records, each
    checked as if given anew. A `module:Class` env is refused unless `trust_env`: opening the run
    would import that module, and a run directory is data, not code to run."""
    record, where = run_dir.config, run_dir.path / "config.json"
    try:
        info = algos.get(record["algo"])
        settings = cfg.with_overrides(RunSettings(env=record["env"]), record["settings"])
        config = cfg.with_overrides(info.make_config(), record["config"])
        plan = Plan(**record["plan"])
        settings.validate()
        config.validate()
    except (KeyError, TypeError):
        raise RunDirError(f"{where} is not a complete bellman config") from None
    except BellmanError as exc:
        raise RunDirError(f"{where} holds a setting bellman refuses: {exc}") from None
    if not all(isinstance(v, int) and v >= 1 for v in dataclasses.astuple(plan)[:3]):
        raise RunDirError(f"{where} holds an invalid plan")
    module = registry.user_module(settings.env)
    if module is not None and not trust_env:
        raise UntrustedCodeError(
            f"{run_dir.path} was trained on the user env '{settings.env}': opening it imports "
            f"the module '{module}' (from the current directory or an installed package), which "
            "runs its code; pass --trust-env (trust_env=True in Python) if you trust this run"
        )
    return SavedRun(info, settings, config, plan)


def open_run(
    path: str | Path,
    backend: str | None = None,
    trust_env: bool = False,
    checkpoint: str | None = None,
    env_object: Any = None,
) -> TrainedRun:
    """Read a run directory's settings and its newest intact checkpoint (falling back over
    damaged ones, with a BellmanWarning naming each), or with `checkpoint="best"` the one
    `KeepBest` kept (RUN_DIR/best/best.ckpt). A run trained on an env object takes it again as
    `env_object` (`bellman.experiment.settings.resolve_env`)."""
    if checkpoint not in (None, "best"):
        raise ConfigError(f"checkpoint must be None (the newest) or 'best', not {checkpoint!r}")
    run_dir = RunDir.open(cfg.as_path("run_dir", path))
    saved = read_saved(run_dir, trust_env)
    info, settings, config = saved.info, saved.settings, saved.config
    _, env = resolve_env(settings, backend or run_dir.config["backend"], env_object)
    init = lambda key: info.module.init(key, config, env.spec, saved.plan.total_updates)
    template = jax.eval_shape(jax.vmap(init), seed_keys(settings.seed, settings.seeds))
    if checkpoint == "best":
        best = run_dir.path / BEST / "best.ckpt"
        if not best.is_file():
            raise CheckpointError(
                f"{run_dir.path} has no best checkpoint (it is kept by the KeepBest callback)"
            )
        parts, meta = ckpt.load(best, {"algo": template})
        finite_algo(parts, best)
        return TrainedRun(run_dir, info, config, settings, env, parts["algo"], meta["update"])
    if not ckpt.list_checkpoints(run_dir.checkpoints):
        raise CheckpointError(f"{run_dir.path} has no checkpoint yet; nothing to evaluate")
    loaded = ckpt.load_newest(run_dir.checkpoints, {"algo": template}, check=finite_algo)
    for _, why in loaded.skipped:
        warnings.warn(f"{why}; using {loaded.path.name}", BellmanWarning, stacklevel=2)
    return TrainedRun(run_dir, info, config, settings, env, loaded.parts["algo"], loaded.update)


def finite_algo(parts: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose algorithm state holds NaN or infinite numbers (one written
    before bellman checked states before saving them, or made by hand)."""
    bad = ckpt.nonfinite_seeds(parts["algo"])
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds NaN or infinite parameters (seed(s) "
            f"{', '.join(map(str, bad))})"
        )


class Policy:
    """The policy of one seed of a trained run.

    `policy(obs)` takes one observation (shape `obs_shape`) or a batch (`[B, *obs_shape]`) and
    returns actions as numpy arrays, clipped to the env's bounds for continuous actions: the
    greedy (deterministic) action by default, or with `deterministic=False` one sampled from the
    algorithm's behaviour policy as training ended (PPO's and SAC's distributions, DQN's and the
    tabular methods' final epsilon-greedy, DDPG's and TD3's action noise), drawn with `key` or,
    without one, with the policy's own key, which advances at every call (seeded by `seed`).
    """

    def __init__(self, trained: TrainedRun, seed_index: int = 0, seed: int = 0):
        seeds = trained.settings.seeds
        if not (cfg.is_int(seed_index) and 0 <= seed_index < seeds):
            raise RunDirError(f"the run has seeds 0..{seeds - 1}, not {seed_index!r}")
        self.run = trained
        self.spec: EnvSpec = trained.env.spec
        self.state = jax.tree.map(lambda x: x[seed_index], trained.algo_state)
        module, config, spec = trained.info.module, trained.config, self.spec
        self._greedy = jax.jit(lambda state, obs: module.greedy(config, spec, state, obs))
        if trained.info.family == "offline":  # learned from data: no behaviour policy of its own
            sample = lambda state, obs, key: module.greedy(config, spec, state, obs)
        elif trained.info.family == "off_policy":  # its schedules as they end: past every step
            late = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
            sample = lambda state, obs, key: module.act(config, spec, state, obs, key, late)
        else:
            sample = lambda state, obs, key: module.act(config, spec, state, obs, key)[0]
        self._sample = jax.jit(sample)
        self._key = jax.random.PRNGKey(seed)

    def __call__(
        self, obs: Any, deterministic: bool = True, key: jax.Array | None = None
    ) -> np.ndarray:
        obs = np.asarray(obs, self.spec.obs_dtype)
        single = obs.shape == self.spec.obs_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != self.spec.obs_shape:
            raise EnvError(
                f"the policy takes observations of shape {self.spec.obs_shape} (or a batch of "
                f"them), not {obs.shape}"
            )
        if deterministic:
            action = np.asarray(self._greedy(self.state, batch))
        else:
            if key is None:
                self._key, key = jax.random.split(self._key)
            action = np.asarray(self._sample(self.state, batch, key))
        space = self.spec.action_space
        if isinstance(space, Box) and space.bounded:
            action = space.clip_numpy(action)
        return action[0] if single else action


def load(
    run_dir: str | Path,
    seed: int = 0,
    trust_env: bool = False,
    checkpoint: str | None = None,
    env: Any = None,
) -> Policy:
    """The policy of seed `seed` of the run in `run_dir`, from its newest checkpoint or, with
    `checkpoint="best"`, the one `KeepBest` kept (`trust_env`: see `read_saved`; `env`: the env
    object of a run trained on one)."""
    trained = open_run(run_dir, trust_env=trust_env, checkpoint=checkpoint, env_object=env)
    if trained.info.family == "control":
        raise RunDirError(
            f"{run_dir} holds a run of {trained.info.name}, a controller that plans each action "
            "from the env's state: it has no policy of observations to load; evaluate it with "
            f"bellman eval {run_dir}"
        )
    return Policy(trained, seed)
