"""The training driver: settings -> run directory -> compiled chunks with logging in between.

    for each chunk of updates:                          (one compiled call for all seeds)
        state, results = runner.run_chunk(state, update)
        stop on a NaN loss (the last good checkpoint stays)
        log metrics, update the progress bar
        evaluate the greedy policy now and then
        checkpoint now and then
    final checkpoint, final greedy evaluation, summary.json, learning_curve.png

`summary.json` holds: algo, env, backend, steps (per seed), seeds, seed, final_return_mean (mean
over seeds of the greedy policy's mean return over `eval_episodes` episodes after training),
final_return_std (over seeds), final_return_per_seed, eval_episodes, wall_s (the whole call),
compile_s, train_s (the chunks alone), steps_per_s (env steps of all seeds per second of
train_s), steps_per_s_per_seed, resumed, stopped_early (why a callback stopped the run, or
null), final_step (env steps per seed trained: `steps` unless stopped early), run_dir.

Callbacks (`bellman.experiment.callbacks`) are called after each chunk's record and checkpoint;
one that returns False ends the run there, with its final evaluation and summary.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman import algos, datasets, jax_setup, stats
from bellman import config as cfg
from bellman import mdp as mdp_lib
from bellman.contracts import DataStats
from bellman.envs import games, registry
from bellman.errors import (
    BellmanError,
    BellmanWarning,
    CheckpointError,
    ConfigError,
    EnvError,
    RunDirError,
    TrainingDiverged,
    closest,
)
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.callbacks import Callback, Chunk, check_callbacks, stop_reason
from bellman.experiment.glimpse_plots import GLIMPSE_PLOT, plot_glimpses
from bellman.experiment.logger import MetricsLogger
from bellman.experiment.plots import learning_curve
from bellman.experiment.policy import SavedRun, finite_algo, open_run, read_saved
from bellman.experiment.progress import TrainingProgress
from bellman.experiment.rundir import CURVE, RunDir, write_json
from bellman.experiment.settings import (
    Plan,
    RunSettings,
    changes_env,
    check_resources,
    resolve_env,
)
from bellman.experiment.value_plots import value_curves, value_map
from bellman.nets import obs_features
from bellman.runners.adversarial import CompiledAdversarial
from bellman.runners.common import Runner, seed_keys
from bellman.runners.control import CompiledControl, ControlEvaluator
from bellman.runners.dagger import CompiledDagger, DaggerData, Expert
from bellman.runners.dagger_host import HostDagger
from bellman.runners.evaluation import JaxEvaluator, evaluate_gymnasium
from bellman.runners.evolution import CompiledEvolution
from bellman.runners.evolution_host import HostEvolution
from bellman.runners.offline import CompiledOffline, OfflineData, SpecOnly, offline_data
from bellman.runners.offpolicy import CompiledOffPolicy
from bellman.runners.offpolicy_host import HostOffPolicy
from bellman.runners.onpolicy import CompiledOnPolicy
from bellman.runners.onpolicy_host import HostOnPolicy
from bellman.runners.selfplay import CompiledSelfPlay, GameEvaluator
from bellman.runners.unroll import CompiledUnroll

KEEP_CHECKPOINTS = 2
SNAPSHOTS = "snapshots"
"""A self-play run's folder of its networks at every checkpoint (never pruned): the players of
`bellman arena RUN_DIR --ladder`."""
POLICY_PLOT = "policy.png"


class Interrupted(BellmanError):
    """The run was stopped by a signal after saving a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @property
    def signame(self) -> str:
        return signal.Signals(self.signum).name


@dataclass
class Run:
    """A finished training run."""

    run_dir: Path
    summary: dict[str, Any]
    config: Any
    """The algorithm's config."""
    settings: RunSettings
    algo_state: Any
    """The final algorithm state of every seed (leading axis: seed)."""
    metrics: list[dict[str, Any]]
    """The records of metrics.jsonl."""

    @property
    def params(self) -> Any:
        return self.algo_state.params

    @property
    def final_return(self) -> float:
        return float(self.summary["final_return_mean"])


def default_run_dir(algo: str, env: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    safe_env = "".join(c if c.isalnum() or c in "-_." else "-" for c in env)
    return Path("runs") / f"{algo}-{safe_env}-{stamp}"


def eval_keys(seed: int, seeds: int, update: int, first: int = 0) -> jax.Array:
    """Keys of a greedy evaluation after `update` updates, independent of training's keys."""
    keys = seed_keys(seed, seeds, first)
    return jax.vmap(lambda k: jax.random.fold_in(k, 1_000_003 + update))(keys)


class _StopRequest:
    """SIGINT/SIGTERM ask the loop to stop at the next chunk boundary; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One `bellman train` (new or resumed), or one group of a sweep: owns the run directories,
    the runner and the logs.

    A group is K configs that differ only in traced settings, trained side by side in one
    compiled program (K x S members, setting-major) with one run directory per config, each the
    same as a single run's; a single run is K = 1.
    """

    def __init__(
        self,
        algo_name: str,
        settings: RunSettings,
        config: Any,
        run_dir: RunDir,
        resolved: registry.ResolvedEnv,
        plan: Plan,
        progress: bool,
        callbacks: Sequence[Callback] = (),
        *,
        group: Sequence[tuple[Any, RunDir]] = (),
        label: str | None = None,
        on_eval: Callable[[int, list[int], np.ndarray], Iterable[int]] | None = None,
    ):
        self.info = algos.get(algo_name)
        self.settings, self.config, self.run_dir = settings, config, run_dir
        self.env, self.plan, self.show_progress = resolved, plan, progress
        self.callbacks = list(callbacks)
        members = list(group) or [(config, run_dir)]
        self.configs = [c for c, _ in members]
        self.run_dirs = [rd for _, rd in members]
        self.label = label
        """What the progress bar shows after the algorithm and env (default: xSEEDS)."""
        self.failed: dict[int, str] = {}
        """Settings of a group whose training diverged (index -> why); a single run raises."""
        self.on_eval = on_eval
        """Called after each evaluation during training with the step, the settings still
        running and their greedy returns `[running, seeds]`; returns the settings to stop there
        (a search's pruner)."""
        self.pruned: dict[int, int] = {}
        """Settings `on_eval` stopped (index -> step)."""
        if len(members) > 1 and (callbacks or resolved.backend != "compiled"):
            raise ValueError("a group of settings runs on the compiled backend, without callbacks")
        self.stopped_early: str | None = None
        self.continued = False
        """The plan was extended (`resume(steps=...)`): the checkpoints' states record the old
        number of updates, a static field restored under the new one."""
        self.slots = list(range(len(self.configs)))
        """The settings the runner's members belong to, in member order (setting slots[j] has
        members j S .. j S + S - 1): all of them, until a group drops the settings that stopped
        (`shrink`)."""
        self.runner: Runner
        self.evaluator: JaxEvaluator | GameEvaluator | None = None
        self.data: OfflineData | DaggerData | None = None
        """An offline algorithm's dataset, or DAgger's expert and demonstrations, as the
        programs read them."""
        if self.info.family == "dagger":  # on either backend
            self.data = dagger_data(settings, resolved)
        common = (settings.seeds, settings.seed, plan.total_updates, plan.chunk_updates)
        if self.info.family in ("offline", "adversarial"):  # (offline: compiled, whatever the env)
            self.data = read_data(settings.dataset, resolved)
            self.build(self.configs)
        elif resolved.backend == "compiled":
            self.build(self.configs)
        elif self.info.family == "dagger":  # (a host runner: evaluated on gymnasium, `evaluate`)
            assert isinstance(self.data, DaggerData)
            self.runner = HostDagger(self.info.module, config, resolved, *common, data=self.data)
        else:
            host = {"off_policy": HostOffPolicy, "evolution": HostEvolution}.get(
                self.info.family, HostOnPolicy
            )
            self.runner = host(self.info.module, config, resolved, *common)

    def build(self, configs: list[Any]) -> None:
        """The compiled runner and evaluator of `configs` x seeds."""
        s, env = self.settings, self.env.jax_env
        common = (s.seeds, s.seed, self.plan.total_updates, self.plan.chunk_updates)
        module = self.info.module
        if self.info.family == "offline":
            assert isinstance(self.data, OfflineData)
            learner = env if env is not None else SpecOnly(self.env.spec, self.env.id)
            self.runner = CompiledOffline(
                module, configs, learner, *common, s.first_seed, data=self.data
            )
            if env is not None:  # else the evaluations play gymnasium envs (`evaluate`)
                self.evaluator = JaxEvaluator(module, configs, env, s.eval_episodes, s.seeds)
            return
        assert env is not None
        if self.info.family in ("dagger", "adversarial"):
            if self.info.family == "dagger":
                assert isinstance(self.data, DaggerData)
                self.runner = CompiledDagger(
                    module, configs, env, *common, s.first_seed, data=self.data
                )
            else:
                assert isinstance(self.data, OfflineData)
                self.runner = CompiledAdversarial(
                    module, configs, env, *common, s.first_seed, data=self.data
                )
            self.evaluator = JaxEvaluator(module, configs, env, s.eval_episodes, s.seeds)
            return
        if self.info.family == "self_play":
            assert isinstance(env, games.GameEnv)
            self.runner = CompiledSelfPlay(module, configs, env, *common, s.first_seed)
        elif self.info.family == "unroll":
            self.runner = CompiledUnroll(module, configs, env, *common, s.first_seed)
        elif self.info.family == "control":
            self.runner = CompiledControl(module, configs, env, *common, s.first_seed)
        elif self.info.family == "evolution":
            self.runner = CompiledEvolution(module, configs, env, *common, s.first_seed)
        else:
            compiled = CompiledOffPolicy if self.info.family == "off_policy" else CompiledOnPolicy
            self.runner = compiled(module, configs, env, *common, s.first_seed)
        if games.is_game(env):  # a game: evaluated against an opponent
            self.evaluator = GameEvaluator(module, configs, env, s.eval_episodes, s.seeds)  # type: ignore[arg-type]
        elif self.info.family == "control":  # a controller plans from the env's state
            self.evaluator = ControlEvaluator(module, configs, env, s.eval_episodes, s.seeds)
        else:
            self.evaluator = JaxEvaluator(module, configs, env, s.eval_episodes, s.seeds)

    # ----- the members of each setting -----
    def part(self, tree: Any, k: int) -> Any:
        """Setting k's seeds of a tree whose leaves lead with the runner's members' axis."""
        seeds = self.settings.seeds
        if len(self.configs) == 1:
            return tree
        j = self.slots.index(k)
        return jax.tree.map(lambda x: x[j * seeds : (j + 1) * seeds], tree)

    def setting_of(self, member: int) -> tuple[int, int]:
        """(setting, seed) of a member of the runner."""
        return self.slots[member // self.settings.seeds], member % self.settings.seeds

    def shrink(self, state: Any, update: int) -> Any:
        """Drop the members of the settings that stopped (diverged or pruned): a runner and
        evaluator for the others (compiled, or loaded from the program cache), and the state
        of their members. What a stopped setting would have cost is not spent."""
        keep = [j for j, k in enumerate(self.slots) if k in self.running()]
        if not keep or len(keep) == len(self.slots):
            return state
        seeds = self.settings.seeds
        members = np.concatenate([np.arange(j * seeds, (j + 1) * seeds) for j in keep])
        parts = jax.tree.map(lambda x: x[members], self.runner.checkpoint_parts(state))
        self.runner.close()
        self.slots = [self.slots[j] for j in keep]
        self.build([self.configs[k] for k in self.slots])
        self.compile()
        return self.runner.from_checkpoint_parts(parts, update)

    def running(self) -> list[int]:
        """The settings still training (all but those that diverged)."""
        return [
            k for k in range(len(self.configs)) if k not in self.failed and k not in self.pruned
        ]

    # ----- pieces of the loop -----
    def compile(self) -> float:
        """Compile the training programs, and start compiling the evaluator's on the compile
        worker, where it goes on while training runs (see `bellman.runners.programs`)."""
        start = time.perf_counter()
        self.runner.compile()
        if self.evaluator is not None:
            self.evaluator.start_compile(self.runner.checkpoint_templates()["algo"])
        return time.perf_counter() - start

    def evaluate(self, algo_state: Any, update: int) -> np.ndarray:
        """Greedy returns `[members, eval_episodes]`."""
        s = self.settings
        if self.evaluator is not None:
            keys = eval_keys(s.seed, s.seeds, update, s.first_seed)
            keys = jnp.tile(keys, (len(self.slots), 1))
            returns, _ = self.evaluator(algo_state, keys)
            return returns
        assert self.env.make_gym is not None
        returns, _ = evaluate_gymnasium(
            self.info.module,
            self.config,
            self.runner.spec,
            self.env.id,
            self.env.make_gym,
            algo_state,
            s.eval_episodes,
            seed=eval_env_seed(s.seed, update),
        )
        return returns

    def diverged(self, k: int, message: str) -> None:
        """Setting k diverged: a single run stops (TrainingDiverged); in a group, the setting
        stops being logged and checkpointed (its last good checkpoint stays) and the others go
        on."""
        if len(self.configs) == 1:
            raise TrainingDiverged(message)
        if k not in self.failed:
            self.failed[k] = message
            warnings.warn(f"{self.run_dirs[k].path}: {message}", BellmanWarning, stacklevel=2)

    def save_checkpoint(self, state: Any, update: int) -> Path:
        """Write a checkpoint of `state` to each setting's run directory if every number of its
        algorithm's state is finite, so that the last checkpoint is always a good one; else
        that setting diverged (`diverged`)."""
        step = update * self.plan.steps_per_update
        parts = self.runner.checkpoint_parts(state)
        diverged = [self.setting_of(i) for i in ckpt.nonfinite_seeds(self.runner.algo_state(state))]
        path = ckpt.path_for(self.run_dir.checkpoints, update)
        for k in self.running():
            bad = [seed for setting, seed in diverged if setting == k]
            if bad:
                self.diverged(
                    k,
                    f"training diverged before step {step:,}: the parameters of seed(s) "
                    f"{', '.join(map(str, bad))} became NaN or infinite; the last good "
                    f"checkpoint is kept ({self.last_checkpoint(k)}); try a lower learning rate",
                )
                continue
            checkpoints = self.run_dirs[k].checkpoints
            path = ckpt.path_for(checkpoints, update)
            ckpt.save(path, self.part(parts, k), {"update": update, "step": step})
            ckpt.prune(checkpoints, KEEP_CHECKPOINTS)
            if games.is_game(self.env.jax_env):  # the network at each checkpoint, all kept
                params = self.part(self.runner.algo_state(state).params, k)
                snapshots = self.run_dirs[k].path / SNAPSHOTS
                snapshots.mkdir(exist_ok=True)
                meta = {"update": update, "step": step}
                ckpt.save(ckpt.path_for(snapshots, update), {"params": params}, meta)
        return path

    def restore(self) -> tuple[Any, int]:
        """The newest intact checkpoint's state and update, or a fresh state at update 0 for a
        run that has written none (and logged nothing). Damaged newer checkpoints are moved to
        checkpoints/damaged/ (kept, never overwritten by the resumed run) and reported. A group
        resumes from the newest update every setting has an intact checkpoint of."""
        if not all(ckpt.list_checkpoints(rd.checkpoints) for rd in self.run_dirs):
            # (a group killed before its first checkpoints)
            return self.warm_start(self.runner.init_state()), 0
        templates = self.runner.checkpoint_templates()
        if len(self.configs) > 1:
            templates = jax.eval_shape(lambda t: self.part(t, 0), templates)
        update = min(ckpt.list_checkpoints(rd.checkpoints)[-1][0] for rd in self.run_dirs)
        parts = []
        for rd in self.run_dirs:
            loaded = ckpt.load_newest(
                rd.checkpoints,
                templates,
                check=finite_algo,
                restructure=self.continued,
                at_most=update,
            )
            for path, why in loaded.skipped:
                aside = set_aside(path)
                warnings.warn(
                    f"{why}; moved it to {aside} and resumed from {loaded.path.name}",
                    BellmanWarning,
                    stacklevel=2,
                )
            update = min(update, loaded.update)
            parts.append((loaded.update, loaded.parts))
        if any(u != update for u, _ in parts):  # an older common checkpoint: load it everywhere
            return self.restore_at(update, templates)
        joined = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[p for _, p in parts])
        return self.runner.from_checkpoint_parts(joined, update), update

    def warm_start(self, state: Any) -> Any:
        """`state` with the algorithm state of `init_from`'s newest intact checkpoint, if the
        run names one (`check_init_from` checked that its shapes are this run's)."""
        if self.settings.init_from is None:
            return state
        source = RunDir.open(Path(self.settings.init_from))
        templates = self.runner.checkpoint_templates()
        loaded = ckpt.load_newest(
            source.checkpoints, {"algo": templates["algo"]}, check=finite_algo, restructure=True
        )
        parts = self.runner.checkpoint_parts(state)
        return self.runner.from_checkpoint_parts({**parts, "algo": loaded.parts["algo"]}, 0)

    def restore_at(self, update: int, templates: dict[str, Any]) -> tuple[Any, int]:
        """Every setting's checkpoint of `update` (a group whose settings' newest differ)."""
        parts = []
        for rd in self.run_dirs:
            loaded, _ = ckpt.load(ckpt.path_for(rd.checkpoints, update), templates)
            parts.append(loaded)
        joined = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
        return self.runner.from_checkpoint_parts(joined, update), update

    def chunk(self, state: Any, update: int, record: dict[str, Any], saved: Path | None) -> Chunk:
        """What callbacks see after a chunk (`bellman.experiment.callbacks`): the algorithm's
        state copied to the host, since the next chunk reuses the device's buffers."""
        algo_state = jax.device_get(self.runner.algo_state(state))

        def save(path: Path) -> Path:
            meta = {"update": update, "step": update * self.plan.steps_per_update}
            ckpt.save(Path(path), {"algo": algo_state}, meta)
            return Path(path)

        return Chunk(
            run_dir=self.run_dir.path,
            step=update * self.plan.steps_per_update,
            update=update,
            total_steps=self.plan.total_steps,
            metrics=record,
            checkpoint=saved,
            algo_state=algo_state,
            save=save,
        )

    def last_checkpoint(self, k: int = 0) -> str:
        found = ckpt.list_checkpoints(self.run_dirs[k].checkpoints)
        return str(found[-1][1]) if found else "none was written yet"

    # ----- the loop -----
    def run(self, start_time: float, resumed: bool) -> Run:
        """Train a single run to the end of its plan (see `run_group`)."""
        return self.run_group(start_time, resumed)[0]

    def run_group(self, start_time: float, resumed: bool) -> list[Run]:
        """Train to the end of the plan (from the newest intact checkpoint, if any); one Run per
        setting. A failed file operation (a full disk, a permission) ends the run with one
        sentence; the last good checkpoint stays, for a resume."""
        try:
            return self._run(start_time, resumed)
        except OSError as exc:
            where = exc.filename or self.run_dir.path
            raise RunDirError(
                f"{exc.strerror or exc}: {where}; the last good checkpoint is kept "
                f"({self.last_checkpoint()}): free space or fix permissions, then continue with "
                f"bellman train {self.info.name} --resume {self.run_dir.path}"
            ) from exc

    def _run(self, start_time: float, resumed: bool) -> list[Run]:
        s, plan = self.settings, self.plan
        label = f"{self.info.name} {self.env.id} {self.label or f'x{s.seeds}'}"
        with TrainingProgress(plan.total_steps, label, self.show_progress) as bar:
            compile_s = self.compile()
            state, update = self.restore()
            first_update = update
            if all(ckpt.list_checkpoints(rd.checkpoints) for rd in self.run_dirs):
                for rd in self.run_dirs:  # exactly the records up to the checkpoint
                    rd.truncate_metrics(update)
            else:
                if len(self.run_dirs) > 1:  # a group restarted from 0
                    for rd in self.run_dirs:
                        rd.truncate_metrics(0)
                self.save_checkpoint(state, 0)  # a good checkpoint exists from the start
            loggers = [
                MetricsLogger(rd.path, purge_step=update * plan.steps_per_update)
                for rd in self.run_dirs
            ]
            bar.update(update * plan.steps_per_update, 0.0, math.nan)
            train_s = 0.0
            chunk_index = update // plan.chunk_updates
            last_saved = update
            try:
                with _StopRequest() as stop:
                    while update < plan.total_updates:
                        begin = time.perf_counter()
                        state, result = self.runner.run_chunk(state, update)
                        elapsed = time.perf_counter() - begin
                        train_s += elapsed
                        update += result.updates
                        chunk_index += 1
                        step = update * plan.steps_per_update
                        self._check_finite(result.metrics, step)
                        record: dict[str, Any] = {
                            "step": step,
                            "update": update,
                            "time_s": time.perf_counter() - start_time,
                            "steps_per_s": result.updates
                            * plan.steps_per_update
                            * len(self.slots)
                            * s.seeds
                            / max(elapsed, 1e-9),
                            "episodes": result.episodes,
                            "episode_return": result.episode_return,
                            "episode_length": result.episode_length,
                            **result.metrics,
                        }
                        finished = update >= plan.total_updates
                        if (
                            plan.eval_chunks
                            and chunk_index % plan.eval_chunks == 0
                            and not finished
                        ):
                            record["eval_return"] = self.evaluate(
                                self.runner.algo_state(state), update
                            ).mean(axis=1)
                        running = self.running()
                        for k in running:
                            loggers[k].log(self._part_record(record, k))
                        if self.on_eval is not None and "eval_return" in record:
                            returns = np.stack(
                                [self.part(record["eval_return"], k) for k in running]
                            )
                            for k in self.on_eval(step, running, returns):
                                self.pruned[k] = step
                        recent = (
                            float(np.nanmean(result.episode_return))
                            if np.isfinite(result.episode_return).any()
                            else math.nan
                        )
                        bar.update(
                            step, record["steps_per_s"] / (len(self.slots) * s.seeds), recent
                        )
                        saved = None
                        if chunk_index % plan.checkpoint_chunks == 0 or stop.signal is not None:
                            saved = self.save_checkpoint(state, update)
                            last_saved = update
                        if self.callbacks:
                            self.stopped_early = stop_reason(
                                self.callbacks, self.chunk(state, update, record, saved)
                            )
                            if self.stopped_early is not None:
                                break
                        if not self.running():
                            self.stopped_early = "every setting stopped"
                            break
                        if len(self.running()) < len(self.slots) and not finished:
                            state = self.shrink(state, update)
                        if stop.signal is not None and not finished:
                            if last_saved != update:  # the signal came after this chunk's save
                                self.save_checkpoint(state, update)
                            where = self.run_dir.path if len(self.configs) == 1 else "each run"
                            raise Interrupted(
                                f"stopped by {signal.Signals(stop.signal).name} at step "
                                f"{step:,}; the run is saved: continue it with bellman train "
                                f"{self.info.name} --resume {where}",
                                stop.signal,
                            )
                if last_saved != update:
                    self.save_checkpoint(state, update)
                bar.status("evaluating...")
                final = self.evaluate(self.runner.algo_state(state), update)
                for k in self.running():
                    loggers[k].log(
                        {
                            "step": update * plan.steps_per_update,
                            "update": update,
                            "eval_return": self.part(final, k).mean(axis=1),
                        }
                    )
            finally:
                for logger in loggers:
                    logger.close()
                self.runner.close()
        wall_s = time.perf_counter() - start_time
        algo_state = self.runner.algo_state(state)
        steps_trained = (update - first_update) * plan.steps_per_update
        # the env's possible returns bound the curve's band, unless its parameters were changed
        changed = changes_env(dataclasses.asdict(s))
        bounds = None if changed else stats.RETURN_BOUNDS.get(self.env.id)
        runs = []
        for k, (config, rd) in enumerate(zip(self.configs, self.run_dirs, strict=True)):
            metrics = rd.read_metrics()
            learning_curve(metrics, rd.path / CURVE, f"{self.info.name} on {self.env.id}", bounds)
            if k in self.failed or k in self.pruned:  # no result: it did not train to the end
                per_seed, final_state = np.full(s.seeds, np.nan), None
            else:
                per_seed = self.part(final, k).mean(axis=1)
                final_state = jax.device_get(self.part(algo_state, k))
                self.plot_values(config, rd, final_state)
                self.plot_glimpses(config, rd, final_state)
            summary = {
                "algo": self.info.name,
                "env": self.env.id,
                "backend": self.env.backend,
                "steps": plan.total_steps,
                "seeds": s.seeds,
                "seed": s.seed,
                "final_return_mean": float(per_seed.mean()),
                "final_return_std": float(per_seed.std()),
                "final_return_per_seed": per_seed.tolist(),
                "eval_episodes": s.eval_episodes,
                "wall_s": wall_s,
                # the evaluator compiles while training runs; what was left was waited for
                "compile_s": compile_s + (self.evaluator.wait_s if self.evaluator else 0.0),
                "train_s": train_s,
                "steps_per_s": steps_trained * len(self.slots) * s.seeds / max(train_s, 1e-9),
                "steps_per_s_per_seed": steps_trained / max(train_s, 1e-9),
                "resumed": resumed,
                "stopped_early": self.stopped_early,
                "final_step": update * plan.steps_per_update,
                "run_dir": str(rd.path),
            }
            if len(self.configs) > 1:
                summary["group_settings"] = len(self.configs)
                summary["diverged"] = self.failed.get(k)
                summary["pruned_at_step"] = self.pruned.get(k)
            rd.write_summary(summary)
            runs.append(
                Run(
                    run_dir=rd.path,
                    summary=summary,
                    config=config,
                    settings=s,
                    algo_state=final_state,
                    metrics=metrics,
                )
            )
        return runs

    def _part_record(self, record: dict[str, Any], k: int) -> dict[str, Any]:
        """Setting k's share of a metrics record (its seeds of every per-member array)."""
        if len(self.configs) == 1:
            return record
        return {
            name: self.part(value, k) if isinstance(value, np.ndarray) else value
            for name, value in record.items()
        }

    def plot_values(self, config: Any, rd: RunDir, algo_state: Any) -> None:
        """For an algorithm with a value table on a finite JAX env: its values and greedy policy
        (seed 0) as `policy.png`, a grid heat map when the env is a grid."""
        values_and_policy, env = self.info.values_and_policy, self.env.jax_env
        if values_and_policy is None or env is None:
            return
        table = values_and_policy(config, jax.tree.map(lambda x: x[0], jax.device_get(algo_state)))
        values = np.asarray(table.values, np.float64)
        policy = None if table.policy is None else np.asarray(table.policy)
        minimize = table.minimize
        skip = None
        mdp = getattr(env, "mdp", None)
        if mdp is not None:  # a finite MDP: no values where no episode goes, no action where
            visited = mdp_lib.reachable(mdp)  # the action does not matter
            values = np.where(visited, values, np.nan)
            skip = ~visited | mdp_lib.absorbing(mdp)
        labels = getattr(env, "action_labels", None) or [str(a) for a in range(values.size)]
        what = "values and greedy policy" if policy is not None else "values"
        title = f"{self.info.name} on {self.env.id}: {what} of seed 0"
        path = rd.path / POLICY_PLOT
        layout = getattr(env, "layout", None)
        if layout is not None:
            value_map(path, layout, values, policy, labels, title, minimize, skip)
        else:
            value_curves(path, values, policy, labels, title, minimize, skip)

    def plot_glimpses(self, config: Any, rd: RunDir, algo_state: Any) -> None:
        """For an attention model on a JAX env of images: where seed 0 looks, `glimpses.png`."""
        glimpse_paths, env = self.info.glimpse_paths, self.env.jax_env
        if glimpse_paths is None or env is None:
            return
        seed0 = jax.tree.map(lambda x: x[0], algo_state)
        title = f"{self.info.name} on {self.env.id}: the glimpses of seed 0, in order"
        plot_glimpses(rd.path / GLIMPSE_PLOT, glimpse_paths, config, env, seed0, title)

    def _check_finite(self, metrics: dict[str, np.ndarray], step: int) -> None:
        bad = sorted({int(i) for v in metrics.values() for i in np.flatnonzero(~np.isfinite(v))})
        for k in self.running():
            mine = [seed for setting, seed in map(self.setting_of, bad) if setting == k]
            if mine:
                part = {name: self.part(v, k) for name, v in metrics.items()}
                names = sorted(n for n, v in part.items() if not np.isfinite(v).all())
                self.diverged(
                    k,
                    f"training diverged before step {step:,}: {', '.join(names)} became NaN or "
                    f"infinite for seed(s) {', '.join(map(str, mine))}; the last good "
                    f"checkpoint is kept ({self.last_checkpoint(k)}); try a lower learning rate",
                )


def extend(rd: RunDir, saved: SavedRun, steps: Any, summary: dict[str, Any] | None) -> SavedRun:
    """The saved run with its plan extended to `steps` env steps per seed, written to its
    config.json (the chunks, checkpoints and evaluations keep their spacing)."""
    plan = saved.plan
    cfg.check_int("steps", steps, 1, cfg.INT32_MAX, "bellman counts in 32-bit integers")
    if steps <= plan.total_steps:
        raise ConfigError(
            f"steps must be more than the {plan.total_steps:,} steps the run has to continue it, "
            f"not {steps:,}"
        )
    plan = dataclasses.replace(plan, total_updates=math.ceil(steps / plan.steps_per_update))
    settings = dataclasses.replace(saved.settings, steps=steps)
    record = {**rd.config, "settings": cfg.to_dict(settings), "plan": dataclasses.asdict(plan)}
    record["continued"] = [*rd.config.get("continued", []), {"from_steps": saved.plan.total_steps}]
    if summary is not None:
        os.replace(rd.path / "summary.json", rd.path / f"summary-{saved.plan.total_steps}.json")
    write_json(rd.path / "config.json", record)
    rd.config = record
    return dataclasses.replace(saved, settings=settings, plan=plan)


def set_aside(path: Path) -> Path:
    """Move a damaged checkpoint to checkpoints/damaged/ under a name no other file has."""
    folder = path.parent / "damaged"
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, target)
    return target


def eval_env_seed(seed: int, update: int) -> int:
    """A gymnasium seed for the evaluation after `update` updates."""
    return int(np.random.SeedSequence([seed, update, 7]).generate_state(1)[0])


def run_record(algo: str, settings: RunSettings, config: Any, resolved: Any, plan: Plan) -> dict:
    """What a run directory's config.json records of the run."""
    return {
        "algo": algo,
        "env": settings.env,
        "backend": resolved.backend,
        "settings": cfg.to_dict(settings),
        "config": cfg.to_dict(config),
        "plan": dataclasses.asdict(plan),
    }


def check_first_seed(settings: RunSettings, resolved: registry.ResolvedEnv) -> None:
    """A share of a run's seeds (first_seed > 0) needs the compiled backend, whose keys are a
    function of the seed's number."""
    if settings.first_seed and resolved.backend != "compiled":
        raise ConfigError(
            f"first_seed applies to the compiled backend, and {settings.env} runs on "
            f"{resolved.backend}"
        )


def check_dataset(
    info: algos.AlgoInfo, settings: RunSettings, resolved: registry.ResolvedEnv
) -> RunSettings:
    """An offline algorithm needs a dataset whose spaces are the env's, and only an offline
    algorithm takes one; the settings record the dataset's full path (for a resume)."""
    names = ", ".join(n for n, i in algos.ALGOS.items() if i.family == "offline")
    if info.family == "dagger":
        return check_expert(info, settings, resolved)
    if settings.expert is not None:
        raise ConfigError(
            f"--expert is dagger's (the run that labels its states), not {info.name}'s"
        )
    if info.family == "adversarial" and resolved.backend != "compiled":
        raise EnvError(
            f"{info.name} runs on the compiled backend, with JAX envs; {resolved.id} runs on "
            f"{resolved.backend}"
        )
    if info.family not in ("offline", "adversarial"):
        if settings.dataset is not None:
            raise ConfigError(
                f"{info.name} learns by acting in the env; --dataset is for the offline "
                f"algorithms ({names}) and dagger's demonstrations"
            )
        return settings
    if settings.dataset is None and info.family == "offline" and has_training_set(resolved):
        return settings  # learns from the env's own labelled examples
    if settings.dataset is None:
        raise ConfigError(
            f"{info.name} learns from a dataset: give --dataset DIR (make one with bellman "
            "collect RUN_DIR --out DIR; bellman list datasets shows those found here)"
        )  # (gail: the expert's demonstrations)
    data = datasets.read(settings.dataset)
    datasets.check_fits(data, resolved.spec)
    return dataclasses.replace(settings, dataset=str(data.path.resolve()))


def check_init_from(
    info: algos.AlgoInfo,
    settings: RunSettings,
    config: Any,
    resolved: registry.ResolvedEnv,
    plan: Plan,
) -> RunSettings:
    """A run started from another's algorithm state (`init_from`) needs one of the same
    algorithm, seeds and state shapes with a checkpoint; the settings record its full path."""
    if settings.init_from is None:
        return settings
    source = RunDir.open(cfg.as_path("init_from", settings.init_from))
    saved = read_saved(source, trust_env=False)
    where = f"--init-from {settings.init_from}"
    if saved.info.name != info.name:
        raise ConfigError(f"{where} is a {saved.info.name} run; this run trains {info.name}")
    if saved.settings.seeds != settings.seeds:
        raise ConfigError(
            f"{where} has {saved.settings.seeds} seed(s); this run has {settings.seeds}: each "
            "seed starts from the same seed's state"
        )
    if not ckpt.list_checkpoints(source.checkpoints):
        raise CheckpointError(f"{where} has no checkpoint yet")
    keys = seed_keys(settings.seed, settings.seeds)

    def shapes(c: Any, total_updates: int) -> list[tuple[Any, Any]]:
        """The state's arrays' shapes and types (its static fields, as the schedules' lengths,
        are this run's)."""
        init = lambda key: info.module.init(key, c, resolved.spec, total_updates)
        return [(x.shape, x.dtype) for x in jax.tree.leaves(jax.eval_shape(jax.vmap(init), keys))]

    if shapes(saved.config, saved.plan.total_updates) != shapes(config, plan.total_updates):
        raise ConfigError(
            f"{where} holds a {info.name} state of other shapes than this run's (its networks "
            "or the env's spaces differ): give the settings it was trained with"
        )
    return dataclasses.replace(settings, init_from=str(source.path.resolve()))


def check_expert(
    info: algos.AlgoInfo, settings: RunSettings, resolved: registry.ResolvedEnv
) -> RunSettings:
    """DAgger needs an expert run on the same env with a policy of observations: on the
    gymnasium backend, a run on the gymnasium backend of the same env id; on the compiled
    backend, a run opened there on an env of the same spec. Its demonstrations, if any, must
    fit the env. The settings record both as full paths."""
    if settings.expert is None:
        raise ConfigError(
            f"{info.name} imitates an expert: give --expert RUN_DIR, a run trained on "
            f"{resolved.id} whose greedy policy labels the states"
        )
    host = resolved.backend != "compiled"
    expert = open_run(settings.expert, backend=None if host else "compiled")
    if host and expert.env.backend != resolved.backend:
        raise ConfigError(
            f"the expert {settings.expert} was trained on the {expert.env.backend} backend; "
            f"{info.name} on {resolved.id}'s {resolved.backend} backend queries an expert "
            f"trained on {resolved.backend} too (bellman train ALGO --env {resolved.id} "
            f"--backend {resolved.backend})"
        )
    if expert.info.family == "control":
        raise ConfigError(
            f"the expert {settings.expert} is a {expert.info.name} run, a controller with no "
            "policy of observations to query"
        )
    if expert.env.spec != resolved.spec or (host and expert.env.id != resolved.id):
        raise ConfigError(
            f"the expert {settings.expert} was trained on {expert.env.id}, not on {resolved.id}"
        )
    settings = dataclasses.replace(settings, expert=str(expert.run_dir.path.resolve()))
    if settings.dataset is not None:
        data = datasets.read(settings.dataset)
        datasets.check_fits(data, resolved.spec)
        settings = dataclasses.replace(settings, dataset=str(data.path.resolve()))
    return settings


def read_data(path: str | None, resolved: registry.ResolvedEnv) -> OfflineData:
    """The dataset at `path` as the compiled programs read it (`runners.offline.offline_data`);
    without one, the env's own training set (`TranslatedDigits-v0`'s labelled canvases)."""
    if path is None:  # (`has_training_set`)
        transitions = resolved.jax_env.training_set()  # type: ignore[union-attr]
        return offline_data(transitions, resolved.spec, np.ones(1))
    data = datasets.read(path)
    return offline_data(data.transitions, resolved.spec, data.episode_returns)


def has_training_set(resolved: registry.ResolvedEnv) -> bool:
    """The env carries labelled examples for learners of labelled data (`training_set()`)."""
    return callable(getattr(resolved.jax_env, "training_set", None))


def dagger_data(settings: RunSettings, resolved: registry.ResolvedEnv) -> DaggerData:
    """DAgger's shared data: the expert's policy (its seed 0), opened on the env's backend,
    the demonstrations of the dataset (none without one) and their statistics."""
    assert settings.expert is not None
    trained = open_run(settings.expert, backend=resolved.backend)
    spec = resolved.spec
    expert = Expert(
        jax.tree.map(lambda x: x[0], trained.algo_state), trained.info.module, trained.config, spec
    )
    if settings.dataset is not None:
        demos = read_data(settings.dataset, resolved)
        return DaggerData(expert, demos.obs, demos.action, demos.stats)
    example = jnp.zeros((1, *spec.obs_shape), spec.obs_dtype)
    label = jax.eval_shape(expert.act, example)
    size = obs_features(example, spec).shape[-1]
    stats = DataStats(
        obs_mean=jnp.zeros((size,), jnp.float32),
        obs_std=jnp.ones((size,), jnp.float32),
        size=jnp.zeros((), jnp.int32),
        min_return=jnp.zeros((), jnp.float32),
        max_return=jnp.zeros((), jnp.float32),
    )
    return DaggerData(
        expert,
        jnp.zeros((0, *spec.obs_shape), spec.obs_dtype),
        jnp.zeros((0, *label.shape[1:]), label.dtype),
        stats,
    )


def check_players(info: algos.AlgoInfo, resolved: registry.ResolvedEnv) -> None:
    """A two-player game takes a self-play algorithm (or MuZero), and a self-play algorithm a
    game; the search algorithms run on the compiled backend."""
    if info.family == "control" and resolved.backend != "compiled":
        raise EnvError(
            f"{info.name} plans through the env's own step function, a JAX function on the "
            f"compiled backend (gymnax, bellman's envs); {resolved.id} runs on "
            f"{resolved.backend}"
        )
    searches = info.family in ("self_play", "unroll")
    if searches and resolved.backend != "compiled":
        raise EnvError(
            f"{info.name} runs on the compiled backend, with JAX envs (gymnax, MinAtar, the "
            f"games); {resolved.id} runs on {resolved.backend}"
        )
    if info.family == "unroll":
        return
    if info.family == "control":
        games.check_single_agent(info.name, resolved.jax_env)
        return
    if info.family == "self_play":
        if resolved.jax_env is None or not games.is_game(resolved.jax_env):
            info.module.check_game(resolved.jax_env or resolved)
    else:
        games.check_single_agent(info.name, resolved.jax_env)


def preset_config(info: algos.AlgoInfo, preset: str | None, spec: Any) -> Any:
    """The algorithm's default config with a named preset applied: `preset`, or the one the
    algorithm picks for the env (`preset_for`, e.g. Atari's for stacked pixel frames)."""
    presets = info.presets
    if preset is None and info.preset_for is not None:
        preset = info.preset_for(spec)
    if preset is None:
        return info.make_config()
    if preset not in presets:
        known = f"; {info.name} has " + ", ".join(presets) if presets else ""
        raise ConfigError(
            f"{info.name} has no preset '{preset}'" + (closest(preset, presets) or known)
        )
    return dataclasses.replace(info.make_config(), **presets[preset])


def train(
    algo: str,
    env: Any,
    *,
    steps: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    first_seed: int = 0,
    backend: str = "auto",
    out: str | Path | None = None,
    eval_episodes: int = 20,
    evals: int = 10,
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    preset: str | None = None,
    env_params: str | None = None,
    env_kwargs: str | None = None,
    randomize: str | None = None,
    obs_noise: float = 0.0,
    action_noise: float = 0.0,
    action_delay: int = 0,
    progress: bool = True,
    config: Any = None,
    callbacks: Sequence[Callback] = (),
    dataset: str | Path | None = None,
    expert: str | Path | None = None,
    init_from: str | Path | None = None,
    **overrides: Any,
) -> Run:
    """Train `algo` on `env` and return the run (its summary, final parameters and metrics).

    `env` is an env id, `module:attr`, or a JAX env object (`bellman.envs.JaxEnv`; resuming or
    loading its run takes the object again); `env_params`, `env_kwargs`, `randomize`,
    `obs_noise`, `action_noise` and `action_delay` as the `RunSettings` fields of those names.
    `config` is the algorithm's config (default: its defaults, with `preset` applied, or the
    preset the algorithm picks for the env); `overrides` replace single fields, e.g.
    `learning_rate=1e-3`. `callbacks` are called after every chunk (`bellman.Chunk`; one that
    returns False stops the run). Everything is checked before anything compiles.
    """
    jax_setup.configure()  # first: JAX reads XLA_FLAGS when it starts
    callbacks = check_callbacks(callbacks)
    start = time.perf_counter()
    info = algos.get(algo)
    settings = cfg.with_overrides(
        RunSettings(env=registry.env_label(env)),
        {
            "steps": steps,
            "seeds": seeds,
            "seed": seed,
            "first_seed": first_seed,
            "backend": backend,
            "eval_episodes": eval_episodes,
            "evals": evals,
            "log_every": log_every,
            "checkpoint_every": checkpoint_every,
            "preset": preset,
            "env_params": env_params,
            "env_kwargs": env_kwargs,
            "randomize": randomize,
            "obs_noise": obs_noise,
            "action_noise": action_noise,
            "action_delay": action_delay,
            "dataset": None if dataset is None else str(dataset),
            "expert": None if expert is None else str(expert),
            "init_from": None if init_from is None else str(init_from),
        },
    )
    settings.validate()
    settings, resolved = resolve_env(settings, settings.backend, env)
    check_first_seed(settings, resolved)
    settings = check_dataset(info, settings, resolved)
    algo_config = cfg.with_overrides(
        info.check_config(config)
        if config is not None
        else preset_config(info, settings.preset, resolved.spec),
        overrides,
    )
    algo_config.validate()
    check_players(info, resolved)
    info.module.check_env(algo_config, resolved.spec)
    if info.fit_to_env is not None:
        algo_config = info.fit_to_env(algo_config, resolved.spec)
    budget = settings.steps or info.module.DEFAULT_STEPS
    steps_per_update = algo_config.num_envs * algo_config.num_steps
    plan = Plan.make(settings, budget, steps_per_update)
    check_resources(info, algo_config, resolved, settings, plan)
    settings = check_init_from(info, settings, algo_config, resolved, plan)
    run_dir = RunDir.create(
        cfg.as_path("out", out) if out is not None else default_run_dir(info.name, settings.env),
        run_record(info.name, settings, algo_config, resolved, plan),
    )
    try:
        trainer = Trainer(
            info.name, settings, algo_config, run_dir, resolved, plan, progress, callbacks
        )
        return trainer.run(start, resumed=False)
    finally:
        run_dir.unlock()


def resume(
    run_dir: str | Path,
    *,
    algo: str | None = None,
    progress: bool = True,
    trust_env: bool = False,
    callbacks: Sequence[Callback] = (),
    steps: int | None = None,
    env: Any = None,
) -> Run:
    """Continue a stopped or killed run from its newest intact checkpoint, with its saved
    settings; with `steps` (env steps per seed, more than the run's), continue a run, finished or
    not, up to that many steps (as RL Zoo's `-i`): its plan grows, its schedules (an annealed
    step size, an exploration schedule) stretch to the new total, and a finished run's summary
    is kept as summary-<old steps>.json. The run directory is locked while it runs: a second
    writer is refused. A run on a `module:Class` env imports that module only with
    `trust_env=True`; a run trained on an env object takes it again as `env`."""
    jax_setup.configure()  # first: JAX reads XLA_FLAGS when it starts
    start = time.perf_counter()
    rd = RunDir.open(cfg.as_path("run_dir", run_dir))
    record = rd.config
    if algo is not None and algos.get(algo).name != record["algo"]:
        raise RunDirError(
            f"{rd.path} is a {record['algo']} run; resume it with bellman train "
            f"{record['algo']} --resume {rd.path}"
        )
    rd.lock()
    try:
        summary = rd.summary()
        if summary is not None and steps is None:
            raise RunDirError(
                f"{rd.path} has already finished; its result is in summary.json (to train it "
                "further, give the new total: --steps N)"
            )
        saved = read_saved(rd, trust_env)
        _, resolved = resolve_env(saved.settings, record["backend"], env)  # before extend writes
        if steps is not None:
            saved = extend(rd, saved, steps, summary)
        logged = rd.read_metrics()
        if logged and not ckpt.list_checkpoints(rd.checkpoints):
            raise RunDirError(
                f"{rd.path} has logged {len(logged)} metrics records (up to update "
                f"{logged[-1]['update']:,}) but holds no checkpoint to resume from; start a new "
                "run (or restore its checkpoints/ folder)"
            )
        trainer = Trainer(
            saved.info.name,
            saved.settings,
            saved.config,
            rd,
            resolved,
            saved.plan,
            progress,
            check_callbacks(callbacks),
        )
        trainer.continued = steps is not None
        return trainer.run(start, resumed=True)
    finally:
        rd.unlock()
