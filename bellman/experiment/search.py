"""`bellman sweep ... --search optuna --trials N`: a search over settings with Optuna, its trials
asked in batches that train vmapped, and pruned from their evaluations during training.

    study   = optuna study (TPE sampler with the constant liar, median pruner) in a storage
              (an SQLite file in the sweep directory by default; any SQLAlchemy URL)
    while the study has fewer than N trials:
        batch  = up to `batch` trials asked at once (the liar keeps a batch's draws apart)
        groups = the batch's configs by static part: one compiled program each (`train_group`)
        after each evaluation during training:      (RL Zoo's approach)
            trial.report(mean greedy return over seeds, step); stop the pruned trials,
            whose members the group then drops (`Trainer.shrink`)
        tell each trial its mean final return (or PRUNED, or FAIL if it diverged)

Several processes (on one machine, or on several sharing the storage and the sweep directory)
can work on one study: each asks its own batches, until the study holds N trials. Running the
command again continues the study, finishing the trials a killed process left (from their
checkpoints) when no other process holds them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bellman import config as cfg
from bellman import jax_setup
from bellman.errors import BellmanWarning, ConfigError, RunDirError
from bellman.experiment.rundir import RunDir, write_json
from bellman.experiment.settings import Plan, check_resources
from bellman.experiment.sweep import (
    SWEEP,
    Setting,
    SweepResult,
    default_sweep_dir,
    grid_of,
    group_settings,
    make_run_dir,
    open_sweep,
    prepare,
    ranges_of,
    table,
    train_group,
    write_results,
)

TRIAL = "trial.json"
"""What a trial's run directory records of it: the study's trial number and its values."""
DEFAULT_BATCH = 8
SAMPLERS = ("tpe", "random")
"""Optuna's TPE (with the constant liar, so that a batch's trials spread), or uniform draws."""


@dataclass
class SearchResult(SweepResult):
    """A finished search: the sweep table of its trials, and the study's counts and best."""

    trials: dict[str, int] | None = None
    """Trials by state: complete, pruned, failed."""
    best_value: float = math.nan
    best_values: dict[str, Any] | None = None


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError(
            "--search optuna needs Optuna, an optional dependency: pip install bellman[optuna]"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _suggest(trial: Any, name: str, kind: Any, space: Any) -> Any:
    """A value for `name` from its range (low, high) (log scale for a positive range spanning
    10x or more, as `--random` draws) or its list of choices."""
    if isinstance(space, list):
        return trial.suggest_categorical(name, space)
    low, high = space
    log = low > 0 and high / low >= 10
    if kind is int:
        return trial.suggest_int(name, low, high, log=log)
    return trial.suggest_float(name, low, high, log=log)


def search(
    algo: str,
    env: Any,
    *,
    trials: int,
    ranges: dict[str, tuple[Any, Any]] | Sequence[str] = (),
    grid: dict[str, Sequence[Any]] | Sequence[str] = (),
    batch: int = DEFAULT_BATCH,
    sampler: str = "tpe",
    pruner: Any = "median",
    storage: str | None = None,
    study: str | None = None,
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
    **fixed: Any,
) -> SearchResult:
    """Search `ranges` (name -> (low, high), or `name=low:high` strings) and the choices of
    `grid` with Optuna for the setting of `algo` on `env` with the highest mean final greedy
    return over `seeds` seeds; `trials` in all, asked `batch` at a time, drawn by `sampler`
    (`SAMPLERS`), pruned by `pruner` ("median": Optuna's median pruner as RL Zoo sets it, "none",
    or any Optuna pruner). `storage` is Optuna's
    (default: sqlite in the sweep directory), `study` the study's name (default: ALGO-ENV).
    The sweep directory holds a run directory per trial and the table (`bellman.sweep`'s)."""
    jax_setup.configure()
    start = time.perf_counter()
    optuna = _optuna()
    cfg.check_int("trials", trials, 1, 100_000, "a search runs 1 to 100,000 trials")
    cfg.check_int("batch", batch, 1, 10_000, "a batch holds 1 to 10,000 trials")
    info, run_settings, resolved, base = prepare(
        algo,
        env,
        fixed,
        steps=steps,
        seeds=seeds,
        seed=seed,
        first_seed=first_seed,
        backend=backend,
        eval_episodes=eval_episodes,
        evals=evals,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        preset=preset,
        env_params=env_params,
        env_kwargs=env_kwargs,
        randomize=randomize,
        obs_noise=obs_noise,
        action_noise=action_noise,
        action_delay=action_delay,
    )
    fields = cfg.field_types(type(base))
    space: dict[str, Any] = {**grid_of(grid, fields), **ranges_of(ranges, fields)}
    if not space:
        raise ConfigError("--search needs settings to search: --range name=low:high or --grid")
    if not run_settings.evals:
        raise ConfigError("--search prunes trials from evaluations during training: --evals > 0")
    path = (
        cfg.as_path("out", out)
        if out is not None
        else default_sweep_dir(info.name, run_settings.env)
    )
    storage = storage or f"sqlite:///{path.resolve() / 'optuna.db'}"
    study_name = study or f"{info.name}-{run_settings.env}"
    request = {
        "algo": info.name,
        "env": run_settings.env,
        "backend": resolved.backend,
        "settings": cfg.to_dict(run_settings),
        "base_config": cfg.to_dict(base),
        "search": {
            "method": "optuna",
            "sampler": sampler,
            "pruner": pruner if isinstance(pruner, str) else type(pruner).__name__,
            "space": space,
            "trials": trials,
            "study": study_name,
        },
    }
    open_sweep(path, request, None)
    budget = run_settings.steps or info.module.DEFAULT_STEPS
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    chosen_sampler = (
        optuna.samplers.TPESampler(seed=run_settings.seed, constant_liar=True)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=run_settings.seed)
    )
    if pruner == "median":  # RL Zoo's: after 5 trials, and past a third of the run
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=budget // 3)
    elif pruner == "none":
        pruner = optuna.pruners.NopPruner()
    elif not isinstance(pruner, optuna.pruners.BasePruner):
        raise ConfigError(f"pruner must be 'median', 'none' or an Optuna pruner, not {pruner!r}")
    try:
        the_study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            direction="maximize",
            sampler=chosen_sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as exc:  # a bad URL, an unreachable database: one sentence
        raise ConfigError(f"cannot open the Optuna storage {storage}: {exc}") from None

    programs = 0

    def train(batch_trials: list[tuple[Any, Setting, Any]]) -> None:
        """Train a batch's trials, grouped by static part, pruning from their evaluations."""
        nonlocal programs
        configs = [config for _, _, config in batch_trials]
        for members in group_settings(configs, resolved.backend == "compiled"):
            programs += 1
            chosen = [batch_trials[i] for i in members]
            size = dataclasses.replace(run_settings, seeds=run_settings.seeds * len(chosen))
            plan = Plan.make(
                run_settings, budget, configs[members[0]].num_envs * configs[members[0]].num_steps
            )
            check_resources(info, configs[members[0]], resolved, size, plan)
            paths = [path / "runs" / point.dirname for _, point, _ in chosen]

            numbers = ", ".join(str(t.number) for t, _, _ in chosen)
            summaries = train_group(
                paths,
                label=f"trials {numbers}",
                progress=progress,
                env=env,
                on_eval=pruning([trial for trial, _, _ in chosen]),
            )
            for (trial, _, _), summary in zip(chosen, summaries, strict=True):
                _tell(optuna, the_study, trial, summary)

    train(_leftovers(optuna, the_study, path))
    while len(the_study.get_trials(deepcopy=False)) < trials:
        count = min(batch, trials - len(the_study.get_trials(deepcopy=False)))
        asked = []
        for _ in range(count):
            trial = the_study.ask()
            values = {name: _suggest(trial, name, fields[name], s) for name, s in space.items()}
            point = Setting(trial.number, values)
            config = cfg.with_overrides(base, values)
            try:
                config.validate()
                info.module.check_env(config, resolved.spec)
            except ConfigError as exc:  # a draw the algorithm refuses: a failed trial
                the_study.tell(trial, state=optuna.trial.TrialState.FAIL)
                warnings.warn(f"trial {trial.number} ({point.label}): {exc}", BellmanWarning, 2)
                continue
            if info.fit_to_env is not None:
                config = info.fit_to_env(config, resolved.spec)
            plan = Plan.make(run_settings, budget, config.num_envs * config.num_steps)
            run_dir = path / "runs" / point.dirname
            make_run_dir(run_dir, info.name, run_settings, config, resolved, plan)
            write_json(run_dir / TRIAL, {"trial": trial.number, "values": values})
            asked.append((trial, point, config))
        train(asked)

    runs = _runs(path)
    record = json.loads((path / SWEEP).read_text())  # the trials every process ran, for
    write_json(path / SWEEP, {**record, "runs": runs})  # bellman compare and the table
    rows, curves = table(path, runs, run_settings.seeds)
    states = {t.number: t.state.name.lower() for t in the_study.get_trials(deepcopy=False)}
    for row, run in zip(rows, runs, strict=True):
        row["trial"] = run["trial"]
        row["state"] = states.get(run["trial"], "unknown")
    wall_s = time.perf_counter() - start
    write_results(path, request, rows, curves, programs, wall_s)
    counts = {
        state: sum(1 for s in states.values() if s == state)
        for state in ("complete", "pruned", "fail")
    }
    best = the_study.best_trial if counts["complete"] else None
    return SearchResult(
        path,
        rows,
        programs,
        wall_s,
        trials=counts,
        best_value=best.value if best is not None else math.nan,
        best_values=best.params if best is not None else None,
    )


def pruning(trials: list[Any]) -> Any:
    """`Trainer`'s `on_eval` for a group of trials: report each running trial's mean greedy
    return over its seeds at the step, and stop those Optuna's pruner prunes."""

    def prune(step: int, running: list[int], returns: np.ndarray) -> list[int]:
        stop = []
        for k, row in zip(running, returns, strict=True):
            trials[k].report(float(np.mean(row)), step)
            if trials[k].should_prune():
                stop.append(k)
        return stop

    return prune


def _tell(optuna: Any, study: Any, trial: Any, summary: dict[str, Any]) -> None:
    states = optuna.trial.TrialState
    if summary.get("pruned_at_step") is not None:
        study.tell(trial, state=states.PRUNED)
    elif summary.get("diverged") or not math.isfinite(summary["final_return_mean"]):
        study.tell(trial, state=states.FAIL)
    else:
        study.tell(trial, summary["final_return_mean"])


def _runs(path: Path) -> list[dict[str, Any]]:
    """The trials' run directories in the sweep directory, by trial number."""
    runs = []
    for run_dir in sorted((path / "runs").iterdir()):
        try:
            trial = json.loads((run_dir / TRIAL).read_text())
        except (OSError, ValueError):
            continue
        point = Setting(int(trial["trial"]), trial["values"])
        runs.append(
            {
                "label": point.label,
                "values": point.values,
                "run_dir": f"runs/{run_dir.name}",
                "group": point.index,
                "trial": point.index,
            }
        )
    return sorted(runs, key=lambda r: r["trial"])


def _leftovers(optuna: Any, study: Any, path: Path) -> list[tuple[Any, Setting, Any]]:
    """Trials a killed process left running, with their run directories, that no live process
    holds: they are trained on from their checkpoints."""
    from bellman.experiment.policy import read_saved

    running = {
        t.number: t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    }
    left = []
    for run in _runs(path):
        run_dir = path / run["run_dir"]
        if run["trial"] not in running or (run_dir / "summary.json").exists():
            continue
        rd = RunDir.open(run_dir)
        try:
            rd.lock()
        except RunDirError:
            continue  # another process trains it
        rd.unlock()
        trial = optuna.trial.Trial(study, running[run["trial"]]._trial_id)
        left.append((trial, Setting(run["trial"], run["values"]), read_saved(rd, True).config))
    return left
