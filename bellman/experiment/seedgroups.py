"""One run's seeds split into groups trained apart (one after another, or on the nodes of a Ray
cluster), then merged into one run directory.

    parts  = OUT/parts/NNN: run directories of seeds first, ..., first + S/G - 1 each
             (`RunSettings.first_seed`: seed i of the run has key fold_in(PRNGKey(seed), i),
             whichever part trains it)
    train  each part (`sweep.train_group`; on Ray, `ray_sweep.run_groups`)
    merge  OUT: config.json of the whole run, metrics.jsonl with every record's per-seed values
           concatenated in seed order, the parts' newest common checkpoint concatenated, the
           summary, the learning curve

OUT is then an ordinary run directory of S seeds: `bellman eval`, `load`, `compare` and
`--resume OUT --steps N` (on one machine) read it. Running the same command again trains the
parts that have not finished (from their checkpoints) and merges again.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman import config as cfg
from bellman import jax_setup, stats
from bellman.errors import ConfigError, RunDirError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.logger import MetricsLogger
from bellman.experiment.plots import learning_curve
from bellman.experiment.policy import read_saved
from bellman.experiment.rundir import CURVE, RunDir
from bellman.experiment.settings import (
    Plan,
    RunSettings,
    changes_env,
    check_resources,
    resolve_env,
)
from bellman.experiment.sweep import make_run_dir, prepare, read_back, run_groups
from bellman.experiment.train import default_run_dir, run_record

PARTS = "parts"
SUMS = ("steps_per_s",)
"""Scalar metrics that add up over the parts (the rest take the largest part's: clocks)."""


def train_split(
    algo: str,
    env: Any,
    *,
    seeds: int,
    groups: int,
    ray: str | None = None,
    ray_cpus: float = 1.0,
    ray_gpus: float = 0.0,
    out: str | Path | None = None,
    progress: bool = True,
    **run: Any,
) -> dict[str, Any]:
    """Train `seeds` seeds of `algo` on `env` as `groups` parts of seeds/groups seeds each (on
    the Ray cluster at `ray`, or one after another here), merge them into the run directory
    `out` and return its summary. `run` holds the other `bellman.train` settings and config
    overrides."""
    jax_setup.configure()
    cfg.check_int("seeds", seeds, 1, cfg.INT32_MAX, "bellman counts seeds in 32-bit integers")
    cfg.check_int("seed_groups", groups, 1, seeds, f"a group holds at least one of {seeds} seeds")
    if seeds % groups:
        raise ConfigError(f"seed_groups ({groups}) must divide seeds ({seeds})")
    if run.get("first_seed"):
        raise ConfigError("--seed-groups sets each part's first_seed itself: drop first_seed")
    setting_names = {f.name for f in dataclasses.fields(RunSettings)}
    settings_given = {k: run.pop(k) for k in list(run) if k in setting_names}
    per = seeds // groups
    info, settings, resolved, config = prepare(algo, env, run, seeds=per, **settings_given)
    if resolved.backend != "compiled":
        raise ConfigError(
            f"--seed-groups needs the compiled backend; {settings.env} runs on {resolved.backend}"
        )
    config.validate()
    info.module.check_env(config, resolved.spec)
    if info.fit_to_env is not None:
        config = info.fit_to_env(config, resolved.spec)
    budget = settings.steps or info.module.DEFAULT_STEPS
    plan = Plan.make(settings, budget, config.num_envs * config.num_steps)
    check_resources(info, config, resolved, settings, plan)
    path = cfg.as_path("out", out) if out is not None else default_run_dir(info.name, settings.env)
    whole = dataclasses.replace(settings, seeds=seeds)
    record = run_record(info.name, whole, config, resolved, plan)
    record["seed_groups"] = groups
    if (path / "config.json").exists():
        saved = RunDir.open(path).config
        if {k: saved.get(k) for k in ("algo", "settings", "config", "seed_groups")} != {
            k: read_back(record[k]) for k in ("algo", "settings", "config", "seed_groups")
        }:
            raise RunDirError(
                f"{path} holds another run; choose another --out, or repeat its command to "
                "continue it"
            )
    else:
        RunDir.create(path, record).unlock()
    parts = []
    for g in range(groups):
        part = path / PARTS / f"{g:03d}"
        share = dataclasses.replace(settings, first_seed=g * per)
        make_run_dir(part, info.name, share, config, resolved, plan)
        parts.append(part)
    todo = [
        (f"seeds {g * per}-{(g + 1) * per - 1}", [p])
        for g, p in enumerate(parts)
        if not (p / "summary.json").exists()
    ]
    run_groups(todo, path, ray, ray_cpus, ray_gpus, progress, env)
    return merge(path, parts, env)


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics record of the whole run from the parts' records of the same chunk: per-seed
    lists concatenated in seed order, throughputs added, clocks the slowest part's."""
    merged: dict[str, Any] = {}
    first = records[0]
    for name in first:
        values: list[Any] = [r[name] for r in records]
        if name in ("step", "update"):
            if len(set(values)) != 1:
                raise RunDirError(f"the parts' metrics disagree on {name}: {values}")
            merged[name] = values[0]
        elif isinstance(values[0], list):
            merged[name] = [x for v in values for x in v]
        elif name in SUMS:
            merged[name] = float(sum(values))
        else:
            merged[name] = max(values)
    return merged


def merge(path: Path, parts: list[Path], env: Any = None) -> dict[str, Any]:
    """Merge the finished parts into the run directory `path` (see the module's docstring)."""
    rds = [RunDir.open(p) for p in parts]
    summaries = [rd.summary() for rd in rds]
    unfinished = [str(rd.path) for rd, s in zip(rds, summaries, strict=True) if s is None]
    if unfinished:
        raise RunDirError(
            f"part(s) {', '.join(unfinished)} have not finished; run the same command again"
        )
    out = RunDir.open(path)
    out.lock()
    try:
        logs = [rd.read_metrics() for rd in rds]
        if len({len(log) for log in logs}) != 1:
            raise RunDirError(f"the parts of {path} logged different numbers of records")
        for name in ("metrics.jsonl", "tensorboard", "checkpoints"):
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        logger = MetricsLogger(path)
        merged = [merge_records(list(records)) for records in zip(*logs, strict=True)]
        try:
            for record in merged:
                logger.log(record)
        finally:
            logger.close()
        _merge_checkpoints(path, rds, env)
        s = [summary for summary in summaries if summary is not None]
        per_seed = [x for summary in s for x in summary["final_return_per_seed"]]
        finals = np.asarray(per_seed, np.float64)
        summary = {
            **s[0],
            "seeds": len(per_seed),
            "final_return_mean": float(finals.mean()),
            "final_return_std": float(finals.std()),
            "final_return_per_seed": per_seed,
            "wall_s": max(x["wall_s"] for x in s),
            "compile_s": max(x["compile_s"] for x in s),
            "train_s": max(x["train_s"] for x in s),
            "steps_per_s": float(sum(x["steps_per_s"] for x in s)),
            "resumed": any(x["resumed"] for x in s),
            "run_dir": str(path),
            "seed_groups": [str(p) for p in parts],
        }
        out.write_summary(summary)
        env_id = s[0]["env"]
        changed = changes_env(out.config["settings"])
        bounds = None if changed else stats.RETURN_BOUNDS.get(env_id)
        learning_curve(merged, path / CURVE, f"{s[0]['algo']} on {env_id}", bounds)
        return summary
    finally:
        out.unlock()


def _merge_checkpoints(path: Path, rds: list[RunDir], env: Any) -> None:
    """The parts' newest common checkpoint, concatenated seed-wise into `path`/checkpoints."""
    from bellman.experiment.train import Trainer

    update = min(ckpt.list_checkpoints(rd.checkpoints)[-1][0] for rd in rds)
    saved = read_saved(rds[0], trust_env=True)
    _, resolved = resolve_env(saved.settings, rds[0].config["backend"], env)
    trainer = Trainer(
        saved.info.name, saved.settings, saved.config, rds[0], resolved, saved.plan, False
    )
    templates = trainer.runner.checkpoint_templates()
    parts = []
    for rd in rds:
        loaded = ckpt.load_newest(rd.checkpoints, templates, at_most=update)
        if loaded.update != update:
            raise RunDirError(f"{rd.path} has no intact checkpoint of update {update:,}")
        parts.append(jax.device_get(loaded.parts))
    joined = jax.tree.map(lambda *xs: jnp.concatenate([jnp.asarray(x) for x in xs]), *parts)
    meta = {"update": update, "step": update * saved.plan.steps_per_update}
    ckpt.save(ckpt.path_for(path / "checkpoints", update), joined, meta)
